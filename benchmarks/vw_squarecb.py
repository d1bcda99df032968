r"""The library's default router beside Vowpal Wabbit's SquareCB, on `metallm simulate`'s replay.

The same table, the same seeded order, the same warm-start rows and the same full-information
reference as `metallm simulate` (regret of ``quality - p * cost / scale`` with p = 0.1): the
default `Router` (UCB with a 3% floor, its drift detector and capacity growth; warm, fitted as
a user fits it, ``router.fit(rows)``: tuned by cross-validation from 300 rows, below that the
rows kept and grown from) against
Vowpal Wabbit's contextual bandit ``--cb_explore_adf --squarecb`` with a linear model per model
(``-q sa``: the query's features crossed with the model's name) over the same vectors (the MiniLM
embedding and the prompt's length). VW is given each outcome's cost as ``-reward``; warm, it
learns each warm row once per model with that model's outcome (full information, as the
router's ``fit`` does). VW's choice is drawn from the distribution it returns, with the
order's seed.

Run it (the ``bench`` extra installs ``vowpalwabbit``; a minute or two per table and order;
``--models`` keeps some of a table's models, e.g. two for a 2-model pool):

    .venv/bin/python -m benchmarks.vw_squarecb --data ../shared/data/overruling.csv --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metallm.evaluation._bench import embed_table, table_embedder
from metallm.evaluation._datasets import load_routing_table
from metallm.evaluation._reports import render_table
from metallm.evaluation._simulate import hindsight_reward
from metallm.learning import with_prompt_length
from metallm.serving import Router

__all__ = ["Replay", "main", "replay_router", "replay_vw"]

COST_WEIGHT = 0.1
WARM = 0.05


@dataclass(frozen=True)
class Replay:
    """One learner on one order: its regret, mean quality and mean cost on the live rows."""

    method: str
    start: str
    seed: int
    regret: float
    quality: float
    cost: float


def _ordered(
    data: str | Path, seed: int, models: list[str] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    table = load_routing_table(data)
    E = with_prompt_length(embed_table(table, table_embedder(), progress=False), table.prompts)
    order = np.random.default_rng(seed).permutation(len(table))
    names = list(table.models)
    unknown = sorted(set(models or ()) - set(names))
    if unknown:
        raise SystemExit(f"{unknown} not in {data}'s models: {names}")
    keep = [names.index(m) for m in models] if models else list(range(len(names)))
    Q, C = table.quality[order][:, keep], table.cost[order][:, keep]
    return [names[j] for j in keep], E[order], Q, C


def replay_router(
    models: list[str], E: np.ndarray, Q: np.ndarray, C: np.ndarray, ref: np.ndarray,
    scale: float, n_warm: int, seed: int,
) -> tuple[float, float, float]:  # fmt: skip
    """The library's default router, cold (``n_warm`` 0) or fitted on the first rows."""
    router = Router(models, embedder=None, prompt_length=True, cost_weight=COST_WEIGHT,
                    cost_scale=scale, seed=seed)  # fmt: skip
    if n_warm:  # as a user fits it: tuned from 300 rows, below that kept and grown from
        router.fit(E[:n_warm], Q[:n_warm], C[:n_warm], seed=seed)
    index = {m: j for j, m in enumerate(router.arms)}
    got = np.empty((len(E) - n_warm, 2))
    regret = 0.0
    for i, t in enumerate(range(n_warm, len(E))):
        decision = router.select(E[t])
        j = index[decision.arm]
        router.record(decision.id, quality=Q[t, j], cost=C[t, j])
        got[i] = Q[t, j], C[t, j]
        regret += ref[t] - (Q[t, j] - COST_WEIGHT * C[t, j] / scale)
    return regret, float(got[:, 0].mean()), float(got[:, 1].mean())


