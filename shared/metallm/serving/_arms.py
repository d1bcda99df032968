"""The pool of models a router routes to: their names, the retired ones, their failure counts."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from metallm.exceptions import ConfigurationError, InvalidInputError, UnknownArmError

__all__ = ["ArmPool"]


class ArmPool:
    """Names of a router's models in the order they joined, the retired ones and failures per model.

    A model keeps its index for life: retiring it leaves it out of routing, and its history
    (statistics, failure count) stays under its name.

    Args:
        names: The models, unique non-empty strings, at least one.

    Raises:
        ConfigurationError: The pool is empty or a string, or a name is empty, not a string
            or repeated.

    >>> pool = ArmPool(["small", "large"])
    >>> pool.retire("small"); pool.active
    ('large',)
    """

    def __init__(self, names: Sequence[str]) -> None:
        if isinstance(names, str):
            raise ConfigurationError(
                f"the models must be a list of names, got the string {names!r}: "
                f"e.g. Router([{names!r}, ...])"
            )
        names = list(names)
        if not names:
            raise ConfigurationError("the pool is empty: give the router at least one model")
        if any(not isinstance(a, str) or not a for a in names):
            raise ConfigurationError(f"model names must be non-empty strings, got {names!r}")
        if len(set(names)) != len(names):
            dupes = sorted({a for a in names if names.count(a) > 1})
            raise ConfigurationError(f"duplicate model names: {dupes}")
        self.names: tuple[str, ...] = tuple(names)
        """Every model, retired ones included, in the order they joined."""
        self.index: dict[str, int] = {a: i for i, a in enumerate(self.names)}
        """Each model's index in `names` (and in the bandit's arms)."""
        self.retired: set[str] = set()
        """Models no longer routed to."""
        self.retired_index: set[int] = set()
        """The indices of the retired models."""
        self.failures: list[int] = [0] * len(self.names)
        """Provider failures learned per model (each learned as quality 0 and cost 0)."""

    @property
    def active(self) -> tuple[str, ...]:
        """The models routed to: `names` less the retired ones."""
        return tuple(a for a in self.names if a not in self.retired)

    def index_of(self, name: str) -> int:
        """The index of model ``name``.

        Raises:
            UnknownArmError: ``name`` is not in the pool.
        """
        try:
            return self.index[name]
        except (KeyError, TypeError):
            raise UnknownArmError(name, self.names) from None

    def add(self, name: str) -> bool:
        """Add ``name`` at the end; False when it is already in the pool (nothing changes)."""
        if name in self.index:
            return False
        self.names = (*self.names, name)
        self.index[name] = len(self.names) - 1
        self.failures.append(0)
        return True

    def retire(self, name: str) -> None:
        """Leave ``name`` out of routing from now on (its history is kept)."""
        self.retired.add(name)
        self.retired_index.add(self.index_of(name))

    def reset_failures(self) -> None:
        """Forget the failure counts (the statistics start again)."""
        self.failures = [0] * len(self.names)

    def allowed(
        self, exclude: Iterable[str], force: str | None, cooling: Collection[str]
    ) -> tuple[set[int], int | None]:
        """The indices left out of one choice and the forced one.

        Args:
            exclude: Models the caller leaves out.
            force: The model the caller forces (None: the policy chooses).
            cooling: Models cooling down after failures; left out unless that leaves none.

        Returns:
            The excluded indices (asked for, retired, cooling down) and the forced index.

        Raises:
            UnknownArmError: A name is not in the pool.
            ConfigurationError: ``force`` names a retired model.
            InvalidInputError: Every model is excluded.
        """
        excluded = {self.index_of(a) for a in exclude} | self.retired_index
        forced = None if force is None else self.index_of(force)
        if forced is not None and forced in self.retired_index:
            raise ConfigurationError(
                f"{force!r} is retired: it is no longer routed to (add it under a new name)"
            )
        if len(excluded) == len(self.names) and forced is None:
            raise InvalidInputError("every model is excluded: nothing left to route to")
        if cooling:
            cold = {self.index[a] for a in cooling}
            if len(excluded | cold) < len(self.names):
                excluded |= cold
        return excluded, forced
