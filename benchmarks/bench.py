"""``python -m benchmarks.bench``: ``metallm bench`` beside kNN, a cluster router and an MLP.

The same arguments and the same result as ``metallm bench``, with ``others`` filled by the
routers of `benchmarks.baselines`, each built and scored on the same split.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from benchmarks.baselines import BASELINES
from metallm.cli import bench_arguments, bench_seeds, write_json
from metallm.evaluation._bench import FEATURE_CHOICES, run_bench, table_embedder
from metallm.evaluation._plots import plot_bench
from metallm.evaluation._reports import render_bench

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench with the baselines; the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description="savings and quality of routing on a routing table, beside other routers",
    )
    bench_arguments(parser)
    args = parser.parse_args(argv)
    if args.seeds:
        embedder = table_embedder(
            args.embedder, args.embedding_model, static_model=args.static_model
        )
        return bench_seeds(args, embedder, BASELINES)
    result = run_bench(
        args.data,
        seed=args.seed,
        test_size=args.test_size,
        embedder=table_embedder(
            args.embedder, args.embedding_model, static_model=args.static_model
        ),
        candidates=FEATURE_CHOICES[args.features],
        significance=args.significance,
        baselines=BASELINES,
    )
    print(render_bench(result))
    write_json(args.json_out, result.to_dict())
    if args.plot_out:
        print(f"wrote {plot_bench(result, args.plot_out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
