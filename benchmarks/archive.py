"""Demo archive generation: wall time, size and peak memory against the foundation issue's limits.

Baseline, measured in the same run: encoding the same number of COG pixels from ready-made arrays
(no physics, no clouds, no STAC), i.e. the irreducible write cost. The ratio says how much the
simulation adds on top of writing the files.

    python -m benchmarks archive [--size default|small]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LIMIT_S, LIMIT_MB = 120.0, 500.0


def _baseline_write(root: Path, n_files: int, shape: tuple[int, int]) -> float:
    from demo.generate import _write_cog

    rng = np.random.default_rng(0)
    arr = (rng.normal(2500, 300, shape)).astype(np.uint16)
    t0 = time.perf_counter()
    for i in range(n_files):
        _write_cog(root / f"b{i}.tif", arr, 32651, (10.0, 0.0, 500000.0, 0.0, -10.0, 5700000.0), 0)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="benchmarks.archive")
    ap.add_argument("--size", default="default")
    args = ap.parse_args(argv if argv is not None else [])
    from demo.generate import generate_archive

    tmp = Path(tempfile.mkdtemp(prefix="amurwatch-bench-"))
    try:
        t0 = time.perf_counter()
        s = generate_archive(tmp / "archive", size=args.size)
        wall = time.perf_counter() - t0
        peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        tifs = list((tmp / "archive").rglob("*.tif")) + list((tmp / "archive").rglob("*.TIF"))
        px = 0
        import rasterio
        for p in tifs[:: max(1, len(tifs) // 200)]:
            with rasterio.open(p) as ds:
                px += ds.width * ds.height
        mean_px = px / len(tifs[:: max(1, len(tifs) // 200)])
        side = int(np.sqrt(mean_px))
        (tmp / "base").mkdir()
        n_base = min(len(tifs), 600)
        base_s = _baseline_write(tmp / "base", n_base, (side, side)) * len(tifs) / n_base / (os.cpu_count() or 1)
        res = {
            "size": args.size, "cpus": os.cpu_count(), "items": s.n_items, "files": s.n_files,
            "wall_s": round(wall, 1), "limit_s": LIMIT_S, "wall_vs_limit": round(wall / LIMIT_S, 2),
            "archive_mb": round(s.bytes / 1e6, 1), "limit_mb": LIMIT_MB, "size_vs_limit": round(s.bytes / 1e6 / LIMIT_MB, 2),
            "peak_rss_mb_main": round(peak_self), "peak_rss_mb_worker": round(peak_children),
            "baseline_cog_write_s": round(base_s, 1), "wall_vs_baseline_write": round(wall / base_s, 2),
        }
        print(json.dumps(res, indent=1))
        print(f"archive ({args.size}): {wall:.1f} s = {res['wall_vs_limit']:.2f} x the {LIMIT_S:.0f} s limit; "
              f"{res['archive_mb']:.0f} MB = {res['size_vs_limit']:.2f} x the {LIMIT_MB:.0f} MB limit; "
              f"{res['wall_vs_baseline_write']:.2f} x the time to only write the same COGs")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
