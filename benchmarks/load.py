"""Load throughput on demo COGs: this layer vs raw rasterio decoding vs odc-stac, in one run.

The loader sets one GDAL option that also speeds up a plain open (``GTIFF_SRS_SOURCE=GEOKEYS``: the
CRS from the file's geokeys, without the EPSG database's definition of the same code); raw decode is
measured both with GDAL's defaults (the baseline) and with that option, and both ratios printed.

Throughput is megapixels of *source* pixels decoded per second (every band asset plus the mask,
at native resolution), so the three are measured on the same work. Target: this layer >= 0.6 x raw.

Both loaders are timed from the item dicts to chunks in memory (``persist``), as the pipeline
consumes them chunk by chunk; neither is charged for concatenating everything into one array,
and the raw baseline also discards what it decodes. Our time includes the preflight (every asset
header opened once, which makes a missing asset a reported skip rather than a hole).

    python -m benchmarks load [--archive DIR] [--scenes N] [--threads 2]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import dask
import rasterio


def _items(archive: Path, n: int) -> list[dict]:
    out = []
    for p in sorted((archive / "sentinel-2-c1-l2a").glob("*51UVR*/*.json"))[:n]:
        it = json.loads(p.read_text())
        for a in it["assets"].values():
            a["href"] = str((p.parent / a["href"]).resolve())
        out.append(it)
    return out


ASSETS = ["blue", "green", "red", "nir", "swir16", "swir22", "scl"]


def _raw(items, threads, gdal: dict[str, str] | None = None) -> tuple[float, int]:
    """Open and decode every file, on ``threads`` threads; ``gdal``: GDAL options for the whole run."""
    files = [it["assets"][k]["href"] for it in items for k in ASSETS]

    def read(f):
        with rasterio.open(f) as ds:
            return ds.read(1).size

    old = {k: os.environ.get(k) for k in gdal or {}}
    os.environ.update(gdal or {})  # GDAL reads its options from the environment in every thread
    try:
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(threads) as ex:
            px = sum(ex.map(read, files))
        return time.perf_counter() - t0, px
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _ours(items, grid, threads) -> float:
    from sources.load import load_reflectance

    t0 = time.perf_counter()
    ds, _ = load_reflectance(items, grid, check_offset=False)
    with dask.config.set(scheduler="threads", num_workers=threads):
        ds[["blue", "green", "red", "nir", "swir16", "swir22", "clear"]].persist()
    return time.perf_counter() - t0


def _odc(items, grid, threads) -> float:
    import odc.stac
    import pystac
    from odc.geo.geobox import GeoBox

    pitems = [pystac.Item.from_dict(i) for i in items]
    gbox = GeoBox.from_bbox(grid.bounds, crs=f"EPSG:{grid.epsg}", resolution=grid.resolution)
    t0 = time.perf_counter()
    ds = odc.stac.load(pitems, bands=ASSETS, geobox=gbox, chunks={"x": 1024, "y": 1024}, resampling="nearest",
                       groupby="id")
    with dask.config.set(scheduler="threads", num_workers=threads):
        ds.persist()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="benchmarks.load")
    ap.add_argument("--archive", type=Path, default=None)
    ap.add_argument("--scenes", type=int, default=60)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv if argv is not None else [])
    from aoi import load_landscapes

    tmp = None
    archive = args.archive
    if archive is None:
        from demo.generate import generate_archive

        tmp = Path(tempfile.mkdtemp(prefix="amurwatch-bench-load-"))
        archive = generate_archive(tmp / "archive", size="default").root
    try:
        items = _items(archive, args.scenes)
        grid = {x.id: x for x in load_landscapes(archive / "aoi.geojson")}["greater-khingan-demo"].grid(10)
        _raw(items, args.threads)  # warm the page cache for everyone
        from sources.load import _GTIFF_SRS_SOURCE

        res = {"raw": [], "amurwatch": [], "odc-stac": [], "raw, amurwatch's GDAL options": []}
        for _ in range(args.repeat):
            t, px = _raw(items, args.threads)
            res["raw"].append(t)
            # the same decode with the GDAL option the loader sets (the CRS from the geokeys alone)
            res["raw, amurwatch's GDAL options"].append(_raw(items, args.threads, {"GTIFF_SRS_SOURCE": _GTIFF_SRS_SOURCE})[0])
            res["amurwatch"].append(_ours(items, grid, args.threads))
            res["odc-stac"].append(_odc(items, grid, args.threads))
        best = {k: min(v) for k, v in res.items()}
        mpx = px / 1e6
        out = {"scenes": len(items), "source_mpx": round(mpx, 2), "threads": args.threads,
               "mpx_per_s": {k: round(mpx / t, 1) for k, t in best.items()},
               "ratio_vs_raw": {k: round(best["raw"] / t, 2) for k, t in best.items()}}
        print(json.dumps(out, indent=1))
        print(f"load: amurwatch {out['mpx_per_s']['amurwatch']} Mpx/s = {out['ratio_vs_raw']['amurwatch']} x raw "
              f"rasterio decode ({out['mpx_per_s']['raw']} Mpx/s); odc-stac = {out['ratio_vs_raw']['odc-stac']} x raw "
              f"(target for amurwatch: >= 0.6)")
        same = "raw, amurwatch's GDAL options"
        print(f"      against raw decode with amurwatch's GDAL options ({out['mpx_per_s'][same]} Mpx/s): "
              f"{round(best[same] / best['amurwatch'], 2)} x")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
