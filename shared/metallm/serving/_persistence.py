"""A router's learned state in a file: ``.npz`` arrays plus a JSON header (never pickle).

``Router.save`` / ``Router.load`` and the store snapshots use these functions, on a router's
`Learner`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from metallm.exceptions import StateFileError
from metallm.learning import PromptLengthFeatures, policy_from_dict
from metallm.state import (
    FORMAT_VERSION,
    read_state,
    write_state,
)

if TYPE_CHECKING:
    from metallm.serving._learner import Learner

__all__ = [
    "MAX_SNAPSHOT_ARRAY_BYTES",
    "adopt",
    "adopt_bytes",
    "load",
    "read",
    "retire_saved",
    "router_settings",
    "save",
]

R = TypeVar("R")

MAX_SNAPSHOT_ARRAY_BYTES = 256 << 20
"""The most a store's snapshot may inflate to (a 10-model router with 417 features needs 14 MB;
a neighbours memory of 10,000 MiniLM rows 15 MB): far below what would hurt a process."""


def save(learner: Learner, path: str | Path) -> Path:
    """Write a router's learned state atomically; pending decisions are not saved.

    Args:
        learner: The router's learned state.
        path: Where to write (``.npz``).

    Returns:
        The path written.
    """
    with learner.lock:
        learned, arrays = learner.bandit.to_state()
        header = {
            "format_version": FORMAT_VERSION,
            "arms": list(learner.pool.names),
            "dimension": learned["dimension"],
            "cost_weight": learner.reward.cost_weight,
            "cost_scale": learner.reward.cost_scale,
            "policy": learner.bandit.policy.to_dict(),
            "features": learned["features"],
            "n_updates": learned["n_updates"],
            "prior_counts": learned["prior_counts"],
            "neighbours": learned.get("neighbours"),
            "drift": learned.get("drift"),
            "growth": learned.get("growth"),
            "failures": list(learner.pool.failures),
            "retired": sorted(learner.pool.retired),
            "embedding_model": learner.embedding_model,
        }
    return write_state(path, header, arrays)


def read(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and arrays of a state file written by `save`.

    Raises:
        StateFileError: The file is missing, damaged or of another format.
    """
    return read_state(path)


def load(path: str | Path, build: Callable[[dict[str, Any]], tuple[R, Learner]]) -> R:
    """A router rebuilt from a state file: ``build(settings)`` makes it, then it adopts the state.

    Args:
        path: The state file.
        build: Makes a router (and hands its learner) from the header's settings (``arms``,
            ``cost_weight``, ``policy``, ``cost_scale``).

    Raises:
        StateFileError: The file is missing, damaged, or not a router's state.
    """
    header, arrays = read(path)
    try:
        router, learner = build(router_settings(header, path))
    except (TypeError, ValueError) as e:
        raise StateFileError(path, f"the header is incomplete or invalid ({e!r})") from e
    adopt(learner, header, arrays, path)
    retire_saved(learner, header, path)
    return router


def router_settings(header: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The keyword arguments a router is rebuilt with from a state file's header.

    Raises:
        StateFileError: The header lacks them or holds nonsense.
    """
    try:
        return {
            "arms": list(header["arms"]),
            "cost_weight": header["cost_weight"],
            "policy": policy_from_dict(header["policy"]),
            "cost_scale": header["cost_scale"],
        }
    except (KeyError, TypeError, ValueError) as e:
        raise StateFileError(path, f"the header is incomplete or invalid ({e!r})") from e


def retire_saved(learner: Learner, header: dict[str, Any], path: str | Path) -> None:
    """Retire the models a state file lists as retired.

    Raises:
        StateFileError: It lists models the state does not hold.
    """
    retired = header.get("retired", [])  # absent in files written before pools changed
    if not (isinstance(retired, list) and set(retired) <= set(learner.pool.names)):
        raise StateFileError(path, f"the retired models {retired!r} are not among its models")
    for name in retired:
        learner.retire_arm(name)


def adopt(
    learner: Learner, header: dict[str, Any], arrays: dict[str, np.ndarray], source: str | Path
) -> None:
    """Give a router's learner the learned state (features, statistics) of a saved one.

    Raises:
        StateFileError: The saved state does not fit this router's models.
    """
    try:
        saved = list(header["arms"])
    except (KeyError, TypeError) as e:
        raise StateFileError(source, f"the header is incomplete or invalid ({e!r})") from e
    names = list(learner.pool.names)
    joined = names[len(saved) :]  # models added since that state was written
    if names[: len(saved)] != saved:
        raise StateFileError(source, f"it holds models {saved}, this router {names}")
    failures = header.get("failures", [0] * len(saved))  # absent in metallm 0.1 files
    bandit = learner.bandit
    with learner.lock:
        try:
            bandit.n_arms = len(saved)
            bandit.adopt(header, arrays)  # checks the arrays against the models first
        except ValueError as e:
            bandit.n_arms = len(names)
            raise StateFileError(source, str(e)) from e
        for _ in joined:
            bandit.add_arm()
        if not (
            isinstance(failures, list)
            and len(failures) == len(saved)
            and all(isinstance(f, int) and f >= 0 for f in failures)
        ):
            bandit.reset()
            raise StateFileError(
                source, f"the failure counts {failures!r} do not fit {len(saved)} models"
            )
        learner.pool.failures = [*failures, *([0] * len(joined))]


def adopt_bytes(learner: Learner, data: bytes, source: str) -> None:
    """`adopt` the state in ``data`` (a store snapshot), named ``source`` in errors.

    Raises:
        StateFileError: The snapshot is damaged, too large, or written by a router that reads
            its vectors another way (a snapshot never changes a router's feature map).
    """
    header, arrays = read_state(source, data=data, max_total_bytes=MAX_SNAPSHOT_ARRAY_BYTES)
    features = header.get("features")
    theirs = isinstance(features, dict) and features.get("name") == PromptLengthFeatures.name
    if theirs != learner.reads_prompt_length:
        raise StateFileError(
            source,
            f"it was written by a router that {'reads' if theirs else 'does not read'} the "
            f"prompt's length and this one {'does' if learner.reads_prompt_length else 'does not'}"
            " (a snapshot never changes a router's feature map)",
        )
    adopt(learner, header, arrays, source)
