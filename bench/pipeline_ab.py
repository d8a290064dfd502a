"""The table load through the whole pipeline, this tree against an older revision, interleaved.

Each round runs, in a fresh process per tree, the same `bench.workload` table (the lines of
`bench.pipeline`) through `Pipeline.feed_line` with a `DetectionEngine` consumer, and takes the
load's and the churn's process CPU seconds; rounds alternate the trees so that a noisy machine
hurts both alike.  Reports medians and bests, and their ratios (after / before).

    .venv/bin/python -m bench.pipeline_ab --rev 8a246dd --routes 100000 --packing single --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import gc, json, sys, time
sys.path.insert(0, sys.argv[1])
from bench import workload
from bench.pipeline import build_pipeline
routes, packing = int(sys.argv[2]), sys.argv[3]
work = workload.Workload(4, *workload.split(max(1, routes // 4), 0.2), packing)
load = [line for index in range(4) for line in work.table_lines(index)]
churn = [line for index in range(4) for line in work.churn_lines(index)]
pipeline = build_pipeline(work.config())
feed = pipeline.feed_line
gc.collect()
start = time.process_time()
for line in load:
    feed(line, "relay", 0)
middle = time.process_time()
for line in churn:
    feed(line, "relay", 0)
end = time.process_time()
print(json.dumps({"load": middle - start, "churn": end - middle, "alerts": len(pipeline.transitions)}))
"""


def _once(tree: Path, routes: int, packing: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), str(routes), packing],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def run(rev: str, routes: int, packing: str, rounds: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old), rev], cwd=ROOT, check=True, capture_output=True
        )
        try:
            runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
            for _ in range(rounds):
                runs["before"].append(_once(old, routes, packing))
                runs["after"].append(_once(ROOT, routes, packing))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)
    report: dict = {
        "bench": "pipeline_ab",
        "rev": rev,
        "routes": routes,
        "packing": packing,
        "rounds": rounds,
    }
    for phase in ("load", "churn"):
        figures = {}
        for name, values in runs.items():
            seconds = [r[phase] for r in values]
            figures[name] = {
                "median_s": round(statistics.median(seconds), 3),
                "best_s": round(min(seconds), 3),
            }
        figures["median_ratio"] = round(figures["after"]["median_s"] / figures["before"]["median_s"], 3)
        figures["best_ratio"] = round(figures["after"]["best_s"] / figures["before"]["best_s"], 3)
        report[phase] = figures
    report["alerts"] = {name: [r["alerts"] for r in values] for name, values in runs.items()}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", required=True, help="the older revision (git)")
    parser.add_argument("--routes", type=int, default=100_000, help="prefixes over the 4 peers")
    parser.add_argument("--packing", choices=("real", "single", "unique"), default="single")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.rev, args.routes, args.packing, args.rounds), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
