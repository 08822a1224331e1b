"""The nightly flow's cost with growing history, the demo's wall time, and peak memory, in one run.

On the small demo archive (served by the local STAC API), the baseline is backfilled, then the
season is replayed night by night (every acquisition night). One nightly run is timed after 30
nights of history and one after 150 (both timed the same way: the run of the next acquisition
night, with its new scenes). The ratio shows whether the work is incremental (target <= 1.2).

    python -m benchmarks nightly [--size small|default] [--out DIR]

The demo's wall time is measured by ``amurwatch demo`` itself (``demo-summary.json``); this
benchmark reports the backfill and replay times of the same flow, and the peak RSS.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.processors import PeakRSS


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks nightly")
    ap.add_argument("--size", default="small", choices=["small", "default"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv if argv is not None else sys.argv[2:])
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    from prefect import flow

    from demo.generate import generate_archive
    from demo.server import serve_archive
    from flows.cluster import dask_client
    from flows.demo import acquisition_nights, demo_settings
    from flows.nightly import run_night, run_range

    work = Path(args.out or tempfile.mkdtemp(prefix="amurwatch-bench-nightly-"))
    archive = work / "archive"
    if not (archive / "manifest.json").exists():
        generate_archive(archive, seed=42, size=args.size, workers=2)
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    truth = json.loads((archive / "truth" / "truth.json").read_text())
    season0, season1 = (dt.date.fromisoformat(d) for d in truth["monitoring_season"])

    @flow(name="amurwatch-bench-nightly")
    def bench(url: str) -> dict:
        settings = demo_settings(archive, out, url, None)
        res: dict = {}
        with dask_client(settings.dask), PeakRSS() as rss:
            t0 = time.perf_counter()
            run_range(settings, dt.date(truth["baseline_years"][0], 1, 1), season0 - dt.timedelta(days=1), notify=False)
            res["backfill_s"] = round(time.perf_counter() - t0, 1)
            nights = list(acquisition_nights(settings, season0, season1).items())
            timed = {30: None, 150: None}
            t0 = time.perf_counter()
            for k, (night, acquired) in enumerate(nights):
                t1 = time.perf_counter()
                run_night(settings, night, alerts_only_if_new=True, report=True, only=acquired)
                if k in timed:
                    timed[k] = round(time.perf_counter() - t1, 2)
            res["replay_s"] = round(time.perf_counter() - t0, 1)
            res["nights"] = len(nights)
            res["night_after_30_s"], res["night_after_150_s"] = timed[30], timed[150]
            if timed[30] and timed[150]:
                res["ratio_150_vs_30"] = round(timed[150] / timed[30], 2)
        res["peak_rss_gb"] = round(rss.peak / 2**30, 2)
        return res

    with serve_archive(archive) as api:
        res = bench(api.url)
    print(json.dumps(res, indent=1))
    print(f"nightly run after 150 nights / after 30 nights: {res.get('ratio_150_vs_30')} (target <= 1.2); "
          f"backfill {res['backfill_s']} s, replay of {res['nights']} nights {res['replay_s']} s, "
          f"peak RSS {res['peak_rss_gb']} GB")


if __name__ == "__main__":
    main()
