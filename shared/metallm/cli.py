"""The one ``metallm`` command.

Built in: ``bench`` and ``simulate`` (routing quality on your routing table), ``evaluate --log``
(other policies and the shadows estimated from a store's log) and ``distill`` (a fast static
embedder). The team's research harness (baselines, scenarios, the onboarding evaluation, the
speed budget) is not in the package: it is ``benchmarks/`` in the repository, run as
``python -m benchmarks.<name>``. Installed packages add
commands through the ``metallm.commands`` entry-point group (the LangChain adapter adds
``demo``); such a command is imported only when it is run, so ``metallm --help`` stays fast
and the core never imports a framework.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from metallm.exceptions import ConfigurationError, MetaLLMError

__all__ = ["COMMAND_GROUP", "Command", "bench_arguments", "main", "table_arguments", "write_json"]

COMMAND_GROUP = "metallm.commands"
"""Entry-point group of commands that installed packages add to ``metallm``."""

FEATURE_NAMES = ("cv", "projected64", "projected128", "embedding")
"""``metallm bench --features`` (kept here so ``--help`` needs no numpy; see bench.FEATURE_CHOICES)."""

EMBEDDER_NAMES = ("sentence-transformers", "onnx", "onnx-int8", "default")
"""``--embedder`` of bench and simulate (the same names as ``metallm.embedding._choice.EMBEDDER_KINDS``)."""


@dataclass(frozen=True)
class Command:
    """A ``metallm`` subcommand: what an entry point in `COMMAND_GROUP` points to.

    Attributes:
        help: One line for ``metallm --help``.
        configure: Adds the command's arguments to its parser.
        run: Runs the command with the parsed arguments; returns the exit code.
    """

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _plugins() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}


TABLE_FORMAT = """\
a routing table (--data): one row per prompt, every model's outcome on it
  prompt             the text the router sees
  task               (optional) the prompt's task or source, for per-task figures
  <model>            that model's quality on this prompt, in [0, 1]
  <model>|total_cost USD that model's answer cost

  example (CSV; .jsonl holds the same keys per line, .parquet the same columns):
    prompt,task,mini,pro,mini|total_cost,pro|total_cost
    "Is 17 prime? Answer yes or no.",math,1,1,0.00002,0.0004
    "Summarise the clause below, in one line: ...",legal,0,1,0.00011,0.0021

  Make one from your own traffic: send a sample of prompts to every model, grade each answer
  (a test, a label, a judge) and write the costs the providers billed (docs/benchmarks.md)."""


def table_arguments(parser: argparse.ArgumentParser, *, plot: str | None) -> None:
    """Add the arguments of a command run on a routing table: the table, the seed, the outputs, the embedder.

    Args:
        parser: The command's parser.
        plot: What the ``--plot`` PNG shows (None: the command has no plot).
    """
    parser.add_argument(
        "--data", required=True, help="routing table: .csv, .jsonl or .parquet (format below)"
    )
    parser.epilog = TABLE_FORMAT
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_out", help="write the result as JSON here")
    if plot is not None:
        parser.add_argument("--plot", dest="plot_out", help=f"write the {plot} plot (PNG) here")
    parser.add_argument(
        "--embedding-model", help="embedding model (default: $METALLM_EMBEDDING_MODEL or MiniLM)"
    )
    parser.add_argument(
        "--embedder",
        choices=EMBEDDER_NAMES,
        default="sentence-transformers",
        help="what computes the embeddings (default: sentence-transformers, the reference; "
        "'default' is what a Router uses when given none)",
    )
    parser.add_argument(
        "--static-model", help="embed with a static embedder made by `metallm distill` (a folder)"
    )


def bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``metallm bench``'s arguments (``python -m benchmarks.bench`` takes the same).

    Args:
        parser: The command's parser.
    """
    table_arguments(parser, plot="cost-quality")
    parser.add_argument("--test-size", type=float, default=0.3)
    parser.add_argument(
        "--features",
        choices=FEATURE_NAMES,
        default="cv",
        help="the router's feature map: chosen by cross-validation (default), or one fixed map",
    )
    parser.add_argument(
        "--significance",
        type=float,
        default=1.0,
        help="budget calibration: standard errors of out-of-fold gain a larger spend must show "
        "(default 1; 0: the best out-of-fold quality within each budget)",
    )
    parser.add_argument(
        "--seeds",
        help="run once per seed ('0-9' or '0,3,7'), each its own split, and report each "
        "method's mean, spread and paired difference to the default (instead of --seed)",
    )


