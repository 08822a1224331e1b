"""Load: the nightly path on a landscape of 10,000 x 10,000 px at 10 m, within a fixed memory bound.

It writes a synthetic archive of Sentinel-2 L2A scenes in Earth Search's ``sentinel-2-c1-l2a`` form
(10 m and 20 m COG-style GeoTIFFs, SCL, the baseline-04.00 offset) over one 101 km x 101 km forest
landscape, 10 dates: 3 in the baseline summer and 7 in the season, with 20 clearings, a 16 km² fire
and a cloud per scene. Then, in a child process whose peak resident memory is measured, it runs the
nightly flow's own code (``flows.nightly.run_night``, on the in-process dask cluster the flow uses):

1. a first run over the baseline and the first five season dates (what a backfill does);
2. two nightly runs, one new scene each (search, ingest, the forest/burn state, alerts, stats).

The baseline measured in the same run is raw decoding of one date's files with rasterio; the
pipeline's throughput (megapixel-dates per second: pixels of the landscape x dates processed) is
printed as a ratio to it.

    python -m benchmarks scale [--size 10000] [--nights 0|1|2] [--out DIR] [--keep]

Target: peak RSS <= 3 GB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_RSS_GB = 3.0
EPSG = 32651
RES = 10
X0, Y1 = 400_000.0, 5_260_000.0  # top-left of the scenes (UTM 51N, ~47.4°N 123.7°E)
BASE_DATES = ["2025-06-10", "2025-06-25", "2025-07-10"]
SEASON_DATES = ["2026-06-05", "2026-06-10", "2026-06-15", "2026-06-20", "2026-06-25", "2026-06-30", "2026-07-05"]
FIRST_RUN_THROUGH = "2026-06-25"
CLEAR_FROM, FIRE_FROM = "2026-06-15", "2026-06-25"
#: surface reflectance of each cover (blue, green, red, nir, nir08, swir16, swir22)
FOREST = (0.03, 0.05, 0.03, 0.30, 0.30, 0.15, 0.07)
CLEARED = (0.07, 0.10, 0.12, 0.24, 0.24, 0.30, 0.24)
BURNED = (0.03, 0.04, 0.04, 0.10, 0.10, 0.18, 0.20)
CLOUD = (0.60, 0.60, 0.60, 0.62, 0.62, 0.50, 0.40)
BANDS = ["blue", "green", "red", "nir", "nir08", "swir16", "swir22"]
GSD = {"blue": 10, "green": 10, "red": 10, "nir": 10, "nir08": 20, "swir16": 20, "swir22": 20, "scl": 20}


def _events(n_px: int, seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    margin = min(600, n_px // 10)
    clearings = [(int(r), int(c)) for r, c in rng.integers(margin, n_px - margin, size=(20, 2))]
    return {"clearings": clearings, "clearing_px": 60, "fire": (n_px // 3, n_px // 2, min(400, n_px // 5))}


def _cover_block(r0: int, nrows: int, ncols: int, scale: int, date: str, ev: dict, cloud: tuple) -> np.ndarray:
    """Cover class per pixel of rows [r0, r0+nrows) at ``scale`` x 10 m: 0 forest, 1 cleared, 2 burned, 3 cloud."""
    cov = np.zeros((nrows, ncols), np.uint8)
    rows = np.arange(r0, r0 + nrows) * scale
    cols = np.arange(ncols) * scale

    def paint(top, left, size, value):
        rr = (rows >= top) & (rows < top + size)
        cc = (cols >= left) & (cols < left + size)
        if rr.any() and cc.any():
            cov[np.ix_(rr, cc)] = value

    if date >= CLEAR_FROM:
        for top, left in ev["clearings"]:
            paint(top, left, ev["clearing_px"], 1)
    if date >= FIRE_FROM:
        top, left, size = ev["fire"]
        paint(top, left, size, 2)
    paint(*cloud, 3)
    return cov


def generate(root: Path, n_px: int) -> dict:
    """Write the scenes, their items (an ItemCollection file) and the AOI; return what was written."""
    import rasterio
    from rasterio.transform import from_origin

    from aoi.grid import reproject_geometry
    from demo.stac import s2_item
    from shapely.geometry import box, mapping

    root.mkdir(parents=True, exist_ok=True)
    scene_px = n_px + 240  # the scenes overhang the landscape by 1.2 km on each side
    ev = _events(scene_px)
    rng = np.random.default_rng(1)
    items, n_files, t0 = [], 0, time.perf_counter()
    for k, date in enumerate(BASE_DATES + SEASON_DATES):
        when = dt.datetime.fromisoformat(f"{date}T02:21:50")
        iid = f"S2B_T51TXM_{when:%Y%m%dT%H%M%S}_L2A"
        d = root / "sentinel-2-c1-l2a" / iid
        d.mkdir(parents=True, exist_ok=True)
        csize = min(1200, scene_px // 8)
        cloud = (int(rng.integers(0, scene_px - csize)), int(rng.integers(0, scene_px - csize)), csize)
        files, sizes = {}, {}
        for band in BANDS + ["scl"]:
            g = GSD[band]
            n = scene_px * RES // g
            path = d / f"{band}.tif"
            prof = {"driver": "GTiff", "width": n, "height": n, "count": 1, "crs": f"EPSG:{EPSG}",
                    "transform": from_origin(X0, Y1, g, g), "tiled": True, "blockxsize": 512, "blockysize": 512,
                    "compress": "zstd", "zstd_level": 1, "nodata": 0,
                    "dtype": "uint8" if band == "scl" else "uint16", "predictor": 2}
            with rasterio.open(path, "w", **prof) as dst:
                for r0 in range(0, n, 1024):
                    h = min(1024, n - r0)
                    cov = _cover_block(r0, h, n, g // RES, date, ev, cloud)
                    if band == "scl":
                        dst.write(np.where(cov == 3, 9, 4).astype(np.uint8)[None], window=((r0, r0 + h), (0, n)))
                        continue
                    i = BANDS.index(band)
                    refl = np.choose(cov, [FOREST[i], CLEARED[i], BURNED[i], CLOUD[i]]).astype(np.float32)
                    refl += rng.normal(0, 0.004, size=refl.shape).astype(np.float32)  # texture
                    dn = np.clip((refl + 0.1) / 1e-4, 1, 65535).astype(np.uint16)  # the 04.00 offset
                    dst.write(dn[None], window=((r0, r0 + h), (0, n)))
            files[band], sizes[band] = f"./{band}.tif", path.stat().st_size
            n_files += 1
        ext = box(X0, Y1 - scene_px * RES, X0 + scene_px * RES, Y1)
        geom = mapping(reproject_geometry(ext, EPSG, 4326))
        cloud_pct = 100 * csize ** 2 / scene_px ** 2
        stats = {"cloud_cover": cloud_pct, "nodata": 0.0, "shadow": 0.0, "vegetation": 100 - cloud_pct,
                 "not_vegetated": 0.0, "water": 0.0, "cloud_medium": 0.0, "cloud_high": cloud_pct, "cirrus": 0.0,
                 "snow": 0.0}
        it = s2_item(item_id=iid, platform="sentinel-2b", when=when, epsg=EPSG, geometry=geom,
                     transforms={g: [g, 0.0, X0, 0.0, -g, Y1] for g in (10, 20)},
                     shapes={g: [scene_px * RES // g] * 2 for g in (10, 20)}, files=files, file_sizes=sizes,
                     stats=stats, mgrs="51TXM", sun=(60.0, 150.0))
        for a in it["assets"].values():
            a["href"] = str((d / Path(a["href"]).name).resolve())
        items.append(it)
        print(f"  scene {k + 1}/10 {date} written ({time.perf_counter() - t0:.0f} s)", flush=True)
    (root / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    # the landscape: 1.2 km inside the scenes on every side
    inner = box(X0 + 1200, Y1 - (scene_px * RES - 1200), X0 + scene_px * RES - 1200, Y1 - 1200)
    land = {"type": "Feature", "properties": {
        "id": "bench-forest", "name": "Load benchmark forest", "country": ["CN"], "ecosystems": ["forest"],
        "managers": [], "boundary_source": "synthetic"}, "geometry": mapping(reproject_geometry(inner, EPSG, 4326))}
    (root / "aoi.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [land]}))
    return {"files": n_files, "seconds": round(time.perf_counter() - t0, 1), "events": ev}


def raw_decode(root: Path, date: str) -> float:
    """Baseline: megapixels per second decoding one date's files with rasterio (block by block)."""
    import rasterio

    d = next((root / "sentinel-2-c1-l2a").glob(f"*_{date.replace('-', '')}T*"))
    px, t0 = 0, time.perf_counter()
    for f in sorted(d.glob("*.tif")):
        with rasterio.open(f) as src:
            for _, w in src.block_windows(1):
                px += src.read(1, window=w).size
    return px / 1e6 / (time.perf_counter() - t0)


