"""Checking a framework adapter's pool: its members, their prices and the router they share."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Generic, TypeVar

from metallm.exceptions import ConfigurationError, UnknownArmError
from metallm.serving._capabilities import Capabilities, check_capabilities
from metallm.serving._pricing import Prices, check_prices, list_price, usage_cost
from metallm.serving._router import Router

__all__ = [
    "WARMUP_ENV",
    "PoolMembers",
    "admit_member",
    "check_pool",
    "quiz_member",
    "retire_member",
]

M = TypeVar("M")


logger = logging.getLogger(__name__)

WARMUP_ENV = "METALLM_WARMUP"
"""Set to ``0`` to stop the adapters warming up the embedder at construction (e.g. in a server
that forks its workers after building the chat model: each worker then loads on first use)."""


def check_pool(
    names: Collection[str],
    prices: Prices,
    router: Router | None,
    *,
    what: str,
    warmup: bool = False,
    shadows: Mapping[str, Router] | None = None,
    price_refs: Mapping[str, tuple[str | None, str | None]] | None = None,
    price_sources: dict[str, str] | None = None,
) -> tuple[dict[str, tuple[float, ...]], Router]:
    """The checked prices and the router for a pool of named models (a new router when None).

    A member without a given price gets its list price (``list_price``, by the provider's model
    name in ``price_refs``); one warning names the members left without any, since their calls
    cost 0 to the router. A budget over such members is refused: its spend could not be counted.

    Args:
        names: The members' names.
        prices: USD per 1M input and output tokens, by member (some may lack one).
        router: The router to share (None: a new one over ``names``).
        what: The adapter's argument, named in errors (e.g. ``"models"``, ``"llms"``).
        warmup: Load the router's embedder in a background thread now, unless
            ``$METALLM_WARMUP`` is ``0``.
        shadows: The router's shadow routers (``Router.set_shadows``).
        price_refs: ``(provider's model name, provider id)`` by member, to look prices up.
        price_sources: Filled with where each member's price came from (``"given"``,
            ``"genai-prices"``).

    Returns:
        The checked prices and the router.

    Raises:
        ConfigurationError: The pool is empty, a price is bad, the router's models differ, or
            the router holds a budget and a member has no price.

    >>> prices, router = check_pool(["mini", "pro"], {"pro": (2.5, 10.0)}, None, what="models")
    >>> router.arms
    ('mini', 'pro')
    """
    if not names:
        raise ConfigurationError(f"{what} is empty: give the router at least one model")
    checked = check_prices(prices, names)
    if router is None:
        router = Router(list(names))
    else:
        unknown = sorted(set(names) - set(router.arms))
        if unknown:
            raise ConfigurationError(
                f"the router's models {sorted(router.active_arms)} differ from the pool's "
                f"{sorted(names)}: it lacks {unknown} (add them with router.add_arm(name), or "
                "the adapter's add_model)"
            )
        retired = sorted(set(names) & router.retired)
        if retired:  # e.g. another process sharing the store removed them: start without them
            logger.warning(
                "metallm: %s %s retired in the router%s; this process starts without routing "
                "to them (to route to such a model again, add it under a new name)",
                retired,
                "is" if len(retired) == 1 else "are",
                "" if router.store is None else f" (by a process sharing {router.store})",
            )
        extra = sorted(set(router.active_arms) - set(names))
        if extra and router.store is None:  # with a store: models another process added
            raise ConfigurationError(
                f"the router's models {sorted(router.active_arms)} differ from the pool's "
                f"{sorted(names)}"
            )
    sources = {name: "given" for name in checked}
    for name, (model_ref, provider) in (price_refs or {}).items():
        if name in checked or not model_ref:
            continue
        found = list_price(model_ref, provider)
        if found is not None:
            checked[name], sources[name] = found, "genai-prices"
    if price_sources is not None:
        price_sources.update(sources)
    _say_what_has_no_price(names, checked, router)
    if shadows:
        router.set_shadows(shadows)
    if warmup and os.environ.get(WARMUP_ENV, "1").strip() != "0":
        router.warmup(background=True)
    return checked, router


def _say_what_has_no_price(
    names: Collection[str], prices: Mapping[str, object], router: Router
) -> None:
    """One warning naming the members without a price; an error when a budget needs them.

    Raises:
        ConfigurationError: The router holds a budget and a member has no price.
    """
    missing = sorted(set(names) - set(prices))
    if not missing:
        return
    how = (
        f"give each its price, e.g. prices={{{missing[0]!r}: (0.15, 0.60)}} (USD per 1M input "
        "and output tokens), or install metallm[prices] so list prices are looked up by name"
    )
    if router.budget is not None:
        raise ConfigurationError(
            f"a budget needs every member's price, and {missing} have none: {how}"
        )
    logger.warning(
        "metallm: %s %s no price, so %s calls cost 0 to the router (it cannot weigh cost); %s",
        missing,
        "has" if len(missing) == 1 else "have",
        "its" if len(missing) == 1 else "their",
        how,
    )


def admit_member(
    router: Router,
    members: Collection[str],
    name: str,
    *,
    price: tuple[float, ...] | None,
    capabilities: dict[str, Any] | None,
) -> tuple[dict[str, tuple[float, ...]], dict[str, dict[str, Any]]]:
    """An adapter's new member checked and added to ``router``; its price and capability overrides.

    A model another process already added to the router's store is not added twice.

    Args:
        router: The adapter's router.
        members: The adapter's members now.
        name: The new member's name.
        price: USD per 1M input and output tokens (None: none).
        capabilities: Capability overrides (None: read from the member).

    Returns:
        The member's checked price and capability overrides, by name.

    Raises:
        ConfigurationError: ``name`` is already a member, or the price is bad.
    """
    if name in members:
        raise ConfigurationError(f"{name!r} is already a member: give the new model a new name")
    prices = check_prices({name: price} if price is not None else {}, [name])
    checked = check_capabilities([name], {name: capabilities} if capabilities else {})
    if name not in router.arms:
        router.add_arm(name)
    return prices, checked


def retire_member(router: Router, members: Collection[str], name: str) -> None:
    """Retire an adapter's member in its router.

    Args:
        router: The adapter's router.
        members: The adapter's members now.
        name: The member to retire.

    Raises:
        UnknownArmError: ``name`` is not a member.
        ConfigurationError: It is the last model routed to.
    """
    if name not in members:
        raise UnknownArmError(name, tuple(members))
    router.retire_arm(name)


Answer = tuple[str, int | None, int | None]
"""What a member said to a prompt, and the input and output tokens its provider reported."""


def quiz_member(
    router: Router,
    name: str,
    prompts: Sequence[str],
    ask: Callable[[str], Answer],
    evaluator: Callable[[str, str], float],
    *,
    n: int,
    prices: Prices,
) -> list[float]:
    """Quiz a new member and onboard what it scored: the adapters' ``onboard_model``.

    ``router.quiz`` picks ``n`` of ``prompts``; ``ask(prompt)`` has the member answer one
    directly; ``evaluator(prompt, answer)`` grades it in [0, 1]; ``router.onboard`` learns the
    grades and the costs priced from the reported usage.

    Args:
        router: The adapter's router.
        name: The member just added.
        prompts: Your traffic (texts), to quiz it on.
        ask: Has the member answer one prompt directly: (answer, input tokens, output tokens).
        evaluator: Grades ``(prompt, answer)`` in [0, 1].
        n: How many prompts to ask.
        prices: USD per 1M tokens, by member.

    Returns:
        The grades, in the order asked.
    """
    asked = [prompts[i] for i in router.quiz(name, list(prompts), n=n)]
    grades, costs = [], []
    for text in asked:
        answer, input_tokens, output_tokens = ask(text)
        grades.append(float(evaluator(text, answer)))
        spent = usage_cost(prices, name, input_tokens or 0, output_tokens or 0)
        costs.append(spent or 0.0)
    router.onboard(name, asked, grades, costs)
    return grades


class PoolMembers(Generic[M]):
    """An adapter's members and what it knows of each, kept in step with its router.

    Both adapters hold their members the same way: the framework objects by name, each
    member's price (USD per 1M input and output tokens), the capability overrides the user gave
    and what each member can serve. This adds, onboards and removes members in all of them and
    in the router at once; the adapter only says how to read a member's capabilities.

    Args:
        router: The adapter's router.
        members: The framework objects by name (the adapter's own dict, changed in place).
        prices: Prices by name (changed in place).
        overrides: Capability overrides by name (changed in place).
        served: What each member can serve (changed in place).
        describe: What a member can serve, from the member and its override.
        price_sources: Where each member's price came from (changed in place).

    >>> from metallm.serving import Capabilities, Router
    >>> members, served = {"a": "model a"}, {}
    >>> pool = PoolMembers(Router(["a"], embedder=None), members, {}, {}, served,
    ...                    lambda member, override: Capabilities())
    >>> pool.add("b", "model b", price=(0.15, 0.6), capabilities=None)
    >>> sorted(members), sorted(served)
    (['a', 'b'], ['b'])
    """

    def __init__(
        self,
        router: Router,
        members: dict[str, M],
        prices: dict[str, tuple[float, ...]],
        overrides: dict[str, dict[str, Any]],
        served: dict[str, Capabilities],
        describe: Callable[[M, dict[str, Any] | None], Capabilities],
        price_sources: dict[str, str] | None = None,
    ) -> None:
        self._router = router
        self._members = members
        self._prices = prices
        self._overrides = overrides
        self._served = served
        self._describe = describe
        self._sources = price_sources if price_sources is not None else {}

    def add(
        self,
        name: str,
        member: M,
        *,
        price: tuple[float, ...] | None,
        capabilities: dict[str, Any] | None,
        price_ref: tuple[str | None, str | None] | None = None,
    ) -> None:
        """Add a member here and to the router (see the adapters' ``add_model``).

        Args:
            name: The new member's name.
            member: The framework object.
            price: USD per 1M input and output tokens (None: none).
            capabilities: Capability overrides (None: read from the member).
            price_ref: The provider's model name and provider id, to look a missing price up.

        Raises:
            ConfigurationError: ``name`` is already a member, or the price or capabilities are bad.
        """
        source = "given"
        if price is None and price_ref is not None and price_ref[0]:
            price, source = list_price(price_ref[0], price_ref[1]), "genai-prices"
        if price is None and name not in self._members:
            _say_what_has_no_price([name], {}, self._router)  # a budget refuses it: nothing added
        prices, checked = admit_member(
            self._router, self._members, name, price=price, capabilities=capabilities
        )
        self._members[name] = member
        self._prices.update(prices)
        if name in prices:
            self._sources[name] = source
        self._overrides.update(checked)
        self._served[name] = self._describe(member, checked.get(name))

    def onboard(
        self,
        name: str,
        prompts: Sequence[str],
        ask: Callable[[str], Answer],
        evaluator: Callable[[str, str], float],
        *,
        n: int,
    ) -> list[float]:
        """Quiz a member just added and onboard its grades (see ``quiz_member``).

        Args:
            name: The member.
            prompts: Your traffic, to quiz it on.
            ask: Has the member answer one prompt directly.
            evaluator: Grades ``(prompt, answer)`` in [0, 1].
            n: How many prompts to ask.

        Returns:
            The grades.
        """
        return quiz_member(self._router, name, prompts, ask, evaluator, n=n, prices=self._prices)

    def remove(self, name: str) -> None:
        """Retire a member in the router and forget it here (see the adapters' ``remove_model``).

        Args:
            name: The member.

        Raises:
            UnknownArmError: ``name`` is not a member.
            ConfigurationError: It is the last member routed to.
        """
        retire_member(self._router, self._members, name)
        del self._members[name]
        self._prices.pop(name, None)
        self._sources.pop(name, None)
        self._overrides.pop(name, None)
        self._served.pop(name, None)
