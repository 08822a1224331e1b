"""Which dask layout runs the flows fastest on this machine, in one run.

The same backfill (the small demo archive, 18 months, 3 landscapes: search, load, cube writes,
stats) runs once per layout, each into a fresh output folder:

- ``threads``: no distributed client, dask's threaded scheduler (the baseline);
- ``1x{n} in-process``: one LocalCluster worker in this process with n threads;
- ``1x{n} processes`` and ``{n}x1 processes``: LocalCluster worker processes.

Printed as seconds and as ratios to the baseline. ``flows.cluster.default_layout`` follows it.

    python -m benchmarks layouts [--months 18]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks layouts")
    ap.add_argument("--months", type=int, default=18)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv if argv is not None else [])
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect import flow

    from demo.generate import generate_archive
    from demo.server import serve_archive
    from flows.cluster import dask_client
    from flows.demo import demo_settings
    from flows.nightly import month_chunks, run_range
    from flows.settings import DaskSettings

    work = Path(args.out or tempfile.mkdtemp(prefix="amurwatch-bench-layouts-"))
    archive = work / "archive"
    if not (archive / "manifest.json").exists():
        generate_archive(archive, seed=42, size="small", workers=2)
    n = os.cpu_count() or 2
    start = dt.date(2020, 1, 1)
    end = month_chunks(start, dt.date(2030, 1, 1))[args.months - 1][1]
    layouts = {"threads (no client)": None, f"1x{n} in-process": DaskSettings(n_workers=1, threads_per_worker=n,
                                                                              processes=False),
               f"1x{n} processes": DaskSettings(n_workers=1, threads_per_worker=n, processes=True),
               f"{n}x1 processes": DaskSettings(n_workers=n, threads_per_worker=1, processes=True)}

    @flow(name="amurwatch-bench-layouts")
    def bench(url: str) -> dict:
        res = {}
        for name, cfg in layouts.items():
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            s = demo_settings(archive, out, url, None)
            ctx = contextlib.nullcontext() if cfg is None else dask_client(cfg)
            with ctx:
                t0 = time.perf_counter()
                run_range(s, start, end, notify=False)
                res[name] = round(time.perf_counter() - t0, 1)
            print(f"{name}: {res[name]} s", flush=True)
        return res

    with serve_archive(archive) as api:
        res = bench(api.url)
    base = res["threads (no client)"]
    print(json.dumps({"cores": n, "months": args.months, "seconds": res,
                      "ratio_to_threads": {k: round(v / base, 2) for k, v in res.items()}}, indent=1))
    best = min((v, k) for k, v in res.items() if k != "threads (no client)")[1]
    print(f"fastest distributed layout on {n} cores: {best} ({res[best] / base:.2f}x the threaded scheduler)")


if __name__ == "__main__":
    main(sys.argv[1:])
