"""A budget held live by two worker processes: a target per call, then a paced cap per period.

Two worker processes answer questions through ChatMetaLLM over real ChatOpenAI clients that
talk HTTP to a local fake provider (the expensive member answers better, so without a budget
it would get nearly every call). They share one SQLite store, and so one budget:

1. ``Budget(usd_per_query=0.00015)``: 200 calls each; the running mean cost settles at the target.
2. ``Budget(usd_per_period=CAP, period=30)``: a 30-second period (a day, compressed), calls at a
   steady rate; the cap allows about 40% of what unconstrained routing would spend, so spend is
   paced over the period and ends just under the cap.

It prints the figures and, with ``--plot PATH``, writes a plot there (the docs' is
``--plot docs/img/budget_live.png``).

Run it: .venv/bin/python docs/examples/budget_live.py   (no keys: the models are scripted)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

PRICES = {"mini": (0.15, 0.60), "pro": (2.50, 10.00)}  # USD per 1M input / output tokens
QUALITY = {"mini": 0.6, "pro": 1.0}  # the feedback: the expensive member answers better
REPLIES = {
    "mini": "A short answer.",
    "pro": "A long and careful answer that covers the question from several sides, with "
    "examples, caveats and a summary at the end so the reader can act on it.",
}
TOPICS = ["bread dough", "the Moon's phases", "compound interest", "photosynthesis",
          "binary search", "plate tectonics", "vaccines", "TCP handshakes"]  # fmt: skip
TARGET = 0.00015  # USD per call: mini costs about $0.000005, pro $0.00035
PERIOD = 30.0  # seconds: a day, compressed
RATE = 8.0  # calls per second per worker in the paced run
CAP = 0.4 * 2 * RATE * PERIOD * 0.00035  # 40% of sending every call to pro


def worker(
    base_url: str, store: str, budget: dict, number: int, calls: int, out: str, begin: float
) -> None:
    """One web worker: answer, record the feedback, write "time cost model p spent" per call."""
    from langchain_openai import ChatOpenAI

    from metallm import Budget, Router, SQLiteStore
    from metallm_langchain import ChatMetaLLM

    members = {m: ChatOpenAI(model=m, base_url=base_url, api_key="k") for m in PRICES}
    router = Router(list(PRICES), store=SQLiteStore(store), budget=Budget(**budget), seed=number)
    llm = ChatMetaLLM(models=members, prices=PRICES, router=router)
    paced = "period" in budget
    time.sleep(max(0.0, begin - time.time()))  # both workers start together
    start = time.time()
    with open(out, "w", buffering=1) as lines:
        for i in range(calls):
            if paced:  # a steady stream of calls, as traffic over a day
                time.sleep(max(0.0, start + i / RATE - time.time()))
            topic = TOPICS[(number * 3 + i) % len(TOPICS)]
            message = llm.invoke(f"Call {i} of worker {number}: explain {topic} simply.")
            meta = message.response_metadata["metallm"]
            llm.record_feedback(meta["decision_id"], quality=QUALITY[meta["model"]])
            state = meta["budget"]
            lines.write(
                f"{time.time()} {meta['cost_usd']} {meta['model']} {state['cost_weight']} "
                f"{state['spent_usd']}\n"
            )


def run(
    base_url: str, folder: Path, name: str, budget: dict, calls: int, begin: float
) -> list[tuple]:
    """Both workers at once (from ``begin``) over one store; their calls merged in time order."""
    store = str(folder / f"{name}.sqlite")
    outs = [str(folder / f"{name}-{w}.txt") for w in range(2)]
    context = mp.get_context("spawn")
    procs = [
        context.Process(target=worker, args=(base_url, store, budget, w, calls, out, begin))
        for w, out in enumerate(outs)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"a worker failed (exit code {proc.exitcode})")
    rows = []
    for out in outs:
        for line in Path(out).read_text().splitlines():
            t, cost, model, p, spent = line.split()
            rows.append((float(t), float(cost), model, float(p), float(spent)))
    return sorted(rows)


def main() -> None:
    """Both runs, their figures and the plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", help="write the plot (PNG) here (default: no plot)")
    parser.add_argument("--calls", type=int, default=200, help="calls per worker in the first run")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from metallm.embedding import default_embedder
    from metallm.testing import OpenAICompatibleServer, ScriptedModel

    default_embedder().embed(["prepare the embedder once, before the workers start"])
    scripts = {m: ScriptedModel(reply=r) for m, r in REPLIES.items()}
    with tempfile.TemporaryDirectory() as tmp, OpenAICompatibleServer(scripts) as server:
        folder = Path(tmp)
        budget = {"usd_per_query": TARGET}
        per_call = run(server.base_url, folder, "per-call", budget, args.calls, time.time() + 5)
        # the paced run starts on a period boundary (once the workers are up): one whole period
        begin = time.time() + 8.0
        begin += PERIOD - begin % PERIOD
        budget = {"usd_per_period": CAP, "period": PERIOD}
        paced = run(server.base_url, folder, "per-period", budget, int(RATE * PERIOD) - 4, begin)

    import numpy as np

    costs = np.array([r[1] for r in per_call])
    late = costs[len(costs) // 2 :]
    print(f"1. target ${TARGET}/call, 2 workers x {args.calls} calls over one store:")
    print(
        f"   mean cost over the last half ${late.mean():.6g} ({late.mean() / TARGET - 1:+.1%} of the target),"
    )
    print(
        f"   pro answered {sum(r[2] == 'pro' for r in per_call[len(per_call) // 2 :]) / len(late):.0%} of them; final p {per_call[-1][3]:.3g}"
    )
    spent = max(r[4] for r in paced)  # the store's spend in the period, as the last call saw it
    steps = np.abs(np.diff([r[3] for r in paced]))
    print(f"2. cap ${CAP:.4g} per {PERIOD:g} s period, 2 workers x {len(paced) // 2} calls:")
    print(
        f"   spent ${spent:.4g} ({spent / CAP:.1%} of the cap) by {paced[-1][0] - begin:.1f} s; largest move of p between calls {steps.max():.3g}"
    )

    if args.plot is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    n = np.arange(1, len(costs) + 1)
    axes[0].plot(n, np.cumsum(costs) / n * 1e6, color="tab:blue", label="running mean cost")
    window = np.convolve(costs, np.ones(50) / 50, mode="valid") * 1e6
    axes[0].plot(n[49:], window, color="tab:cyan", label="mean of the last 50 calls")
    axes[0].axhline(TARGET * 1e6, color="k", linestyle="--", label="target")
    axes[0].set(xlabel="calls (both workers)", ylabel="micro-USD per call",
                title="usd_per_query: running mean cost")  # fmt: skip
    twin = axes[0].twinx()
    twin.plot(n, [r[3] for r in per_call], color="tab:orange", alpha=0.6, label="p")
    twin.set_ylabel("p")
    _legend_below(axes[0], twin)
    t = np.array([r[0] - begin for r in paced])
    axes[1].plot(t, np.cumsum([r[1] for r in paced]), color="tab:blue", label="spent")
    axes[1].plot([0, PERIOD], [0, CAP], color="tab:gray", linestyle=":", label="even pace")
    axes[1].axhline(CAP, color="k", linestyle="--", label="cap")
    axes[1].set(xlabel="seconds into the period", ylabel="USD", title="usd_per_period: paced spend")
    twin = axes[1].twinx()
    twin.plot(t, [r[3] for r in paced], color="tab:orange", alpha=0.6, label="p")
    twin.set_ylabel("p")
    _legend_below(axes[1], twin)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110, bbox_inches="tight")
    print(f"wrote {args.plot}")


def _legend_below(ax, twin) -> None:  # noqa: ANN001
    """One legend for a panel and its twin axis (every line), below the panel, off the data."""
    handles, labels = ax.get_legend_handles_labels()
    more, more_labels = twin.get_legend_handles_labels()
    ax.legend(handles + more, labels + more_labels, loc="upper center",
              bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=8)  # fmt: skip


if __name__ == "__main__":
    main()