class PhaseMeter:
    """Peak resident memory per phase of the run, sampled from ``/proc/self/status`` every 0.2 s.

    The phases are the pipeline functions the nightly flow calls (wrapped here, in the benchmark
    only), so the report says where the peak is, not only how high it is.
    """

    PHASES = {"ingest": "ingest", "update_alerts": "alerts step, other (forest baseline, reads)",
              "forest_burn_nightly": "forest/burn strips",
              "_annual": "annual layers", "alert_masks": "alert masks", "forest_burn_alerts": "alert polygons",
              "_probable_forest": "alert polygons",
              "landscape_stats": "stats"}

    def __init__(self) -> None:
        import threading

        from flows import pipeline

        self.stack, self.peaks, self._stop = ["other"], {}, threading.Event()
        for name, label in self.PHASES.items():
            setattr(pipeline, name, self._wrap(getattr(pipeline, name), label))
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _wrap(self, fn, label):
        def wrapped(*a, **k):
            self.stack.append(label)
            try:
                return fn(*a, **k)
            finally:
                self.stack.pop()
        return wrapped

    @staticmethod
    def rss_gb() -> float:
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return kb / 2**20

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            ph = self.stack[-1]
            self.peaks[ph] = max(self.peaks.get(ph, 0.0), self.rss_gb())

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {k: round(v, 2) for k, v in sorted(self.peaks.items(), key=lambda kv: -kv[1])}


