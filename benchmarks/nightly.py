"""The nightly flow's cost with growing history, the demo's wall time, and peak memory, in one run.

It runs ``amurwatch demo`` (generate the archive, serve it, backfill the baseline, replay the
season night by night, mail, score) in a child process, as a user would, and reads back the
per-night timings the demo records in ``demo-summary.json``:

- **incremental work**: the cost of a nightly run after 30 nights of history against after 150.
  A night processes the landscapes that had an acquisition, so the cost compared is seconds per
  landscape processed, the median over the nine nights around each point (single nights are noisy).
  A ratio of at most 1.2 shows that a night's work does not grow with the season;
- **the demo's wall time** (target: 5 minutes on 2 cores), and its backfill and replay parts;
- **peak memory**: the largest resident set of the demo process and its children.

    python -m benchmarks nightly [--size small|default] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 1.2
TARGET_DEMO_S = 300.0
POINTS = (30, 150)
HALF = 4  #: nights on each side of a point


def per_landscape_cost(nights: list[dict], k: int) -> float | None:
    """Median seconds per landscape processed over nights k-HALF..k+HALF (None: too few nights)."""
    window = nights[max(0, k - HALF): k + HALF + 1]
    costs = [n["seconds"] / max(1, len(n["slices"])) for n in window if "seconds" in n and not n.get("failed")]
    return round(statistics.median(costs), 3) if len(costs) >= HALF else None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks nightly")
    ap.add_argument("--size", default="small", choices=["small", "default"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv if argv is not None else [])
    work = Path(args.out or tempfile.mkdtemp(prefix="amurwatch-bench-nightly-"))
    exe = Path(sys.executable).with_name("amurwatch")
    cmd = [str(exe), "demo", "--out", str(work), "--size", args.size, "--fresh"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "COLUMNS": "120"})
    wall = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB
    if proc.returncode != 0:
        print(proc.stdout[-4000:])
        raise SystemExit(f"amurwatch demo failed with exit code {proc.returncode}")
    summary = json.loads((work / "demo-summary.json").read_text())
    nights = summary["nights"]
    res: dict = {"archive_size": args.size, "cores": os.cpu_count(), "demo_wall_s": round(wall, 1),
                 **summary["timings"], "nights": len(nights), "peak_rss_gb": round(peak_gb, 2)}
    for k in POINTS:
        res[f"s_per_landscape_night_{k}"] = per_landscape_cost(nights, k)
    a, b = (res[f"s_per_landscape_night_{k}"] for k in POINTS)
    res["ratio_150_vs_30"] = round(b / a, 2) if a and b else None
    (work / "bench-nightly.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    print(f"night after 150 / after 30 nights: {res['ratio_150_vs_30']} (target <= {TARGET_RATIO}); "
          f"demo {res['demo_wall_s']} s = {res['demo_wall_s'] / TARGET_DEMO_S:.2f}x the {TARGET_DEMO_S:.0f} s target "
          f"(backfill {res.get('backfill_s')} s, replay of {res['nights']} nights {res.get('replay_s')} s); "
          f"peak RSS {res['peak_rss_gb']} GB")


if __name__ == "__main__":
    main(sys.argv[1:])