def _configure_simulate(parser: argparse.ArgumentParser) -> None:
    table_arguments(parser, plot="regret")
    parser.add_argument(
        "--alpha", type=float, default=None, help="UCB exploration weight (default: the library's)"
    )
    parser.add_argument(
        "--warm-start",
        type=float,
        default=None,
        help="fraction of rows learned offline first (default 0.05)",
    )
    parser.add_argument("--cost-weight", type=float, default=0.1, help="p in the reward for regret")
    parser.add_argument("--budget", type=float, default=None, help="hold this mean $/query online")
    parser.add_argument(
        "--latency-weight",
        type=float,
        default=0.0,
        help="l in the reward (needs '<model>|latency' columns): quality - p cost - l latency",
    )
    parser.add_argument(
        "--judge-noise",
        help="learn from a simulated judge instead of labels: its error rates, comma-separated "
        "(e.g. 0,0.1,0.2,0.3); the default router is replayed cold for each rate and share",
    )
    parser.add_argument(
        "--judge-sample",
        default="1,0.3,0.1",
        help="with --judge-noise: the shares of answers the judge grades (default 1,0.3,0.1)",
    )
    parser.add_argument(
        "--judge-sigma", type=float, default=0.0, help="with --judge-noise: Gaussian grade noise"
    )
    parser.add_argument(
        "--seeds", default="0,1,2", help="with --judge-noise: the replay orders (default 0,1,2)"
    )


def _numbers(text: str, what: str, kind: type = float) -> list[Any]:
    """A comma-separated list of numbers from the command line, or a `MetaLLMError` saying so."""
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise MetaLLMError(f"{what} must be comma-separated numbers, got {text!r}") from None


def _configure_evaluate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log",
        required=True,
        help="a store's decision log: a SQLite file or a redis:// URL (feedback with propensities)",
    )
    parser.add_argument("--models", help="with --log: the pool, comma-separated")
    parser.add_argument(
        "--candidate",
        action="append",
        default=[],
        help="with --log: a saved router (Router.save), or a rule text -> model as "
        "module:function (the log must keep prompts); repeat for several",
    )
    parser.add_argument(
        "--p", default="0,0.1,0.3,1", help="with --candidate: the cost weights to evaluate it at"
    )
    parser.add_argument("--prefix", default="metallm", help="with a redis:// --log: the key prefix")
    parser.add_argument("--cost-weight", type=float, default=0.1, help="p in the reward")
    parser.add_argument("--json", dest="json_out", help="write the result as JSON here")
    parser.add_argument(
        "--plot", help="with --log: plot each estimate with its interval here (PNG, needs [bench])"
    )
    parser.add_argument(
        "--embedding-model", help="embedding model (default: $METALLM_EMBEDDING_MODEL or MiniLM)"
    )


def _import_rule(spec: str, flag: str = "--candidate", what: str = "function text -> model") -> Any:
    """``module:attribute`` (a callable) imported from the current folder or path."""
    import importlib

    module_name, _, attribute = spec.partition(":")
    sys.path.insert(0, os.getcwd())
    try:
        rule = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as e:
        raise MetaLLMError(f"{flag} {spec}: cannot import it ({e})") from None
    finally:
        sys.path.pop(0)
    if not callable(rule):
        raise MetaLLMError(f"{flag} {spec} is not a {what}")
    return rule