def child(root: Path, nights: int = 2) -> None:
    """The runs, in this (measured) process."""
    meter = PhaseMeter()
    from flows.cluster import dask_client
    from flows.nightly import run_night
    from flows.settings import load_settings

    settings = load_settings(None, sources=[{"url": str(root / "items.json"), "collections": ["sentinel-2-c1-l2a"],
                                             "max_cloud": 90}], aoi=str(root / "aoi.geojson"), out=str(root / "out"),
                             baseline_years=1, dask={"n_workers": 1, "threads_per_worker": 2, "processes": False})
    land = __import__("flows.pipeline", fromlist=["x"]).select_landscapes(settings)[0]
    shape = land.grid(settings.resolution).shape
    runs = []
    with dask_client(settings.dask):
        plan = [(dt.date.fromisoformat(FIRST_RUN_THROUGH), (dt.date(2025, 6, 1), dt.date.fromisoformat(FIRST_RUN_THROUGH)))]
        plan += [(dt.date.fromisoformat(d), None) for d in SEASON_DATES if d > FIRST_RUN_THROUGH][:nights]
        for night, window in plan:
            t0 = time.perf_counter()
            s = run_night(settings, night, window=window, inline=True, notify=False, report=False)
            rec = s.landscapes[land.id]
            runs.append({"night": night.isoformat(), "seconds": round(time.perf_counter() - t0, 1),
                         "status": rec.get("status"), "slices": (rec.get("ingest") or {}).get("slices_written", 0),
                         "notes": (rec.get("alerts") or {}).get("notes", []), "error": rec.get("error"),
                         "rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)})
            print(json.dumps(runs[-1]), flush=True)
    from outputs.alerts import AlertStore

    store = AlertStore(settings.state_url())
    try:
        alerts = store.frame(landscape_id=land.id)
    finally:
        store.close()
    print("RESULT " + json.dumps({"shape": list(shape), "runs": runs, "phases": meter.stop(),
                                  "alerts": {str(k): int(v) for k, v in alerts["kind"].value_counts().items()}}))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks scale")
    ap.add_argument("--size", type=int, default=10_000, help="landscape side in pixels (10 m)")
    ap.add_argument("--out", default=None, help="work folder (default: a temporary one, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--nights", type=int, default=2, choices=[0, 1, 2],
                    help="single-scene nights after the first run (default 2)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv if argv is not None else [])
    if args.child:
        child(Path(args.child), args.nights)
        return
    work = Path(args.out or tempfile.mkdtemp(prefix="amurwatch-bench-scale-"))
    try:
        print(f"writing a {args.size} x {args.size} px, 10-date archive under {work}", flush=True)
        gen = generate(work / "archive", args.size)
        raw = raw_decode(work / "archive", SEASON_DATES[-1])
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--child", str(work / "archive"),
                               "--nights", str(args.nights)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        lines = proc.stdout.splitlines()
        res = next((json.loads(x[7:]) for x in lines if x.startswith("RESULT ")), None)
        if proc.returncode != 0 or res is None:
            print(proc.stdout[-6000:])
            raise SystemExit(f"the runs failed (exit {proc.returncode}); peak RSS {peak:.2f} GB")
        h, w = res["shape"]
        dates = len(BASE_DATES) + len(SEASON_DATES) - (2 - args.nights)
        thr = h * w * dates / 1e6 / wall
        ratio = h * w * 1.75 * dates / 1e6 / wall / raw  # file pixels decoded per second, as the baseline counts
        print(f"\nlandscape {h} x {w} px at 10 m ({h * w / 1e6:.0f} Mpx), {dates} dates; archive written in "
              f"{gen['seconds']} s ({gen['files']} files)")
        print(f"{'run':<28} {'seconds':>8} {'slices':>7} {'peak RSS so far':>16}")
        for r in res["runs"]:
            print(f"{r['night']:<28} {r['seconds']:>8} {r['slices']:>7} {r['rss_gb']:>13} GB  {r['status']}")
        print("peak RSS by phase (sampled every 0.2 s): "
              + ", ".join(f"{k} {v} GB" for k, v in res.get("phases", {}).items()))
        print(f"\nalerts in the table: {res['alerts']}  (planted: 20 clearings of 36 ha, one 16 km² fire)")
        print(f"raw rasterio decode (baseline): {raw:.1f} Mpx/s; a date of the landscape's files is "
              f"{h * w * 1.75 / 1e6:.0f} Mpx (4 bands at 10 m, 4 at 20 m)")
        print(f"nightly path: {wall:.0f} s for {h * w / 1e6:.0f} Mpx x {dates} dates = {thr:.1f} Mpx-dates/s "
              f"({ratio:.3f}x raw decode of the same files)")
        ok = peak <= TARGET_RSS_GB
        print(f"peak RSS {peak:.2f} GB (target <= {TARGET_RSS_GB} GB): {'met' if ok else 'NOT met'}")
    finally:
        if not args.keep and not args.out:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
