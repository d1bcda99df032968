#!/usr/bin/env bash
# The tests, as the README and CI run them: every test, in two parts on a 2-core machine.
# 1. the tests that do not time themselves, on two pytest-xdist workers;
# 2. the `serial` ones (they bound wall-clock times: routing under a stalled store, a caller
#    not waiting for a judge; tests/conftest.py lists them) alone, with nothing beside them.
# Extra arguments go to both parts (e.g. -x, -k store). `.venv/bin/python -m pytest` still
# runs everything in one process, more slowly.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${METALLM_VENV:-.venv}/bin/python"
status=0
# one BLAS / OpenMP thread per worker: two workers each spinning two threads on two cores
# took this part from 290 s to 500 s
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
  "$PY" -m pytest -n 2 -m "not serial" "$@" || status=$?
"$PY" -m pytest -p no:xdist -m serial "$@"
serial=$?
[ "$status" = 5 ] && status=0  # 5: nothing collected (arguments that select one part only)
[ "$serial" = 5 ] && serial=0
[ "$status" != 0 ] && exit "$status"
exit "$serial"
