"""A router's learned state in a file: ``.npz`` arrays plus a JSON header (never pickle).

``Router.save`` / ``Router.load`` and the store snapshots are these functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metallm.embedding.embedders import Embedder
from metallm.exceptions import StateFileError
from metallm.learning.features import PromptLengthFeatures
from metallm.learning.policies import policy_from_dict
from metallm.state._state_file import FORMAT_VERSION, read_state, write_state

if TYPE_CHECKING:
    from metallm.serving.router import Router

__all__ = ["MAX_SNAPSHOT_ARRAY_BYTES", "adopt", "load", "save"]

MAX_SNAPSHOT_ARRAY_BYTES = 256 << 20
"""The most a store's snapshot may inflate to (a 10-model router with 417 features needs 14 MB;
a neighbours memory of 10,000 MiniLM rows 15 MB): far below what would hurt a process."""


def save(router: Router, path: str | Path) -> Path:
    """Write the router's learned state atomically; pending decisions are not saved."""
    with router._lock:
        learned, arrays = router.bandit.to_state()
        header = {
            "format_version": FORMAT_VERSION,
            "arms": list(router.arms),
            "dimension": learned["dimension"],
            "cost_weight": router.cost_weight,
            "cost_scale": router.fixed_cost_scale,
            "policy": router.policy.to_dict(),
            "features": learned["features"],
            "n_updates": learned["n_updates"],
            "prior_counts": learned["prior_counts"],
            "neighbours": learned.get("neighbours"),
            "failures": list(router._failures),
            "retired": sorted(router.retired),
            "embedding_model": getattr(router.embedder, "model_name", None),
        }
    return write_state(path, header, arrays)


def load(
    cls: type[Router], path: str | Path, *, embedder: Embedder | None | str, seed: int | None
) -> Router:
    """A router of class ``cls`` with the state saved by :func:`save`; :class:`StateFileError` if bad."""
    header, arrays = read_state(path)
    try:
        router = cls(
            header["arms"],
            cost_weight=header["cost_weight"],
            policy=policy_from_dict(header["policy"]),
            embedder=embedder,
            cost_scale=header["cost_scale"],
            seed=seed,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise StateFileError(path, f"the header is incomplete or invalid ({e!r})") from e
    adopt(router, header, arrays, path)
    retired = header.get("retired", [])  # absent in files written before pools changed
    if not (isinstance(retired, list) and set(retired) <= set(router.arms)):
        raise StateFileError(path, f"the retired models {retired!r} are not among its models")
    for name in retired:
        router._retire_arm_here(name)
    return router


def adopt(
    router: Router, header: dict[str, Any], arrays: dict[str, np.ndarray], source: str | Path
) -> None:
    """Give ``router`` the learned state (features, statistics) of a saved one."""
    try:
        saved = list(header["arms"])
    except (KeyError, TypeError) as e:
        raise StateFileError(source, f"the header is incomplete or invalid ({e!r})") from e
    joined = list(router.arms)[len(saved) :]  # models added since that state was written
    if list(router.arms)[: len(saved)] != saved:
        raise StateFileError(source, f"it holds models {saved}, this router {list(router.arms)}")
    failures = header.get("failures", [0] * len(saved))  # absent in metallm 0.1 files
    with router._lock:
        try:
            router.bandit.n_arms = len(saved)
            router.bandit.adopt(header, arrays)  # checks the arrays against the models first
        except ValueError as e:
            router.bandit.n_arms = len(router.arms)
            raise StateFileError(source, str(e)) from e
        for _ in joined:
            router.bandit.add_arm()
        if not (
            isinstance(failures, list)
            and len(failures) == len(saved)
            and all(isinstance(f, int) and f >= 0 for f in failures)
        ):
            router.bandit.reset()
            raise StateFileError(
                source, f"the failure counts {failures!r} do not fit {len(saved)} models"
            )
        router._failures = [*failures, *([0] * len(joined))]


def adopt_bytes(router: Router, data: bytes, source: str) -> None:
    """:func:`adopt` the state in ``data`` (a store snapshot), named ``source`` in errors."""
    header, arrays = read_state(source, data=data, max_total_bytes=MAX_SNAPSHOT_ARRAY_BYTES)
    features = header.get("features")
    theirs = isinstance(features, dict) and features.get("name") == PromptLengthFeatures.name
    if theirs != router.reads_prompt_length:
        raise StateFileError(
            source,
            f"it was written by a router that {'reads' if theirs else 'does not read'} the "
            f"prompt's length and this one {'does' if router.reads_prompt_length else 'does not'}"
            " (a snapshot never changes a router's feature map)",
        )
    adopt(router, header, arrays, source)
