r"""How fast plain and discounted UCB react to a drift after longer and longer histories.

`python -m benchmarks.scenarios --scenario drift:MODEL@FRACTION` measures one drift point. Plain statistics
weigh a model's whole past, so the later the drift, the slower plain UCB reacts; discounted
statistics weigh about the last 1 / (1 - discount) outcomes. This replays a table (as many
passes as needed, each in its own order) with the drift after each history, over three orders,
and prints and plots the queries until each method reacted.

Run it: .venv/bin/python -m benchmarks.drift_by_history --data ../shared/data/multitask9.csv \\
            --model llama-3.1-8b-instruct --out docs/img/drift_history_multitask9
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from benchmarks.scenarios import drift_by_history, plot_drift_by_history, render_drift_by_history


def main() -> None:
    """Run it (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--histories", default="1000,2000,4000,8000")
    parser.add_argument("--after", type=int, default=3000, help="queries to follow the drift")
    parser.add_argument("--discount", type=float, default=0.99)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", help="write OUT.json and OUT.png")
    args = parser.parse_args()
    points = drift_by_history(
        args.data,
        args.model,
        [int(h) for h in args.histories.split(",")],
        after=args.after,
        discount=args.discount,
        seeds=[int(s) for s in args.seeds.split(",")],
    )
    print(render_drift_by_history(points))
    if args.out:
        out = Path(args.out)
        out.with_suffix(".json").write_text(json.dumps([asdict(p) for p in points], indent=1))
        title = f"{Path(args.data).stem}: {args.model} answers half the prompts with quality 0"
        print(f"wrote {plot_drift_by_history(points, out.with_suffix('.png'), title=title)}")


if __name__ == "__main__":
    main()