def replay_vw(
    models: list[str], E: np.ndarray, Q: np.ndarray, C: np.ndarray, ref: np.ndarray,
    scale: float, n_warm: int, seed: int, options: str = "--squarecb",
) -> tuple[float, float, float]:  # fmt: skip
    """Vowpal Wabbit's ``cb_explore_adf`` with ``options``, on the same rows."""
    import vowpalwabbit

    vw = vowpalwabbit.Workspace(f"--cb_explore_adf {options} -q sa --quiet --random_seed {seed}")
    rng = np.random.default_rng(seed)
    actions = [f"|a m={j}" for j in range(len(models))]
    reward = Q - COST_WEIGHT * C / scale

    def shared(t: int) -> str:
        return "shared |s " + " ".join(f"{i}:{v:.6g}" for i, v in enumerate(E[t]) if v)

    def labelled(t: int, j: int, probability: float) -> list[str]:
        lines = [shared(t)] + actions
        lines[j + 1] = f"0:{-reward[t, j]:.6g}:{probability:.6g} {actions[j]}"
        return lines

    for t in range(n_warm):  # full information: every model's outcome, once each
        for j in range(len(models)):
            vw.learn(labelled(t, j, 1.0))
    got = np.empty((len(E) - n_warm, 2))
    regret = 0.0
    for i, t in enumerate(range(n_warm, len(E))):
        pmf = np.asarray(vw.predict([shared(t)] + actions), dtype=np.float64)
        pmf /= pmf.sum()
        j = int(rng.choice(len(models), p=pmf))
        vw.learn(labelled(t, j, float(pmf[j])))
        got[i] = Q[t, j], C[t, j]
        regret += ref[t] - reward[t, j]
    vw.finish()
    return regret, float(got[:, 0].mean()), float(got[:, 1].mean())


def compare(data: str | Path, seeds: list[int], keep: list[str] | None = None) -> list[Replay]:
    """Both learners, cold and warm, on each order (``keep``: some of the table's models)."""
    out = []
    for seed in seeds:
        models, E, Q, C = _ordered(data, seed, keep)
        scale = float(C.mean(axis=0).max())
        ref = hindsight_reward(models, E, Q, C, scale=scale, cost_weight=COST_WEIGHT, seed=seed)
        n_warm = int(round(WARM * len(E)))
        for start, skip in (("cold", 0), ("warm", n_warm)):
            # every run is scored on the rows after the warm start, as `metallm simulate` does:
            # a cold run starts there, a warm one learns the rows before first
            rows = slice(n_warm - skip, None)
            for method, run in (("metallm default", replay_router), ("VW SquareCB", replay_vw)):
                regret, quality, cost = run(
                    models, E[rows], Q[rows], C[rows], ref[rows], scale, skip, seed
                )
                out.append(Replay(method, start, seed, regret, quality, cost))
    return out


def render(table: str, replays: list[Replay]) -> str:
    """Mean regret (sd, per order) per method and start."""
    rows = [["start", "method", "regret: mean", "sd", "per order", "quality", "$/query"]]
    for start in ("cold", "warm"):
        for method in ("metallm default", "VW SquareCB"):
            mine = [r for r in replays if r.start == start and r.method == method]
            regrets = np.array([r.regret for r in mine])
            rows.append([
                start, method, f"{regrets.mean():.1f}", f"{regrets.std(ddof=1) if len(mine) > 1 else 0:.1f}",
                " / ".join(f"{r:.1f}" for r in regrets),
                f"{np.mean([r.quality for r in mine]):.4f}", f"{np.mean([r.cost for r in mine]):.3g}",
            ])  # fmt: skip
    return (
        f"{table}: regret against the full-information router, p = {COST_WEIGHT}\n"
        + render_table(rows)
    )


def main(argv: list[str] | None = None) -> int:
    """Run it (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, action="append", help="a routing table (repeat)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--models", help="comma-separated: keep these of each table's models")
    parser.add_argument("--json", help="write every replay here")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    figures: dict[str, Any] = {}
    keep = args.models.split(",") if args.models else None
    for data in args.data:
        replays = compare(data, seeds, keep)
        name = Path(data).stem + (f" ({len(keep)} models)" if keep else "")
        figures[name] = [asdict(r) for r in replays]
        print(render(name, replays))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
