"""Pickling a router: its learned state, as ``save`` writes it, never a live connection."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Protocol, TypeVar

from metallm.exceptions import ConfigurationError

R = TypeVar("R", bound="Picklable")


class Picklable(Protocol):
    """What a router offers pickling: its parts' presence, ``save`` and ``load``."""

    store: Any
    budget: Any
    shadows: dict[str, Any]

    def save(self, path: str | Path) -> Path: ...


def reduce(router: Picklable, embedder: Any) -> tuple[Any, tuple[Any, ...]]:
    """``__reduce__`` for a router: its class, its saved state and how it embeds.

    Args:
        router: The router pickled.
        embedder: ``"default"``, None, or the caller's own embedder (pickled by reference).

    Returns:
        What pickle rebuilds the router with: ``restore(type(router), state, embedder)``.

    Raises:
        ConfigurationError: The router shares a store, holds a budget or has shadows: those
            live beside the process (a connection, shared spend), so pickling them would fork
            them silently.
    """
    parts = [
        name
        for name, present in (
            ("a store", router.store is not None),
            ("a budget", router.budget is not None),
            ("shadows", bool(router.shadows)),
        )
        if present
    ]
    if parts:
        raise ConfigurationError(
            f"a router with {' and '.join(parts)} cannot be pickled: build it in the receiving "
            "process with the same store (it loads the shared state there), or pickle a router "
            "without them (save() and Router.load() carry its learned state)"
        )
    with tempfile.TemporaryDirectory(prefix="metallm-pickle-") as folder:
        state = router.save(Path(folder) / "router.npz").read_bytes()
    return restore, (type(router), state, embedder)


def restore(cls: type[Any], state: bytes, embedder: Any) -> Any:
    """The router a pickle holds: ``cls.load`` of its saved state.

    Args:
        cls: The router's class.
        state: The bytes ``save`` wrote.
        embedder: As given to ``cls.load``.

    Returns:
        The router, with the pickled router's learned state.
    """
    with tempfile.TemporaryDirectory(prefix="metallm-pickle-") as folder:
        path = Path(folder) / "router.npz"
        path.write_bytes(state)
        return cls.load(path, embedder=embedder)
