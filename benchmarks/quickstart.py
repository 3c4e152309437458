"""Time the quickstart end to end and print its per-iteration held-out accuracy.

    python benchmarks/quickstart.py [--run-dir runs/bench-quickstart] [KEY=VALUE ...]

The one-time conversion of the embedded model is done first and not counted. Prints the table, then
``wall_s=`` and ``gain_points=`` (last iteration's accuracy minus iteration 0's, in points) last.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default=str(ROOT / "runs" / "bench-quickstart"))
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    from selfimprove.models.embedded import materialize

    materialize("smollm2-135m-instruct")
    shutil.rmtree(args.run_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "selfimprove", "run", str(ROOT / "recipes" / "quickstart.yaml")]
    start = time.perf_counter()
    subprocess.run([*cmd, "--run-dir", args.run_dir, "--quiet", *args.overrides], check=True)
    wall = time.perf_counter() - start

    summary = json.loads((Path(args.run_dir) / "summary.json").read_text())
    stages: dict[int, dict[str, float]] = {}
    for line in (Path(args.run_dir) / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        kind = m["stage"].split(":")[0]
        stages.setdefault(m["iteration"], {}).setdefault(kind, 0.0)
        stages[m["iteration"]][kind] += m["seconds"]
    print(f"{'iteration':>9} {'accuracy':>9} {'correct':>8} {'generate_s':>10} {'update_s':>9} {'eval_s':>7}")
    for it in summary["iterations"]:
        (task,) = it["eval"].values()
        s = stages.get(it["iteration"], {})
        print(
            f"{it['iteration']:>9} {task['accuracy']:>9.1%} {task['correct']:>4}/{task['problems']:<3} "
            f"{s.get('generate', 0):>10.0f} {s.get('update', 0):>9.0f} {s.get('eval', 0):>7.0f}"
        )
    first = next(iter(summary["iterations"][0]["eval"].values()))["accuracy"]
    last = next(iter(summary["iterations"][-1]["eval"].values()))["accuracy"]
    print(f"wall_s={wall:.0f} gain_points={100 * (last - first):.1f}")


if __name__ == "__main__":
    main()
