"""``python -m metallm.benchmarks``: the same as ``metallm speed`` (kept for the documented command)."""

import sys

from metallm.cli import main

if __name__ == "__main__":
    sys.exit(main(["speed", *sys.argv[1:]]))
