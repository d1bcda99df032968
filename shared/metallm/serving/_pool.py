"""Checking a framework adapter's pool: its members, their prices and the router they share."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Generic, TypeVar

from metallm.exceptions import ConfigurationError, UnknownArmError
from metallm.serving._capabilities import Capabilities, check_capabilities
from metallm.serving._pricing import Prices, check_prices, usage_cost
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
) -> tuple[dict[str, tuple[float, float]], Router]:
    """The checked prices and the router for a pool of named models (a new router when None).

    Args:
        names: The members' names.
        prices: USD per 1M input and output tokens, by member (some may lack one).
        router: The router to share (None: a new one over ``names``).
        what: The adapter's argument, named in errors (e.g. ``"models"``, ``"llms"``).
        warmup: Load the router's embedder in a background thread now, unless
            ``$METALLM_WARMUP`` is ``0``.
        shadows: The router's shadow routers (``Router.set_shadows``).

    Returns:
        The checked prices and the router.

    Raises:
        ConfigurationError: The pool is empty, a price is bad, or the router's models differ.

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
    if shadows:
        router.set_shadows(shadows)
    if warmup and os.environ.get(WARMUP_ENV, "1").strip() != "0":
        router.warmup(background=True)
    return checked, router


def admit_member(
    router: Router,
    members: Collection[str],
    name: str,
    *,
    price: tuple[float, float] | None,
    capabilities: dict[str, Any] | None,
) -> tuple[dict[str, tuple[float, float]], dict[str, dict[str, Any]]]:
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
        prices: dict[str, tuple[float, float]],
        overrides: dict[str, dict[str, Any]],
        served: dict[str, Capabilities],
        describe: Callable[[M, dict[str, Any] | None], Capabilities],
    ) -> None:
        self._router = router
        self._members = members
        self._prices = prices
        self._overrides = overrides
        self._served = served
        self._describe = describe

    def add(
        self,
        name: str,
        member: M,
        *,
        price: tuple[float, float] | None,
        capabilities: dict[str, Any] | None,
    ) -> None:
        """Add a member here and to the router (see the adapters' ``add_model``).

        Args:
            name: The new member's name.
            member: The framework object.
            price: USD per 1M input and output tokens (None: none).
            capabilities: Capability overrides (None: read from the member).

        Raises:
            ConfigurationError: ``name`` is already a member, or the price or capabilities are bad.
        """
        prices, checked = admit_member(
            self._router, self._members, name, price=price, capabilities=capabilities
        )
        self._members[name] = member
        self._prices.update(prices)
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
        self._overrides.pop(name, None)
        self._served.pop(name, None)