def _evaluate_log(args: argparse.Namespace) -> int:
    import numpy as np

    from metallm.evaluation import offpolicy
    from metallm.serving import Router
    from metallm.state import RedisStore, SQLiteStore

    if not args.models:
        raise MetaLLMError(
            "--log needs --models: the pool, comma-separated, e.g. --models mini,pro"
        )
    arms = [m.strip() for m in args.models.split(",") if m.strip()]
    is_url = args.log.startswith(("redis://", "rediss://", "unix://"))
    if not is_url and not os.path.isfile(args.log):
        raise MetaLLMError(
            f"--log {args.log}: no such file (give the SQLite file your routers' store writes, "
            "or a redis:// URL)"
        )
    store = (
        RedisStore(args.log, prefix=args.prefix)
        if args.log.startswith(("redis://", "rediss://", "unix://"))
        else SQLiteStore(args.log)
    )
    try:
        log = offpolicy.log_from_store(store, arms)
    except ValueError as e:
        raise MetaLLMError(str(e)) from None
    candidates = offpolicy.fixed_candidates(arms)
    weights = [float(p) for p in args.p.split(",") if p.strip()]
    scale = offpolicy.log_cost_scale(log)
    rules: dict[str, Any] = {}
    for path in args.candidate:
        if ":" in path and not os.path.exists(path):
            rules[path] = _import_rule(path)
            continue
        router = Router.load(path, embedder=None)
        if list(router.arms) != arms:
            raise MetaLLMError(f"{path} routes {list(router.arms)}, the log {arms}")
        candidates.update(offpolicy.router_candidates(router, weights, scale, label=f"{path}:"))
    chosen: dict[str, Any] = dict(candidates)
    for label, rule in rules.items():
        try:
            chosen[label] = offpolicy.text_candidate(rule, log)
        except ValueError as e:
            raise MetaLLMError(f"--candidate {label}: {e}") from None
    _, estimates = offpolicy.evaluate_log(log, chosen, cost_weight=args.cost_weight)
    print(offpolicy.render_log_evaluation(args.log, log, estimates))
    shadows = offpolicy.evaluate_shadows(log, cost_weight=args.cost_weight)
    if shadows:
        print()
        print(offpolicy.render_shadows(shadows))
    if args.plot:
        from metallm.evaluation import plot_estimates

        shown = {label: found[offpolicy.PRIMARY] for label, found in estimates.items()}
        shown.update({f"shadow {name}": r.shadow[offpolicy.PRIMARY] for name, r in shadows.items()})
        where = args.log if "://" in args.log else os.path.basename(args.log)
        title = f"{where}: {len(log.chosen)} logged decisions ({offpolicy.PRIMARY} estimates)"
        print(f"wrote {plot_estimates(shown, args.plot, title=title)}")
    write_json(
        args.json_out,
        {
            "log": args.log,
            "n_logged": int(len(log.chosen)),
            "propensity_min": float(np.min(log.propensity)),
            "estimates": {
                label: {e: vars(found) for e, found in found_all.items()}
                for label, found_all in estimates.items()
            },
            "shadows": {
                name: {
                    "rows": r.rows,
                    "agreement": r.agreement,
                    "savings": r.savings,
                    "reward_gain": r.reward_gain,
                    "shadow": {e: vars(found) for e, found in r.shadow.items()},
                    "live": {e: vars(found) for e, found in r.live.items()},
                }
                for name, r in shadows.items()
            },
        },
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    _needs_matplotlib(args)
    return _evaluate_log(args)


def _configure_distill(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder to write it to")
    parser.add_argument(
        "--model", help="model to distil (default: $METALLM_EMBEDDING_MODEL or MiniLM)"
    )
    parser.add_argument("--dims", type=int, default=256)


def write_json(path: str | None, data: object) -> None:
    """Write ``data`` as indented JSON to ``path`` (nothing when it is None) and say so.

    Args:
        path: The file (None: nothing is written).
        data: JSON-able data.
    """
    if path:
        import json

        with open(path, "w") as handle:
            json.dump(data, handle, indent=2)
        print(f"\nwrote {path}")


def _needs_matplotlib(args: argparse.Namespace) -> None:
    """A ``--plot`` needs matplotlib: say so before the long work, not after it."""
    if getattr(args, "plot_out", None) or getattr(args, "plot", None):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise MetaLLMError(
                '--plot needs matplotlib: pip install "metallm[bench]" (or leave --plot out)'
            ) from None


def _bench(args: argparse.Namespace) -> int:
    _needs_matplotlib(args)
    from metallm.evaluation import (
        FEATURE_CHOICES,
        plot_bench,
        render_bench,
        run_bench,
        table_embedder,
    )

    embedder = table_embedder(args.embedder, args.embedding_model, static_model=args.static_model)
    if args.seeds:
        return bench_seeds(args, embedder)
    result = run_bench(
        args.data,
        seed=args.seed,
        test_size=args.test_size,
        embedder=embedder,
        candidates=FEATURE_CHOICES[args.features],
        significance=args.significance,
    )
    print(render_bench(result))
    write_json(args.json_out, result.to_dict())
    if args.plot_out:
        print(f"wrote {plot_bench(result, args.plot_out)}")
    return 0


def bench_seeds(args: argparse.Namespace, embedder: Any, baselines: Sequence[Any] = ()) -> int:
    """``--seeds``: the bench once per seed, then each method's spread.

    The repository's ``python -m benchmarks.bench`` passes its baselines.

    Args:
        args: The parsed arguments.
        embedder: What embeds the prompts.
        baselines: Other routers measured on each split.
    """
    from metallm.evaluation import (
        FEATURE_CHOICES,
        parse_seeds,
        plot_seeds,
        run_bench,
        seeds_result,
    )

    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as e:
        raise MetaLLMError(str(e)) from None

    def run(seed: int) -> Any:
        return run_bench(
            args.data, seed=seed, test_size=args.test_size, embedder=embedder,
            candidates=FEATURE_CHOICES[args.features], significance=args.significance,
            baselines=baselines, progress=False,
        )  # fmt: skip

    result = seeds_result(seeds, run, progress=lambda line: print(line, flush=True))
    print()
    print(result.render())
    write_json(args.json_out, result.to_dict())
    if args.plot_out:
        print(f"wrote {plot_seeds(result, args.plot_out)}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    _needs_matplotlib(args)
    from metallm.evaluation import (
        DEFAULT_ALPHA,
        load_routing_table,
        plot_simulation,
        render_simulation,
        run_simulation,
        table_embedder,
    )

    if not (args.latency_weight >= 0):
        raise MetaLLMError("--latency-weight must be a number >= 0")
    if args.judge_noise is not None:
        return _simulate_judge(args)
    if args.latency_weight and load_routing_table(args.data).latency is None:
        raise MetaLLMError(
            f"--latency-weight needs latency columns ('<model>|latency') in {args.data}"
        )
    result = run_simulation(
        args.data,
        seed=args.seed,
        alpha=DEFAULT_ALPHA if args.alpha is None else args.alpha,
        warm_start=0.05 if args.warm_start is None else args.warm_start,
        cost_weight=args.cost_weight,
        budget=args.budget,
        latency_weight=args.latency_weight,
        embedder=table_embedder(
            args.embedder, args.embedding_model, static_model=args.static_model
        ),
    )
    print(render_simulation(result))
    write_json(args.json_out, result.to_dict())
    if args.plot_out:
        print(f"wrote {plot_simulation(result, args.plot_out)}")
    return 0


def _simulate_judge(args: argparse.Namespace) -> int:
    from metallm.evaluation import plot_judge_noise, run_judge_noise, table_embedder

    try:
        result = run_judge_noise(
            args.data,
            flips=_numbers(args.judge_noise, "--judge-noise"),
            samples=_numbers(args.judge_sample, "--judge-sample"),
            seeds=_numbers(args.seeds, "--seeds", int),
            sigma=args.judge_sigma,
            cost_weight=args.cost_weight,
            embedder=table_embedder(
                args.embedder, args.embedding_model, static_model=args.static_model
            ),
        )
    except ValueError as e:
        raise MetaLLMError(str(e)) from None
    print(result.render())
    write_json(args.json_out, result.to_dict())
    if args.plot_out:
        print(f"wrote {plot_judge_noise(result, args.plot_out)}")
    return 0


def _distill(args: argparse.Namespace) -> int:
    from metallm.embedding import distill_static_embedder

    print(f"wrote {distill_static_embedder(args.out, args.model, dims=args.dims)}")
    return 0


def _moved(name: str, module: str) -> Command:
    """A command that moved to the repository's research harness: says where, exits 2."""

    def run(args: argparse.Namespace) -> int:
        raise MetaLLMError(
            f"`metallm {name}` moved out of the package into the repository's research harness: "
            f"from a clone of metallm, run `python -m benchmarks.{module} --help`"
        )

    def configure(parser: argparse.ArgumentParser) -> None:
        parser.set_defaults(accepts_anything=True)  # the message, whatever the old arguments

    return Command(
        f"(moved: `python -m benchmarks.{module}` in a clone of the repository)", configure, run
    )


def _configure_dashboard(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", required=True, help="the workers' store: a SQLite file or a redis:// URL"
    )
    parser.add_argument("--prefix", default="metallm", help="with a redis:// store: the key prefix")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--token",
        default=os.environ.get("METALLM_DASHBOARD_TOKEN"),
        help="required on every request; needed beyond loopback (default: $METALLM_DASHBOARD_TOKEN)",
    )
    parser.add_argument("--refresh", type=float, default=5.0, help="seconds between updates")
    parser.add_argument(
        "--budget-per-day", type=float, help="the workers' Budget(usd_per_day=...): show its spend"
    )
    parser.add_argument(
        "--budget-per-query", type=float, help="the workers' Budget(usd_per_query=...)"
    )
    parser.add_argument("--budget-name", default="default", help="the workers' Budget(name=...)")


def _open_store(location: str, prefix: str, **options: Any) -> Any:
    """The store at ``location`` (a SQLite file that exists, or a redis:// URL)."""
    from metallm.state import RedisStore, SQLiteStore

    if location.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(location, prefix=prefix, **options)
    if os.path.isfile(location):
        return SQLiteStore(location, **options)
    raise MetaLLMError(f"--store {location}: no such file (a SQLite file or a redis:// URL)")


def _dashboard(args: argparse.Namespace) -> int:
    from metallm.dashboard import Dashboard

    store = _open_store(args.store, args.prefix)
    budget = None
    if args.budget_per_day is not None or args.budget_per_query is not None:
        from metallm.serving import Budget

        budget = Budget(
            usd_per_day=args.budget_per_day,
            usd_per_query=args.budget_per_query,
            name=args.budget_name,
        )
    dashboard = Dashboard(
        store,
        host=args.host,
        port=args.port,
        token=args.token,
        refresh_s=args.refresh,
        budget=budget,
    )
    print(f"metallm dashboard of {store} at {dashboard.url} (Ctrl-C stops it)", flush=True)
    try:
        dashboard.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        dashboard.stop()
    return 0


def _configure_grade(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", required=True, help="the workers' store (kept with store_prompts=True)"
    )
    parser.add_argument("--prefix", default="metallm", help="with a redis:// store: the key prefix")
    parser.add_argument("--models", required=True, help="the pool, comma-separated")
    parser.add_argument(
        "--judge",
        required=True,
        help="module:attribute of the judge, judge(prompt, answer, *, reference, context) -> "
        "a grade in [0, 1] (e.g. an adapter's chat-model judge)",
    )
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between empty polls")
    parser.add_argument("--budget-usd", type=float, help="the most the judge may spend")
    parser.add_argument(
        "--once", action="store_true", help="grade what the store holds now, then exit"
    )


def _grade(args: argparse.Namespace) -> int:
    import threading

    from metallm.serving import LedgerGrader, Router

    judge = _import_rule(args.judge, "--judge", "judge(prompt, answer, ...) -> grade")
    store = _open_store(args.store, args.prefix, store_prompts=True)
    arms = [m.strip() for m in args.models.split(",") if m.strip()]
    router = Router(arms, embedder=None, store=store)
    try:
        grader = LedgerGrader(router, judge, budget_usd=args.budget_usd)
    except ConfigurationError as e:
        router.close()
        raise MetaLLMError(str(e)) from None
    print(f"metallm grade: grading the answers handed to {store} (Ctrl-C stops it)", flush=True)
    try:
        if args.once:
            while grader.poll():
                pass
            grader.wait()
        else:
            grader.run(poll_s=args.poll, stop=threading.Event())
    except KeyboardInterrupt:
        pass
    finally:
        grader.wait(30)
        stats = grader.stats()
        grader.close()
        router.close()
    print(
        f"graded {stats['graded']}, failed {stats['failed']}, refused {stats['refused']}, "
        f"dropped {stats['dropped']}; the judge spent ${stats['spent_usd']:.4f}"
    )
    return 0


def _configure_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", required=True, help="the workers' store: a SQLite file or a redis:// URL"
    )
    parser.add_argument("--prefix", default="metallm", help="with a redis:// store: the key prefix")
    parser.add_argument(
        "--since", help="the window's start: 7d, 36h, 90m ago, or a date 2026-12-01 (UTC)"
    )
    parser.add_argument(
        "--baseline", help="the model to compare with (default: the best estimated quality)"
    )
    parser.add_argument("--models", help="the pool, comma-separated (default: the log's models)")
    parser.add_argument(
        "--cost-weight", type=float, default=0.1, help="p in the reward the verdicts compare"
    )
    parser.add_argument(
        "--confidence", type=float, default=0.95, help="the verdicts' confidence (default 0.95)"
    )
    parser.add_argument("--json", dest="json_out", help="write the report as JSON here")
    parser.add_argument("--plot", help="write spend per day and quality per model here (PNG)")
    parser.add_argument("--html", dest="html_out", help="write the report as one HTML page here")


def _report(args: argparse.Namespace) -> int:
    _needs_matplotlib(args)
    from metallm.evaluation import parse_since, savings_report

    if not 0.0 < args.confidence < 1.0:
        raise MetaLLMError(f"--confidence must be in (0, 1), got {args.confidence}")
    store = _open_store(args.store, args.prefix)
    try:
        report = savings_report(
            store,
            baseline=args.baseline,
            since=None if args.since is None else parse_since(args.since),
            arms=None if not args.models else [m.strip() for m in args.models.split(",")],
            cost_weight=args.cost_weight,
            alpha=1.0 - args.confidence,
        )
    except ValueError as e:
        raise MetaLLMError(str(e)) from None
    finally:
        store.close()
    print(report.render())
    write_json(args.json_out, report.to_dict())
    if args.plot:
        print(f"wrote {report.plot(args.plot)}")
    if args.html_out:
        with open(args.html_out, "w", encoding="utf-8") as handle:
            handle.write(report.html())
        print(f"wrote {args.html_out}")
    return 0


BUILT_IN: dict[str, Command] = {
    "bench": Command("savings and quality of routing on a routing table", bench_arguments, _bench),
    "simulate": Command(
        "online replay with bandit feedback: regret of each policy", _configure_simulate, _simulate
    ),
    "evaluate": Command(
        "off-policy evaluation: estimate other policies and the shadows from a store's log",
        _configure_evaluate,
        _evaluate,
    ),
    "distill": Command(
        "make a fast static embedder from the Sentence-BERT model", _configure_distill, _distill
    ),
    "dashboard": Command(
        "a local web page of spend, savings, shares and quality, from a store",
        _configure_dashboard,
        _dashboard,
    ),
    "grade": Command(
        "grade, with a judge, the answers workers handed to the store (a separate process)",
        _configure_grade,
        _grade,
    ),
    "report": Command(
        "what routing saved against always one model, and the shadows' verdicts, from a store",
        _configure_report,
        _report,
    ),
    "onboard": _moved("onboard", "onboarding"),
    "speed": _moved("speed", "speed"),
}


def _load(name: str, plugins: dict[str, EntryPoint]) -> Command | None:
    if name in BUILT_IN:
        return BUILT_IN[name]
    entry = plugins.get(name)
    if entry is None:
        return None
    try:
        command = entry.load()
    except ImportError as e:
        dist = entry.dist.name if entry.dist is not None else "its package"
        print(
            f"metallm {name} could not be loaded from {dist}: {e} (install that package's extras)",
            file=sys.stderr,
        )
        raise SystemExit(2) from e
    if not isinstance(command, Command):
        print(
            f"metallm {name}: entry point {entry.value} is not a metallm.cli.Command",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return command


def _overview(plugins: dict[str, EntryPoint]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metallm",
        description="Route each LLM query to the model that gives the best answer for the money.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in BUILT_IN.items():
        commands.add_parser(name, help=command.help, add_help=False)
    for name, entry in sorted(plugins.items()):
        dist = entry.dist.name if entry.dist is not None else "an installed package"
        commands.add_parser(
            name, help=f"(from {dist}; `metallm {name} --help` says more)", add_help=False
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``metallm`` with ``argv`` (default: the process's arguments); returns the exit code.

    Args:
        argv: The arguments (None: the process's).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    plugins = _plugins()
    if not args or args[0].startswith("-"):
        _overview(plugins).parse_args(args)  # prints help or the usage error, and exits
        return 2  # pragma: no cover - argparse exits above
    name, rest = args[0], args[1:]
    command = _load(name, plugins)
    if command is None:
        _overview(plugins).parse_args(args)
        return 2  # pragma: no cover - argparse exits above
    parser = argparse.ArgumentParser(prog=f"metallm {name}", description=command.help)
    command.configure(parser)
    parsed, unknown = parser.parse_known_args(rest)
    if unknown and not getattr(parsed, "accepts_anything", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return command.run(parsed)
    except MetaLLMError as e:
        print(f"metallm {name}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
