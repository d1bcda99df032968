"""The team's research harness: not part of the ``metallm`` package, run from a clone.

Each module is a command, ``python -m benchmarks.<name> --help``:

* ``bench``: ``metallm bench`` beside three routers from the literature (``baselines``);
* ``scenarios``: a pool that changes during an online replay (drift, a new model);
* ``onboarding``: each model of a table added late, with a short quiz;
* ``offpolicy_validation``: the off-policy estimators checked where the truth is known;
* ``speed``: the speed and memory budget, in interleaved rounds (``embedding_speed``,
  ``langchain_overhead`` are its sections);
* ``budget_rows``, ``drift_by_history``, ``bench_offpolicy``: one-off studies.
"""
