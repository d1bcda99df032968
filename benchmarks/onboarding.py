"""``python -m benchmarks.onboarding``: a model added to a fitted router with a short quiz, measured per model.

For each model of a routing table in turn, on the bench's train/test split: a router fitted on
the training rows without it; the same router after ``add_arm`` and ``onboard`` on the model's
outcomes for the ``n`` training prompts ``quiz`` chose (with and without the combination warm
start); and a router fitted with every model from the start. Each is scored on the test rows
at ``p = 0`` (the best predicted quality), the setting where a misjudged new model costs most.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metallm.embedding._embedders import Embedder
from metallm.evaluation._bench import embed_table, split_rows, table_embedder
from metallm.evaluation._datasets import load_routing_table
from metallm.evaluation._reports import render_table
from metallm.learning._features import with_prompt_length
from metallm.serving._router import Router

__all__ = ["OnboardingResult", "OnboardingRow", "render_onboarding", "run_onboarding"]


@dataclass(frozen=True)
class OnboardingRow:
    """One model added late: test quality at p = 0 of each router."""

    model: str
    without: float
    quiz_only: float
    quiz_combination: float
    full: float


@dataclass
class OnboardingResult:
    """What ``python -m benchmarks.onboarding`` measured on one routing table."""

    dataset: str
    n_quiz: int
    n_test: int
    rows: list[OnboardingRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-able data."""
        return {
            "dataset": self.dataset,
            "n_quiz": self.n_quiz,
            "n_test": self.n_test,
            "rows": [asdict(r) for r in self.rows],
        }


def _quality_at_zero(
    router: Router, vectors: np.ndarray, Q: np.ndarray, columns: list[int]
) -> float:
    chosen = np.argmax(router.predict(vectors, widths=False).quality, axis=1)
    return float(Q[np.arange(len(Q)), np.array(columns)[chosen]].mean())


def run_onboarding(
    data: str | Path,
    *,
    n: int = 30,
    seed: int = 0,
    test_size: float = 0.3,
    embedder: Embedder | None = None,
    progress: bool = True,
) -> OnboardingResult:
    """Onboard each model of ``data`` in turn; see the module docstring."""
    table = load_routing_table(data)
    vectors = with_prompt_length(
        embed_table(table, embedder or table_embedder(), progress=progress), table.prompts
    )
    train, test = split_rows(len(table), seed=seed, test_size=test_size)
    Q, C = table.quality, table.cost
    models = list(table.models)

    def fitted(columns: list[int]) -> Router:
        return Router(
            [models[j] for j in columns], embedder=None, prompt_length=True, seed=seed
        ).fit(vectors[train], Q[train][:, columns], C[train][:, columns], tune=False)

    everyone = list(range(len(models)))
    full = _quality_at_zero(fitted(everyone), vectors[test], Q[test], everyone)
    result = OnboardingResult(table.name, n, len(test))
    iterator: Any = enumerate(models)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(list(iterator), desc="onboarding", unit="model")
    for j, model in iterator:
        others = [i for i in everyone if i != j]
        scores = []
        for warm_start in ("skip", None, "combination"):
            router = fitted(others)
            if warm_start == "skip":
                scores.append(_quality_at_zero(router, vectors[test], Q[test], others))
                continue
            router.add_arm(model)
            asked = train[router.quiz(model, vectors[train], n=n)]
            router.onboard(model, vectors[asked], Q[asked, j], C[asked, j], warm_start=warm_start)
            scores.append(_quality_at_zero(router, vectors[test], Q[test], [*others, j]))
        without, quiz_only, quiz_combination = scores
        result.rows.append(OnboardingRow(model, without, quiz_only, quiz_combination, full))
    return result


def render_onboarding(result: OnboardingResult) -> str:
    """The result as a table: each model's test quality at p = 0 (and the gaps that matter)."""
    rows = [["model added late", "without it", "quiz only", "quiz + combination", "from the start"]]
    for r in result.rows:
        rows.append(
            [
                r.model,
                f"{r.without:.4f}",
                f"{r.quiz_only:.4f} ({r.quiz_only - r.without:+.4f})",
                f"{r.quiz_combination:.4f} ({r.quiz_combination - r.without:+.4f})",
                f"{r.full:.4f}",
            ]
        )
    return "\n".join(
        [
            f"python -m benchmarks.onboarding: {result.dataset}, each model added late with a {result.n_quiz}-prompt "
            f"quiz; test quality at p = 0 on {result.n_test} prompts (change vs without it)",
            "",
            render_table(rows),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.onboarding --data TABLE``: each model added late, with a quiz."""
    import argparse

    from metallm.cli import table_arguments, write_json

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.onboarding",
        description="each model of a table added late with a short quiz: test quality beside "
        "the router without it and the router fitted with it",
    )
    table_arguments(parser, plot=None)
    parser.add_argument("--n", type=int, default=30, help="quiz prompts per added model")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    result = run_onboarding(
        args.data,
        n=args.n,
        seed=args.seed,
        embedder=table_embedder(
            args.embedder, args.embedding_model, static_model=args.static_model
        ),
    )
    print(render_onboarding(result))
    write_json(args.json_out, result.to_dict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
