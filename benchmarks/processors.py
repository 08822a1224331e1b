"""The indicator chain's throughput against NumPy NDVI, and its peak memory, in one run.

A synthetic cube (``--size`` x ``--size`` px, ``--dates`` dates, 7 bands, float32) is generated
lazily, chunk by chunk, so it never exists whole. The chain (forest loss and burn layers, water,
zonal statistics) runs on it through dask, one spatial tile (``--tile``) at a time, as the flows
will; its results are reduced, not kept. Then the grassland trend (``grassland_layers`` with the
season's levels and the modelled test) on a red/NIR cube of the same size and as many dates spread
over five years (the trend needs years, not looks), tile by tile, timed and measured apart.
``--tile 0`` computes everything as one graph: at
8192² x 20 dates that was killed for memory (the shared inputs stay alive until every output is
done).
The baseline is in-place NumPy NDVI on one date's red and NIR in memory.

    python -m benchmarks processors [--size 8192] [--dates 20] [--chunk 512]

Targets: peak RSS <= 2.5 GB at 8192 x 8192 x 20 dates.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import dask
import dask.array as da
import numpy as np
import pandas as pd
import psutil
import rioxarray  # noqa: F401
import xarray as xr

RANGES = {"blue": (0.01, 0.08), "green": (0.03, 0.1), "red": (0.01, 0.12), "nir": (0.15, 0.45),
          "nir08": (0.15, 0.45), "swir16": (0.1, 0.3), "swir22": (0.04, 0.2)}


class PeakRSS:
    def __init__(self, every_s: float = 0.05):
        self.p, self.every, self.peak, self._stop = psutil.Process(), every_s, 0, threading.Event()

    def __enter__(self):
        self.peak = self.p.memory_info().rss
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.p.memory_info().rss)
            time.sleep(self.every)

    def __exit__(self, *a):
        self._stop.set()
        self._t.join()


def _cube(size: int, dates: int, chunk: int) -> xr.Dataset:
    t = pd.date_range("2025-05-01", periods=dates // 2, freq="10D").append(
        pd.date_range("2026-05-01", periods=dates - dates // 2, freq="10D"))
    rs = da.random.RandomState(42)
    data = {}
    for b, (lo, hi) in RANGES.items():
        data[b] = (("time", "y", "x"), rs.uniform(lo, hi, size=(dates, size, size), chunks=(dates, chunk, chunk))
                   .astype(np.float32))
    x = 500000 + (np.arange(size) + 0.5) * 10
    y = 5700000 - (np.arange(size) + 0.5) * 10
    ds = xr.Dataset(data, coords={"time": t, "y": y, "x": x}).rio.write_crs(32651)
    ds["clear"] = ds["red"] > 0.02
    ds = ds.assign_coords(platform=("time", np.array(["sentinel-2b"] * dates)))
    return ds


def _chain(ds: xr.Dataset):
    from processors.chain import forest_burn_layers
    from processors.indices import mndwi
    from processors.water import refine_water_edges, water_mask
    from processors.zonal import zonal_stats

    lay = forest_burn_layers(ds, monitor_start="2026-01-01", mask_years=[2025], start_doy=120, end_doy=300)
    water = refine_water_edges(water_mask(mndwi(ds["green"], ds["swir16"])), ds["nir"], ds["swir16"])
    zs = zonal_stats(pixel_area_ha=0.01, clear=ds["clear"], water=water,
                     layers_ha={"forest_ha": lay["forest"], "burned_ha": lay["burn_status"] == 2})
    # reduce everything so nothing big is kept: what a writer consumes chunk by chunk
    return [lay["forest_status"].astype("int64").sum(), lay["burn_status"].astype("int64").sum(),
            lay["severity"].astype("int64").sum(), zs["water_ha"].sum(), zs["forest_ha"], zs["burned_ha"]]


def _grass_block(block_info=None, *, doy, seed):
    """One chunk of a steppe's red and NIR (2, time, y, x): a seasonal curve times each pixel's
    green amplitude (0-1.8 over a few hundred metres: meadows, bare ground, greener fields), plus noise."""
    loc = block_info[None]["array-location"]
    (y0, y1), (x0, x1) = loc[2], loc[3]
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    amp = 0.9 + 0.5 * np.sin(yy / 37.0) * np.cos(xx / 53.0) + 0.4 * np.sin((yy + 2 * xx) / 211.0)
    amp = np.clip(amp, 0.0, 1.8)
    g = 1 / (1 + np.exp(-(doy - 150) / 8.0)) - 1 / (1 + np.exp(-(doy - 262) / 9.0))
    rng = np.random.default_rng([seed, y0, x0])
    green = amp[None] * g[:, None, None]
    red = 0.09 - 0.045 * green + rng.normal(0, 0.004, green.shape)
    nir = 0.21 + 0.14 * green + rng.normal(0, 0.006, green.shape)
    return np.stack([red, nir]).astype(np.float32)


def _grass_cube(size: int, dates: int, chunk: int) -> xr.Dataset:
    """Red and NIR over ``dates`` looks spread over five snow-free seasons (2022-2026), lazily: a
    steppe whose pixels follow one seasonal curve with green amplitudes of their own, so the season's
    levels have a curve to fit and the trend's cover weight has covers to tell apart."""
    years = 5
    per = max(1, dates // years)
    t = pd.DatetimeIndex([d for y in range(2022, 2022 + years)
                          for d in pd.date_range(f"{y}-04-25", periods=per, freq=f"{max(1, 170 // per)}D")][:dates])
    chunks = da.core.normalize_chunks((2, len(t), chunk, chunk), (2, len(t), size, size))
    arr = da.map_blocks(_grass_block, dtype=np.float32, chunks=chunks, doy=t.dayofyear.values.astype(np.float32), seed=7)
    x = 500000 + (np.arange(size) + 0.5) * 10
    y = 5700000 - (np.arange(size) + 0.5) * 10
    return xr.Dataset({"red": (("time", "y", "x"), arr[0]), "nir": (("time", "y", "x"), arr[1])},
                      coords={"time": t, "y": y, "x": x}).rio.write_crs(32651)


def _grassland(ds: xr.Dataset):
    from processors.chain import grassland_layers
    from processors.seasons import season_windows

    gl = grassland_layers(ds, **season_windows(49.0).grassland(), year=2026)
    return [gl["trend_class"].astype("int64").sum(), gl["slope"].sum(), gl["modelled"].sum(), gl["anomaly_z"].sum()]


def _tiles(ds: xr.Dataset, size: int, tile: int, fn, threads: int) -> tuple[float, float]:
    """Compute ``fn``'s reductions tile by tile; (wall seconds, peak RSS bytes)."""
    with PeakRSS() as mem, dask.config.set(scheduler="threads", num_workers=threads):
        t0 = time.perf_counter()
        for y0 in range(0, size, tile):
            for x0 in range(0, size, tile):
                dask.compute(*fn(ds.isel(y=slice(y0, y0 + tile), x=slice(x0, x0 + tile))))
        wall = time.perf_counter() - t0
    return wall, mem.peak


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="benchmarks.processors")
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--dates", type=int, default=20)
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--tile", type=int, default=1024, help="compute the chain tile by tile (px); 0 = one graph")
    ap.add_argument("--only", choices=["all", "chain", "grassland"], default="all", help="measure one part only")
    args = ap.parse_args(argv if argv is not None else [])
    px = args.size * args.size * args.dates
    # baseline: in-place NumPy NDVI, one date in memory at a time (same pixel count)
    rng = np.random.default_rng(0)
    n = min(args.size * args.size, 4096 * 4096)
    red = rng.uniform(0.01, 0.12, n).astype(np.float32)
    nir = rng.uniform(0.15, 0.45, n).astype(np.float32)
    out = np.empty_like(red)
    t0 = time.perf_counter()
    reps = 5
    for _ in range(reps):
        np.subtract(nir, red, out=out)
        den = nir + red
        np.divide(out, den, out=out)
    ndvi_mpx_s = n * reps / (time.perf_counter() - t0) / 1e6
    del red, nir, out, den
    tile = args.tile or args.size
    skipped = (float("nan"), float("nan"))
    wall, peak = (_tiles(_cube(args.size, args.dates, args.chunk), args.size, tile, _chain, args.threads)
                  if args.only in ("all", "chain") else skipped)
    chain_mpx_s = px / wall / 1e6
    gds = _grass_cube(args.size, args.dates, args.chunk)
    gwall, gpeak = (_tiles(gds, args.size, tile, _grassland, args.threads)
                    if args.only in ("all", "grassland") else skipped)
    grass_mpx_s = args.size * args.size * gds.sizes["time"] / gwall / 1e6
    res = {"size": args.size, "dates": args.dates, "chunk": args.chunk, "tile": args.tile, "threads": args.threads,
           "pixels_x_dates_M": round(px / 1e6, 1), "chain_wall_s": round(wall, 1),
           "chain_mpx_per_s": round(chain_mpx_s, 2), "numpy_ndvi_mpx_per_s": round(ndvi_mpx_s, 1),
           "ratio_chain_vs_numpy_ndvi": round(chain_mpx_s / ndvi_mpx_s, 4),
           "peak_rss_gb": round(peak / 1e9, 2), "peak_rss_target_gb": 2.5,
           "grassland_dates": gds.sizes["time"], "grassland_wall_s": round(gwall, 1),
           "grassland_mpx_per_s": round(grass_mpx_s, 2),
           "ratio_grassland_vs_numpy_ndvi": round(grass_mpx_s / ndvi_mpx_s, 4),
           "grassland_peak_rss_gb": round(gpeak / 1e9, 2)}
    print(json.dumps(res, indent=1))
    print(f"processors: chain {chain_mpx_s:.2f} Mpx·date/s = {res['ratio_chain_vs_numpy_ndvi']:.4f} x NumPy NDVI "
          f"({ndvi_mpx_s:.0f} Mpx/s); peak RSS {res['peak_rss_gb']} GB (target <= 2.5 GB) at {args.size}² x {args.dates} dates; "
          f"grassland {grass_mpx_s:.2f} Mpx·date/s = {res['ratio_grassland_vs_numpy_ndvi']:.4f} x NumPy NDVI, "
          f"peak RSS {res['grassland_peak_rss_gb']} GB over {gds.sizes['time']} dates in five years")


if __name__ == "__main__":
    main(sys.argv[1:])
