"""The ``metallm`` command.

``metallm demo`` runs the LangChain demo (needs the ``langchain`` and ``openai`` extras);
``metallm bench`` and ``metallm simulate`` measure routing on a routing table.
Framework code is loaded by module name only when a subcommand needs it, so the core
stays free of framework imports.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from metallm.exceptions import MetaLLMError

__all__ = ["main"]


FEATURE_NAMES = ("cv", "projected64", "projected128", "embedding")
"""``metallm bench --features`` (kept here so ``--help`` needs no numpy; see bench.FEATURE_CHOICES)."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metallm", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="watch the router learn on a scripted pool (no keys needed)")
    demo.add_argument("--queries", type=int, default=240, help="how many queries to send (default 240)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--live", action="store_true",
                      help="use real OpenAI models (needs OPENAI_API_KEY) instead of the scripted pool")
    bench = commands.add_parser("bench", help="savings and quality of routing on a routing table")
    bench.add_argument("--data", required=True, help="routing table: .csv, .jsonl or .parquet")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--test-size", type=float, default=0.3)
    bench.add_argument("--json", dest="json_out", help="write the report as JSON here")
    bench.add_argument("--plot", dest="plot_out", help="write the cost-quality plot (PNG) here")
    bench.add_argument("--embedding-model", help="embedding model (default: $METALLM_EMBEDDING_MODEL or MiniLM)")
    bench.add_argument("--static-model", help="embed with a static embedder made by `metallm distill` (a folder)")
    bench.add_argument("--features", choices=FEATURE_NAMES, default="cv",
                       help="the router's feature map: chosen by cross-validation (default), or one fixed map")

    sim = commands.add_parser("simulate", help="online replay with bandit feedback: regret of each policy")
    sim.add_argument("--data", required=True, help="routing table: .csv, .jsonl or .parquet")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--alpha", type=float, default=None, help="UCB exploration weight (default: the library's)")
    sim.add_argument("--warm-start", type=float, default=0.05, help="fraction of rows learned offline first")
    sim.add_argument("--cost-weight", type=float, default=0.1, help="p in the reward for regret")
    sim.add_argument("--budget", type=float, default=None, help="hold this mean $/query online")
    sim.add_argument("--json", dest="json_out")
    sim.add_argument("--plot", dest="plot_out")
    sim.add_argument("--embedding-model")
    sim.add_argument("--static-model", help="embed with a static embedder made by `metallm distill` (a folder)")
    distill = commands.add_parser("distill", help="make a fast static embedder from the Sentence-BERT model")
    distill.add_argument("--out", required=True, help="folder to write it to")
    distill.add_argument("--model", help="model to distil (default: $METALLM_EMBEDDING_MODEL or MiniLM)")
    distill.add_argument("--dims", type=int, default=256)
    return parser


def _bench(args: argparse.Namespace) -> int:
    import json

    from metallm.bench import (
        FEATURE_CHOICES,
        default_embedder,
        format_report,
        plot_report,
        public_report,
        run_bench,
    )

    result = run_bench(args.data, seed=args.seed, test_size=args.test_size,
                       embedder=default_embedder(args.embedding_model, static_model=args.static_model),
                       candidates=FEATURE_CHOICES[args.features])
    print(format_report(result))
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump(public_report(result), handle, indent=2)
        print(f"\nwrote {args.json_out}")
    if args.plot_out:
        print(f"wrote {plot_report(result, args.plot_out)}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import json

    from metallm.bench import default_embedder
    from metallm.simulate import DEFAULT_ALPHA, format_simulation, plot_simulation, run_simulation

    result = run_simulation(
        args.data, seed=args.seed, alpha=DEFAULT_ALPHA if args.alpha is None else args.alpha,
        warm_start=args.warm_start, cost_weight=args.cost_weight, budget=args.budget,
        embedder=default_embedder(args.embedding_model, static_model=args.static_model),
    )
    print(format_simulation(result))
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump(result.to_dict(), handle, indent=2)
        print(f"\nwrote {args.json_out}")
    if args.plot_out:
        print(f"wrote {plot_simulation(result, args.plot_out)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "demo":
        try:
            demo = importlib.import_module("metallm_langchain.demo")
        except ImportError as e:
            print(f"metallm demo needs the LangChain extras: pip install 'metallm[langchain,openai]' ({e})",
                  file=sys.stderr)
            return 2
        return int(demo.run(queries=args.queries, seed=args.seed, live=args.live))
    try:
        if args.command == "bench":
            return _bench(args)
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "distill":
            from metallm.embedders import distill_static_embedder

            print(f"wrote {distill_static_embedder(args.out, args.model, dims=args.dims)}")
            return 0
    except MetaLLMError as e:
        print(f"metallm {args.command}: {e}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse enforces a command


if __name__ == "__main__":
    sys.exit(main())
