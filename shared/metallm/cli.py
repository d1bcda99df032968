"""The ``metallm`` command.

``metallm demo`` runs the LangChain demo (needs the ``langchain`` and ``openai`` extras).
Framework code is loaded by module name only when a subcommand needs it, so the core
stays free of framework imports.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metallm", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="watch the router learn on a scripted pool (no keys needed)")
    demo.add_argument("--queries", type=int, default=240, help="how many queries to send (default 240)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--live", action="store_true",
                      help="use real OpenAI models (needs OPENAI_API_KEY) instead of the scripted pool")
    return parser


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
    return 2  # pragma: no cover - argparse enforces a command


if __name__ == "__main__":
    sys.exit(main())
