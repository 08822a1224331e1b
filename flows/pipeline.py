"""The steps of a run for one landscape, as plain functions: the Prefect flows (``flows.nightly``)
wrap them in tasks, and tests call them directly.

1. :func:`find_items`: search every source for the landscape over a time window;
2. :func:`ingest`: load the solar days that are not in the cube yet (or changed), compute the
   per-observation layers, and upsert them into the cube, a few slices at a time;
3. :func:`update_alerts`: run the indicators on the cube up to the night, and upsert the alert
   candidates into the alert store;
4. :func:`landscape_stats`: per-observation statistics for ``stats.parquet``.

Nothing here holds data between steps: the cube and the alert store are the hand-over points.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import math
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from numcodecs import Zstd

from aoi.grid import Grid
from aoi.landscapes import Landscape, load_landscapes
from outputs.alerts import AlertStore
from outputs.cube import ANNUAL_GROUPS, DASK_READ_PX, ROW_BAND, CubeStore, _atomic_put, row_bands
from processors.chain import (
    ChainThresholds,
    burn_scar_pixels,
    forest_burn_alerts,
    forest_burn_masks,
    grassland_alerts,
    grassland_layers,
    wetland_alerts,
    wetland_layers,
)
from processors.forest import forest_baseline
from processors.coarse import (DETAIL_LAYERS, HALO, apply_coarse_detail, coarse_detail, coarse_refine_plan,
                               confirmed_first, pair_gains, pair_sums)
from processors.incremental import STATE_DTYPES, ForestBurnState, advance, observation_layers, prime, state_layers
from processors.indices import mndwi, nbr, ndvi
from processors.seasons import season_windows
from processors.vectorize import vectorize_alerts
from processors.water import EDGE_M, mndwi_histogram, otsu_threshold, refine_water_edges, water_mask
from sources.load import _mosaic_solar_days, load_reflectance
from sources.search import merge_duplicates, search_items, solar_date

from .settings import Settings

__all__ = ["BANDS", "find_items", "ingest", "update_alerts", "landscape_stats", "cube_url", "cube_store", "select_landscapes",
           "carry_ids",
           "IngestReport", "AlertReport", "grassland_looks"]

log = logging.getLogger(__name__)

BANDS = ("blue", "green", "red", "nir", "nir08", "swir16", "swir22")
#: slices computed and written per cube commit (bounds memory: 8 x 7 bands x the landscape)
WRITE_BATCH = 8
#: at most this many bytes of slices are loaded into memory at once; a landscape whose single slice
#: is larger streams each slice from the files to the cube instead (:func:`_stream`)
INGEST_BYTES = 512 * 2**20


def cube_url(settings: Settings, landscape_id: str) -> str:
    """``cubes/<id>.zarr`` under the output root, or under ``settings.cubes`` (an object store)."""
    root = settings.cubes.rstrip("/") if settings.cubes else f"{settings.out.rstrip('/')}/cubes"
    return f"{root}/{landscape_id}.zarr"


def cube_store(settings: Settings, landscape_id: str) -> CubeStore:
    return CubeStore(cube_url(settings, landscape_id), storage_options=settings.storage_options)


def select_landscapes(settings: Settings) -> list[Landscape]:
    lands = load_landscapes(settings.aoi)
    if settings.landscapes:
        known = {land.id for land in lands}
        missing = [i for i in settings.landscapes if i not in known]
        if missing:
            from aoi.errors import AoiError

            raise AoiError(f"landscape id(s) {missing} are not in {settings.aoi or 'the packaged AOI file'}; "
                           f"known ids: {sorted(known)}")
        lands = [land for land in lands if land.id in settings.landscapes]
    return lands


def find_items(settings: Settings, land: Landscape, start: str | dt.date, end: str | dt.date) -> list[dict]:
    """Items of every source intersecting the landscape over [start, end], duplicates merged.

    Earth Engine images (``earthengine.enabled``) come as STAC-like items (:func:`sources.earthengine.as_item`),
    so the same acquisition found on a STAC API and on Earth Engine is one scene."""
    items: list[dict] = []
    for src in settings.sources:
        items += search_items(src.url, intersects=land.geometry, start=start, end=end,
                              collections=src.collections, max_cloud=src.max_cloud)
    ee_cfg = settings.earthengine
    if ee_cfg.enabled:
        from sources import earthengine as eesrc

        eesrc.ensure_initialized(ee_cfg.project)
        for col in ee_cfg.collections:
            items += [eesrc.as_item(im, region=land.geometry) for im in eesrc.search_ee(
                col, intersects=land.geometry, start=str(start), end=str(end), max_cloud=ee_cfg.max_cloud)]
    return merge_duplicates(items) if len(settings.sources) + ee_cfg.enabled > 1 else items


def load_items(items: Sequence[dict], grid: Grid) -> tuple[xr.Dataset, list[str]]:
    """Clear-sky reflectance of STAC items and Earth Engine images together, on ``grid`` (the cube's
    bands, Landsat harmonised to Sentinel-2), and the scenes skipped with their reasons."""
    from sources.earthengine import EE_ITEM_KEY, is_ee_item, load_ee

    stac = [it for it in items if not is_ee_item(it)]
    ee_images = [it[EE_ITEM_KEY] for it in items if is_ee_item(it)]
    parts, skipped = [], []
    if stac:
        ds, lrep = load_reflectance(stac, grid, bands=list(BANDS), harmonize=True)
        skipped = [f"{s_.item_id} ({s_.asset}: {s_.reason})" for s_ in lrep.skipped]
        parts.append(ds)
    if ee_images:
        parts.append(load_ee(ee_images, grid, bands=list(BANDS), harmonize=True))
    if len(parts) == 1:
        return parts[0], skipped
    keep = ["platform", "item_id", "collection", "processing_baseline", "cloud_cover", "offset", "solar_date"]
    parts = [p_[list(BANDS) + ["clear", "snow"]].drop_vars([c for c in p_.coords if c not in keep + ["time", "y", "x"]])
             for p_ in parts]
    ds = _mosaic_solar_days(xr.concat(parts, dim="time").sortby("time"))
    return ds.rio.write_crs(grid.epsg), skipped


@dataclass
class IngestReport:
    landscape_id: str
    found: int = 0
    new_items: int = 0
    slices_written: int = 0
    skipped: list[str] = field(default_factory=list)  #: scenes skipped by the loader (reason)
    failed_reads: int = 0  #: slices not written because a read failed after the retries
    last_clear: str | None = None  #: latest observation with at least 1% clear pixels
    times: list[str] = field(default_factory=list)  #: slices written

    def to_dict(self) -> dict:
        return asdict(self)


def _cube_item_ids(store: CubeStore) -> set[str]:
    return {p for v in store.coordinate("item_id") for p in str(v).split("+")}


def slices_from_reflectance(ds: xr.Dataset, *, water_threshold: xr.DataArray | None = None) -> xr.Dataset:
    """Per-observation cube layers from clear-sky reflectance (lazy on dask input): the bands, NDVI,
    NBR, clear, water (``water_threshold``: each scene's MNDWI threshold, if already computed)."""
    out = ds[list(BANDS)].copy()
    out["ndvi"] = ndvi(ds["red"], ds["nir"])
    out["nbr"] = nbr(ds["nir08"], ds["swir22"])
    out["clear"] = ds["clear"]
    water = water_mask(mndwi(ds["green"], ds["swir16"]), threshold=water_threshold)
    out["water"] = refine_water_edges(water, ds["nir"], ds["swir16"])
    keep = ["platform", "item_id"]
    return out.drop_vars([c for c in out.coords if out[c].dims == ("time",) and c not in keep + ["time"]])


def ingest(settings: Settings, land: Landscape, items: Sequence[dict], *,
           progress: Callable[[int, int], None] | None = None) -> IngestReport:
    """Load the solar days of ``items`` that the cube lacks and upsert them into the landscape's cube."""
    rep = IngestReport(land.id, found=len(items))
    store = CubeStore(cube_url(settings, land.id), storage_options=settings.storage_options)
    have = _cube_item_ids(store)
    new = [it for it in items if it["id"] not in have]
    rep.new_items = len(new)
    if not new:
        return rep
    days = {solar_date(it) for it in new}
    todo = [it for it in items if solar_date(it) in days]  # a late tile completes its day's mosaic
    grid = land.grid(settings.resolution)
    ds, rep.skipped = load_items(todo, grid)
    if ds.sizes.get("time", 0) == 0:
        return rep
    n = ds.sizes["time"]
    per_slice = ds.sizes["y"] * ds.sizes["x"] * 4 * (len(BANDS) + 6)  # loaded bands and the layers made
    if per_slice > INGEST_BYTES:  # a big landscape: each solar day streams from the files to the cube
        _stream(todo, grid, store, rep, progress)
        return rep
    batch = max(1, min(WRITE_BATCH, INGEST_BYTES // per_slice))
    for i in range(0, n, batch):
        part = _compute_or_skip(ds.isel(time=slice(i, i + batch)), rep,
                                lambda ids: load_items([it for it in todo if it["id"] in ids], grid)[0])
        if part is None:
            continue
        part = slices_from_reflectance(part)  # on the loaded batch: no graph to build
        store.write(part)
        frac = part["clear"].mean(("y", "x")).values
        for t, f in zip(part["time"].values, frac):
            if f >= 0.01:
                rep.last_clear = max(rep.last_clear or "", str(t)[:10])
        rep.times += [str(t)[:19] for t in part["time"].values]
        rep.slices_written += part.sizes["time"]
        if progress:
            progress(min(i + batch, n), n)
    return rep


def _stream(items: Sequence[dict], grid: Grid, store: CubeStore, rep: IngestReport,
            progress: Callable[[int, int], None] | None) -> None:
    """Write each solar day lazily, chunk by chunk (dask), from its own files: memory is bounded by
    the chunks, not the landscape, and no day reads another day's files. A read that fails after
    the retries fails that day's write before its commit: the cube keeps its committed shape (the
    next write repairs the growth), the scenes are reported, and the next night's lookback tries
    them again."""
    days: dict[dt.date, list[dict]] = {}
    for it in items:
        days.setdefault(solar_date(it), []).append(it)
    for j, (_, group) in enumerate(sorted(days.items())):
        ids = "+".join(it["id"] for it in group)
        try:
            one, skipped = load_items(group, grid)
            rep.skipped += skipped
            # the scene's water threshold first (one pass over two bands), so that every layer
            # of a chunk can then be written as soon as its inputs are read
            m = mndwi(one["green"], one["swir16"])
            hist = sum(mndwi_histogram(m.isel(y=rows)).compute() for rows in row_bands(m.sizes["y"]))
            thr = otsu_threshold(histogram=hist)
            store.write(slices_from_reflectance(one, water_threshold=thr))
        except Exception as exc:
            log.warning("%s: %s not written (%s)", rep.landscape_id, ids, str(exc).splitlines()[0][:200])
            rep.skipped.append(f"{ids} (read failed after retries: {str(exc).splitlines()[0][:200]})")
            rep.failed_reads += 1
            continue
        cube = store.read()
        for t in pd.DatetimeIndex(one["time"].values).floor("s"):  # the cube's precision
            clear = cube["clear"].sel(time=[t]).mean(("y", "x")).values  # read back, chunk by chunk
            if float(clear[0]) >= 0.01:
                rep.last_clear = max(rep.last_clear or "", str(t)[:10])
            rep.times.append(str(t.to_datetime64())[:19])
            rep.slices_written += 1
        if progress:
            progress(j + 1, len(days))


def _compute_or_skip(part: xr.Dataset, rep: IngestReport, reload: Callable[[set[str]], xr.Dataset]
                     ) -> xr.Dataset | None:
    """Load a batch of slices. When a read still fails after GDAL's own retries (a file cut short,
    or corrupt past its header), each solar day of the batch is loaded again on its own (a chunk
    can span several days): a day that fails again is reported and not written. Its scenes stay
    out of the cube, so the next night's lookback tries them again. Never a gap written as data,
    never a wrong pixel."""
    with dask.config.set(scheduler=dask.config.get("scheduler", "threads")):
        try:
            return part.compute()
        except Exception as exc:
            log.warning("%s: a read failed in a batch of %d slices (%s); loading them day by day",
                        rep.landscape_id, part.sizes["time"], str(exc).splitlines()[0][:200])
        ok = []
        for j in range(part.sizes["time"]):
            ids = str(part["item_id"].values[j])
            try:
                one = reload(set(ids.split("+")))
                ok.append(one.compute())
            except Exception as exc:
                rep.skipped.append(f"{ids} (read failed after retries: {str(exc).splitlines()[0][:200]})")
                rep.failed_reads += 1
    return xr.concat(ok, dim="time") if ok else None


# ------------------------------------------------------------------------------------------ alerts
@dataclass
class AlertReport:
    landscape_id: str
    night: str
    candidates: dict[str, int] = field(default_factory=dict)
    upsert: dict[str, int] = field(default_factory=dict)
    wetland: dict | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _season_start(settings: Settings, year: int) -> dt.date:
    return dt.date.fromisoformat(f"{year}-{settings.season_start}")


def update_alerts(settings: Settings, land: Landscape, night: dt.date, *, store: AlertStore,
                  final: bool = False) -> AlertReport:
    """Run the indicators on the cube up to ``night`` and upsert the candidates.

    Forest loss and burn scars run every night of the season over the season so far (statuses
    need the sequence of observations). Wetland loss runs once its months are over (or on the
    ``final`` night of a replay), grassland degradation once the peak window is over: both are
    judged per period, so their alerts keep one id.
    """
    rep = AlertReport(land.id, night.isoformat())
    cube_store = CubeStore(cube_url(settings, land.id), storage_options=settings.storage_options)
    if not cube_store.exists():
        rep.notes.append("no cube yet")
        store.upsert(_empty(), landscape_id=land.id, run_date=night, expire_after_days=settings.expire_after_days)
        return rep
    cube = cube_store.read()
    cube = cube.sel(time=cube["time"] <= np.datetime64(night + dt.timedelta(days=1)))
    year = night.year
    season0 = _season_start(settings, year)
    ecos = {e.value for e in land.ecosystems}
    w = season_windows(land.shape.centroid.y)
    th = settings.thresholds
    frames = []
    t = pd.DatetimeIndex(cube["time"].values)
    if night >= season0:
        base_years = [year - k for k in range(settings.baseline_years, 0, -1)]
        # the baseline seasons (±window) and this year from before the season (previous clear look)
        lo = pd.Timestamp(season0) - pd.Timedelta(days=60)
        keep = (t >= lo) | (t.year.isin(base_years))
        ds = cube[list(BANDS) + ["clear"]].isel(time=np.nonzero(keep)[0])
        mon = ds["time"].values >= np.datetime64(season0)
        have_base = bool(np.isin(pd.DatetimeIndex(ds["time"].values).year, base_years).any())
        if mon.any() and have_base:
            forest = _forest_mask(cube_store, cube, year)
            if forest is None:
                forest = forest_baseline(ndvi(ds["red"], ds["nir"]), nbr(ds["nir08"], ds["swir22"]), years=base_years,
                                         start_doy=w.growing_start_doy, end_doy=w.growing_end_doy,
                                         ndsi=mndwi(ds["green"], ds["swir16"])).compute()
            lay, how = forest_burn_nightly(cube_store, ds, season0=season0, year=year, base_years=base_years,
                                           thresholds=th.chain(), forest=forest)
            rep.notes.append(how)
            # fires first seen at 30 m: the post-fire NBR's 10 m detail from a later Sentinel-2 look
            lay = refine_coarse(lay, ds, th.chain(), store=cube_store, year=year)
            masks = alert_masks(lay)
            scars = burn_scar_pixels(lay, masks, th.chain())
            # burn severity and dNBR only inside the burn-scar alerts: the cube shows the burned area
            # the alerts report, not every fire-like pixel the state machine confirmed; and the forest
            # status outside them (fire is not forest loss)
            _annual(cube_store, cube, "annual/forest", year, {
                "forest_baseline": lay["forest"], "forest_status": lay["forest_status"],
                "burn_severity": lay["severity"], "dnbr": lay["dnbr"]},
                only={"burn_severity": (scars, -1), "dnbr": (scars, np.nan), "forest_status": (~scars, 0)})
            release_layers(lay)
            fb = forest_burn_alerts(lay, landscape_id=land.id, thresholds=th.chain(), masks=masks, scars=scars)
            release_layers(lay)
            if "forest" in ecos:
                frames.append(_probable_forest(lay, masks["probable_loss"], fb, land.id, th.forest_mmu_ha))
            else:
                fb = fb[fb.kind != "forest_loss"]
            frames.append(fb)
            del lay, masks
        elif not have_base:
            rep.notes.append(f"no baseline years {base_years} in the cube: run the backfill first")
    if "wetland" in ecos:
        months = th.wetland_months
        period_end = dt.date(year, max(months), 1) + pd.offsets.MonthEnd(0)
        period_end = period_end.date() if hasattr(period_end, "date") else period_end
        if night > period_end or (final and night.month >= min(months)):
            sub = cube[["green", "nir", "swir16"]].isel(time=np.nonzero(np.asarray(t.month.isin(months)))[0])

            def wetland() -> tuple[gpd.GeoDataFrame, dict]:
                years = sorted({y for y in t.year if y < year})
                wl = wetland_layers(sub, baseline_years=years, year=year, months=tuple(months),
                                    pixel_area_ha=land.grid(settings.resolution).pixel_area_ha).compute()
                return wetland_alerts(wl, landscape_id=land.id, loss_fraction=th.wetland_loss_fraction,
                                      min_area_ha=th.wetland_mmu_ha)

            wa, rep.wetland, how = _period(cube_store, "wetland", year, sub, [months, th.wetland_loss_fraction,
                                                                             th.wetland_mmu_ha, EDGE_M], wetland)
            rep.notes.append(f"wetland period {how}")
            frames.append(wa)
    if "grassland" in ecos:
        peak_end = dt.date(year, 1, 1) + dt.timedelta(days=w.peak_end_doy - 1)
        peak0 = pd.Timestamp(dt.date(year, 1, 1) + dt.timedelta(days=w.peak_start_doy - 1))
        seen = bool(((t >= peak0) & (t <= pd.Timestamp(peak_end))).any())
        if seen and (night > peak_end or final):
            # the trend reads the snow-free looks (grassland_looks): computed once the peak window is
            # over and once more at the season's end (and again whenever one of those looks changes)
            keep = grassland_looks(t, w, year=year, night=night, final=final)
            snowfree = cube[["red", "nir"]].isel(time=np.nonzero(keep)[0])

            def grassland() -> tuple[gpd.GeoDataFrame, dict]:
                gl = grassland_layers(snowfree, **w.grassland(), year=year, p_max=th.grass_p_max,
                                      slope_per_year=th.grass_slope_per_year, drop_below=th.grass_leak_drop)
                gl = gl[["slope", "p_value", "trend_class", "modelled"]].compute()
                _annual(cube_store, cube, "annual/grassland", year, {
                    "grass_slope": gl["slope"], "grass_p_value": gl["p_value"],
                    "grass_class": gl["trend_class"].fillna(-2)})
                return grassland_alerts(gl, landscape_id=land.id, first_detected=str(peak0.date()),
                                        min_area_ha=th.grass_mmu_ha, weak_p_max=th.grass_weak_p_max,
                                        weak_slope_per_year=th.grass_weak_slope_per_year), {}

            ga, _, how = _period(cube_store, "grassland", year, snowfree, [
                w.grassland(), "modelled-trend-2", th.grass_p_max, th.grass_slope_per_year, th.grass_mmu_ha,
                th.grass_weak_p_max, th.grass_weak_slope_per_year, th.grass_leak_drop], grassland)
            rep.notes.append(f"grassland trend {how}")
            frames.append(ga)
    frames = [f for f in frames if len(f)]
    cand = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=4326) if frames else _empty()
    rep.candidates = {str(k): int(v) for k, v in cand["kind"].value_counts().items()} if len(cand) else {}
    cand = carry_ids(cand, store.frame(landscape_id=land.id))
    rep.upsert = dict(store.upsert(cand, landscape_id=land.id, run_date=night,
                                   expire_after_days=settings.expire_after_days))
    return rep


def grassland_looks(t: pd.DatetimeIndex, w, *, year: int, night: dt.date, final: bool = False) -> np.ndarray:
    """Which looks of the cube (``t``) the grassland trend of ``year`` reads on ``night``: the
    snow-free ones (``w``: :func:`processors.seasons.season_windows`) of the earlier years, and of
    ``year`` those up to the peak window's end until the lasting snow is back (or on the ``final``
    night), then all of them. So the trend is computed once the peak window is over and once more
    at the season's end, not again on every autumn night with a new look."""
    doy = np.asarray(t.dayofyear)
    snow_back = dt.date(year, 1, 1) + dt.timedelta(days=w.snow_start_doy - 1)
    upto = w.snow_start_doy if (night >= snow_back or final) else w.peak_end_doy
    return (doy >= w.snow_end_doy) & (doy <= w.snow_start_doy) & ((np.asarray(t.year) < year) | (doy <= upto))


def _period(store: CubeStore, name: str, year: int, used: xr.Dataset, knobs: list,
            compute: Callable[[], tuple[gpd.GeoDataFrame, dict]]) -> tuple[gpd.GeoDataFrame, dict, str]:
    """A per-period indicator (wetland extent, grassland trend), computed once per set of inputs.

    Once its period is over, the indicator is judged again every night (its alerts keep being seen),
    but it changes only when an observation it reads changes: the candidates of the last evaluation
    are kept with the digest of those observations and the knobs, and reused while they match.
    """
    digest = hashlib.sha1((_history_digest(used, float("inf")) + json.dumps(knobs, default=str)).encode()).hexdigest()
    url = f"{store.url.removesuffix('.zarr')}.state/{name}-{year}.json"
    fs, path = store._fs(url)
    if fs.exists(path):
        saved = json.loads(fs.cat_file(path))
        if saved["digest"] == digest:
            cand = gpd.read_file(io.BytesIO(saved["alerts"].encode())) if saved["n"] else _empty()
            if len(cand):
                cand["first_detected"] = pd.to_datetime(cand["first_detected"])
            return cand, saved["stats"], "reused (its observations did not change)"
    cand, stats = compute()
    body = cand.assign(first_detected=cand["first_detected"].astype(str)).to_json(drop_id=True) if len(cand) else ""
    _put_beside(store, url, json.dumps({"digest": digest, "n": len(cand), "stats": stats, "alerts": body}).encode())
    return cand, stats, "computed"


#: observations fed to the forest/burn state per computed batch (bounds memory on big landscapes)
STATE_BATCH = 8
#: the forest/burn state is kept, and advanced, in strips of rows of at most this many bytes each
STATE_STRIP_BYTES = 256 * 2**20
_STATE_CODEC = Zstd(level=1)
_STATE_PX_BYTES = sum(np.dtype(d).itemsize for d in STATE_DTYPES.values())


def state_strips(shape: tuple[int, int], strip_bytes: int = STATE_STRIP_BYTES, align: int = 256) -> list[slice]:
    """Rows of each strip of the forest/burn state: the whole grid when its state fits in
    ``strip_bytes``, else strips whose height is a multiple of ``align`` (the cube's chunks)."""
    h, w = shape
    rows = strip_bytes // max(1, w * _STATE_PX_BYTES)
    if rows >= h:
        return [slice(0, h)]
    rows = max(align, rows // align * align)
    return [slice(r, min(r + rows, h)) for r in range(0, h, rows)]


def _history_digest(ds: xr.Dataset, through: float | None) -> str:
    """What the state has seen: the times and items of every observation up to ``through``."""
    t = pd.DatetimeIndex(ds["time"].values)
    secs = t.values.astype("datetime64[s]").astype(np.int64)
    ids = ds["item_id"].values if "item_id" in ds.coords else [""] * len(t)
    rows = [f"{s_}|{i}" for s_, i in zip(secs, ids) if through is not None and s_ <= through]
    return hashlib.sha1("\n".join(rows).encode()).hexdigest()


def _state_key(season0: dt.date, base_years: list[int], th: ChainThresholds) -> str:
    return hashlib.sha1(json.dumps([season0.isoformat(), base_years, asdict(th)], sort_keys=True).encode()
                        ).hexdigest()[:16]


def _state_url(store: CubeStore, year: int, rows: slice | None = None) -> str:
    """One file per landscape and year, or per strip of rows on a landscape too big for one."""
    tail = "" if rows is None else f"-rows{rows.start:05d}-{rows.stop:05d}"
    return f"{store.url.removesuffix('.zarr')}.state/forest-burn-{year}{tail}.npz.zst"


def _load_state(url: str, store: CubeStore, key: str) -> tuple[ForestBurnState | None, str]:
    """The saved state at ``url`` and the digest of its history; (None, why) when there is none to use."""
    fs, path = store._fs(url)
    if not fs.exists(path):
        return None, "no state for this year yet"
    with np.load(io.BytesIO(_STATE_CODEC.decode(fs.cat_file(path)))) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        if meta["key"] != key:
            return None, "the settings changed"
        if any(k not in z for k in STATE_DTYPES):
            return None, "the state was saved by an older version"
        arrays = {k: z[k] for k in STATE_DTYPES}
    return ForestBurnState(arrays, through=meta["through"], n_obs=meta["n_obs"]), meta["digest"]


def _save_state(url: str, store: CubeStore, key: str, st: ForestBurnState, digest: str) -> None:
    """One compressed file (an .npz, compressed whole with Zstandard: 10x faster than the .npz's own
    deflate, which was half of a night's time on a big landscape), replaced whole (a rename, or one
    object PUT): every strip is a complete state of its rows on its own, so a run killed between
    two strips resumes each where it stands."""
    meta = json.dumps({"key": key, "digest": digest, "through": st.through, "n_obs": st.n_obs}).encode()
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(meta, np.uint8), **st.arrays)
    _put_beside(store, url, _STATE_CODEC.encode(buf.getbuffer()))


def _advance_strip(url: str, store: CubeStore, ds: xr.Dataset, *, key: str, season0: dt.date,
                   base_years: list[int], thresholds: ChainThresholds, reference: xr.DataArray
                   ) -> tuple[ForestBurnState, str, int]:
    """Bring the state at ``url`` (the rows of ``ds``; ``reference``: their forest mask) up to the last
    observation of ``ds``."""
    st, digest = _load_state(url, store, key)
    t = pd.DatetimeIndex(ds["time"].values)
    secs = t.values.astype("datetime64[s]").astype(np.int64)
    season = np.asarray(t >= pd.Timestamp(season0))
    how = "updated"
    if st is None:
        how = f"built ({digest})"
    elif st.through is None:  # nothing fed yet: start again (a late pre-season scene may have arrived)
        st, how = None, "built (nothing fed yet)"
    elif (_history_digest(ds, st.through) != digest
          or int((season & (secs <= st.through)).sum()) != st.n_obs):
        st, how = None, "rebuilt (the history changed: a late or replaced scene)"
    if st is None:
        st = ForestBurnState.new((ds.sizes["y"], ds.sizes["x"]))
        prime(st, ds.isel(time=np.nonzero(~season)[0]), reference=reference, thresholds=thresholds)
    todo = np.nonzero(season & (secs > st.through) if st.through is not None else season)[0]
    is_base = np.asarray(t.year.isin(base_years))
    doy = t.dayofyear.values
    for i in range(0, len(todo), STATE_BATCH):
        batch = todo[i:i + STATE_BATCH]
        # only the baseline looks within the same-season window of the batch are read
        d = np.abs(doy[:, None] - doy[batch][None, :])
        near = (np.minimum(d, 365 - d) <= thresholds.window_days).any(axis=1)
        part = ds.isel(time=np.concatenate([np.nonzero(is_base & near)[0], batch]))
        advance(st, observation_layers(part, monitor_start=season0.isoformat(), thresholds=thresholds,
                                       reference=reference).compute(), thresholds)
    if len(todo) or how != "updated":
        _save_state(url, store, key, st, _history_digest(ds, st.through))
    return st, how, len(todo)


def forest_burn_nightly(store: CubeStore, ds: xr.Dataset, *, season0: dt.date, year: int, base_years: list[int],
                        thresholds: ChainThresholds, forest: xr.DataArray,
                        strip_bytes: int = STATE_STRIP_BYTES, strip_align: int = 256) -> tuple[xr.Dataset, str]:
    """The forest-loss and burn-scar layers of the season so far, from the state kept beside the
    cube and the observations it has not seen (:mod:`processors.incremental`).

    ``ds``: the baseline years, the weeks before the season and the season up to the night. The state
    is rebuilt from the season start when the history it saw changed (a late scene, a replaced
    slice, a new baseline scene) or the settings did. Returns the layers and what was done.

    A landscape whose state does not fit in ``strip_bytes`` is advanced strip by strip (the state
    machines are per pixel), and its layers are assembled in memory-mapped scratch files whose
    pages are handed back after each strip: memory stays bounded by the strip, not the landscape.
    """
    key = _state_key(season0, base_years, thresholds)
    # strips start on the tiles of the season's phenology reference, so each sees the tiles the whole grid does
    strips = state_strips((ds.sizes["y"], ds.sizes["x"]), strip_bytes,
                          math.lcm(strip_align, thresholds.reference_tile_px))
    if len(strips) == 1:
        st, how, n = _advance_strip(_state_url(store, year), store, ds, key=key, season0=season0,
                                    base_years=base_years, thresholds=thresholds, reference=forest)
        return state_layers(st, forest, thresholds), f"forest/burn state {how}: {n} new observation(s)"
    out: xr.Dataset | None = None
    hows: dict[str, int] = {}
    n = 0
    for rows in strips:
        st, how, k = _advance_strip(_state_url(store, year, rows), store, ds.isel(y=rows), key=key, season0=season0,
                                    base_years=base_years, thresholds=thresholds, reference=forest.isel(y=rows))
        how = "unchanged" if how == "updated" and not k else how.split(" (")[0]
        hows[how] = hows.get(how, 0) + 1
        n = max(n, k)
        lay = state_layers(st, forest.isel(y=rows), thresholds)
        del st
        if out is None:
            out = _mapped_like(lay, forest)
        for v in lay.data_vars:
            out[v].data[rows] = lay[v].data
        del lay
        release_layers(out)
        trim_heap()
    what = ", ".join(f"{h} in {c} strip(s)" for h, c in hows.items())
    return out, f"forest/burn state {what} of {len(strips)}: {n} new observation(s)"


def _mapped_like(lay: xr.Dataset, grid: xr.DataArray) -> xr.Dataset:
    """Full-grid layers like the strip's ``lay``, each in an unlinked memory-mapped scratch file
    (NumPy arrays to every reader; the pages live in the page cache, not in the process)."""
    import tempfile

    arrays = {}
    with tempfile.TemporaryDirectory(prefix="amurwatch-layers-") as tmp:
        for v in lay.data_vars:
            arrays[v] = np.memmap(Path(tmp) / v, dtype=lay[v].dtype, mode="w+", shape=grid.shape)
    # the files are gone; the mappings keep their pages until the arrays are collected
    like = grid.astype(bool)
    ds = xr.Dataset({v: like.copy(data=a).assign_attrs(lay[v].attrs) for v, a in arrays.items()})
    return ds


def _memmap_of(a: Any) -> np.memmap | None:
    """The scratch-file mapping under ``a`` (a memmap or a view of one), or None for in-memory data."""
    while a is not None and not isinstance(a, np.memmap):
        a = getattr(a, "base", None)
    return a if isinstance(a, np.memmap) and getattr(a, "_mmap", None) is not None else None


def refine_coarse(lay: xr.Dataset, ds: xr.Dataset, thresholds: ChainThresholds, *, band_rows: int = 1024,
                  store: CubeStore | None = None, year: int | None = None) -> xr.Dataset:
    """:func:`processors.coarse.refine_coarse_severity` over computed layers (in memory, or the
    memory-mapped layers of a big landscape, refined in place), loading the few looks it needs from
    ``ds`` band by band of rows (with the halo), only over the rows where a 30 m look first
    detected a burned pixel.

    With a cube ``store`` and the ``year``, each band's detail (:func:`processors.coarse.coarse_detail`)
    is kept beside the cube with a digest of what it depends on: the band's detections and forest
    mask (with the halo), the looks (time and item id) and the thresholds. A later night whose
    band has not changed reuses it instead of loading the looks again (after a fire, every night
    of the season would otherwise redo the same work). The Sentinel-2 pairs' fits
    (:func:`processors.coarse.pair_gains`) are made over every band's pixels, then each band refined:
    the result does not depend on ``band_rows``."""
    plan = coarse_refine_plan(lay, ds["time"].values, ds["platform"].values, thresholds)
    if not plan.looks:
        return lay
    ny = lay.sizes["y"]
    d_all, s_all = lay["dnbr"].data, lay["severity"].data
    if not (getattr(d_all, "flags", None) is not None and d_all.flags.writeable and s_all.flags.writeable):
        lay = lay.copy(deep=True)
        d_all, s_all = lay["dnbr"].data, lay["severity"].data
    t = ds["time"].values[plan.looks].astype("datetime64[s]").astype(np.int64)
    ids = ds["item_id"].values[plan.looks] if "item_id" in ds.coords else [""] * len(plan.looks)
    looks_key = json.dumps([[int(a), str(b)] for a, b in zip(t, ids)] + [asdict(thresholds)]
                           + [list(DETAIL_LAYERS)], sort_keys=True)
    # first each band's detail (kept at its refined pixels only) and the sums of the Sentinel-2 pairs'
    # fits, then each band refined with the fits of the whole grid (a fire across bands: one fit)
    kept, sums = [], {}
    for b0 in range(plan.rows.start, plan.rows.stop, band_rows):
        b1 = min(b0 + band_rows, plan.rows.stop)
        h0, h1 = max(b0 - HALO, 0), min(b1 + HALO, ny)
        band = lay.isel(y=slice(b0, b1))
        url = key = None
        if store is not None and year is not None:
            url = f"{store.url.removesuffix('.zarr')}.state/coarse-detail-{year}-rows{b0:05d}-{b1:05d}.npz"
            key = _coarse_key(lay.isel(y=slice(h0, h1)), looks_key, (b0, b1, h0, h1))
        shape = (len(DETAIL_LAYERS), b1 - b0, lay.sizes["x"])
        detail = _load_detail(url, store, key, shape) if url else None
        if detail is None:
            looks = ds[list(BANDS)].isel(time=plan.looks, y=slice(h0, h1)).compute()
            detail = coarse_detail(band, looks, top=b0 - h0, thresholds=thresholds)
            if url:
                _save_detail(url, store, key, detail)
        for k, v in pair_sums(band, detail).items():
            sums[k] = sums.get(k, 0) + v
        kept.append((b0, b1, shape, _pack(detail)))
    gains = pair_gains(sums)
    for b0, b1, shape, packed in kept:
        part = apply_coarse_detail(lay.isel(y=slice(b0, b1)), _unpack(*packed, shape), gains)
        d_all[b0:b1] = part["dnbr"].values
        s_all[b0:b1] = part["severity"].values
    return lay


def _coarse_key(rows: xr.Dataset, looks_key: str, where: tuple[int, ...]) -> str:
    """Digest of what a band's coarse detail depends on (its rows with the halo: the confirmed
    detections' dates and the forest mask), the looks and thresholds, and the band's place."""
    h = hashlib.sha1(looks_key.encode())
    h.update(json.dumps(where).encode())
    h.update(np.ascontiguousarray(confirmed_first(rows)).view(np.int64).tobytes())
    h.update(np.ascontiguousarray(np.asarray(rows["forest"].values, bool)).tobytes())
    return h.hexdigest()


def _load_detail(url: str, store: CubeStore, key: str, shape: tuple[int, int, int]) -> np.ndarray | None:
    """A band's saved coarse detail (layers, y, x), if it was saved under ``key`` (None otherwise)."""
    fs, path = store._fs(url)
    if not fs.exists(path):
        return None
    with np.load(io.BytesIO(fs.cat_file(path))) as z:
        if bytes(z["key"]).decode() != key:
            return None
        return _unpack(z["at"], z["detail"], shape)


def _pack(detail: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A band's detail (layers, y, x) at its refined pixels only: their flat indices in the band's
    grid, and each layer's values there."""
    flat = detail.reshape(detail.shape[0], -1)
    at = np.flatnonzero(np.isfinite(flat).any(axis=0))
    return at, flat[:, at]


def _unpack(at: np.ndarray, values: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """:func:`_pack`'s inverse: NaN at the pixels it left out."""
    out = np.full((shape[0], shape[1] * shape[2]), np.nan)
    out[:, at] = values
    return out.reshape(shape)


def _save_detail(url: str, store: CubeStore, key: str, detail: np.ndarray) -> None:
    """The band's detail at its refined pixels (:func:`_pack`), replaced whole."""
    at, values = _pack(detail)
    buf = io.BytesIO()
    np.savez(buf, key=np.frombuffer(key.encode(), np.uint8), at=at, detail=values)
    _put_beside(store, url, buf.getvalue())


def _put_beside(store: CubeStore, url: str, data: bytes) -> None:
    """A file of the cube's state folder (``url``, beside the cube), replaced whole."""
    fs, path = store._fs(url)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    _atomic_put(url, data, store.storage_options)


def release_layers(lay: xr.Dataset) -> None:
    """Write the dirty pages of every variable of ``lay`` held in a memory-mapped scratch file (the
    layers of a landscape advanced in strips) back, and drop them from this process's resident set;
    a no-op for in-memory layers. Reading a layer maps its pages back in, so the flow calls this
    after each strip and each whole-landscape pass (annual layers, alerts)."""
    import mmap

    for v in lay.data_vars:
        m = _memmap_of(lay[v].data)
        if m is not None:
            m.flush()
            m._mmap.madvise(mmap.MADV_DONTNEED)


class PagedRows:
    """A read-only (y, x) array over a memory-mapped layer that hands the pages of the rows it has
    just read back to the system: the annual write and the alert masks read a big landscape's
    layers a band of rows at a time, so its resident set holds a band, not the landscape.
    ``da.from_array(PagedRows(a), chunks=(rows, -1))`` makes it a dask array."""

    def __init__(self, a: np.ndarray):
        if a.ndim != 2 or not a.flags.c_contiguous:
            raise ValueError(f"PagedRows needs a C-contiguous (y, x) array, got shape {a.shape}")
        self.a, self.shape, self.dtype, self.ndim = a, a.shape, a.dtype, 2
        self._mm = _memmap_of(a)

    def __getitem__(self, key) -> np.ndarray:
        out = np.array(self.a[key], copy=True)
        if self._mm is not None:
            rows = key[0] if isinstance(key, tuple) else key
            if isinstance(rows, slice):
                r0, r1, _ = rows.indices(self.shape[0])
                self.drop(r0, r1)
        return out

    def drop(self, r0: int, r1: int) -> None:
        """Drop the pages of rows ``r0:r1`` (whole pages inside them) from the resident set."""
        import mmap

        if self._mm is None or r1 <= r0:
            return
        row = self.a.strides[0]
        at = self.a.__array_interface__["data"][0] - self._mm.__array_interface__["data"][0]
        lo, hi = at + r0 * row, at + r1 * row
        lo = -(-lo // mmap.PAGESIZE) * mmap.PAGESIZE
        hi = hi // mmap.PAGESIZE * mmap.PAGESIZE
        if hi > lo:
            self._mm._mmap.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def trim_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim``): after the strips,
    thousands of freed chunk-sized buffers would otherwise stay in the process's resident set."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        pass


def _forest_mask(store: CubeStore, cube: xr.Dataset, year: int) -> xr.DataArray | None:
    """This year's forest baseline from the cube's annual layers, once a night of the year made it:
    it depends only on the baseline years, so later nights reuse it (it was ~70% of a night's work)."""
    try:
        ann = store.open(group="annual/forest")
    except Exception:  # no annual group yet
        return None
    if year not in set(int(y) for y in ann["year"].values):
        return None
    m = ann["forest_baseline"].sel(year=year, drop=True).load().astype(bool)
    return m.assign_coords(y=cube["y"], x=cube["x"])


def _annual(store: CubeStore, cube: xr.Dataset, group: str, year: int, layers: dict[str, xr.DataArray],
            only: dict[str, tuple[np.ndarray, Any]] | None = None) -> None:
    """Upsert this year's indicator layers into an annual group of the cube, cast to the group's
    on-disk types (:data:`outputs.cube.ANNUAL_GROUPS`). ``only``: layer -> (2-D bool mask, fill):
    the layer is written inside the mask and ``fill`` elsewhere (band by band for a big landscape)."""
    spec = ANNUAL_GROUPS[group]
    big = cube.sizes["y"] * cube.sizes["x"] > DASK_READ_PX
    out = {}
    for k, v in layers.items():
        v = v.drop_vars([c for c in v.coords if c not in ("y", "x")])
        if big and isinstance(v.data, np.ndarray):
            # A big landscape's layers (memory-mapped after the strips) are compared, staged and
            # written a band of rows at a time, each band's pages handed back once read: whole
            # in-memory arrays were concatenated, sorted and encoded whole, a copy each time (6 GB
            # at 10,000 x 10,000 px), and a band's mapped pages stayed resident until the end.
            v = v.copy(data=da.from_array(PagedRows(np.ascontiguousarray(v.data)), chunks=(ROW_BAND, -1),
                                          asarray=False, name=f"paged-{k}-{uuid.uuid4().hex}"))
        if only and k in only:
            keep, fill = only[k]
            if isinstance(v.data, da.Array):
                keep = da.from_array(keep, chunks=v.data.chunks, name=f"only-{k}-{uuid.uuid4().hex}")
            v = v.where(xr.DataArray(keep, dims=v.dims), fill)
        out[k] = v.astype(spec[k][0], copy=False).expand_dims(year=[year])
    ds = xr.Dataset(out).assign_coords(y=cube["y"], x=cube["x"]).rio.write_crs(cube.rio.crs)
    if not big:
        store.write_annual(ds, group=group)
        return
    # The chunks read the arrays in place, so they are computed in this process: a distributed
    # client would pickle the whole arrays into every graph it is sent.
    with dask.config.set(scheduler="threads"):
        store.write_annual(ds.chunk({"year": 1, "y": ROW_BAND, "x": -1}), group=group)


def carry_ids(cand: gpd.GeoDataFrame, existing: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Keep one alert per event across nights.

    A candidate whose id the store does not know, but which overlaps an active alert of the same
    kind, takes that alert's id: a probable patch that grew into a confirmed one, or whose anchor
    pixel moved, stays one alert (its first date, area and status are updated instead).
    """
    if not len(cand) or not len(existing):
        return cand
    active = existing[existing["status"] != "expired"]
    known = set(existing["alert_id"])
    used = set(cand["alert_id"]) & known
    ids = []
    for row in cand.itertuples(index=False):
        if row.alert_id in known:
            ids.append(row.alert_id)
            continue
        m = active[(active["kind"] == row.kind) & ~active["alert_id"].isin(used) & active.intersects(row.geometry)]
        if len(m):
            pick = m.sort_values(["first_detected", "alert_id"])["alert_id"].iloc[0]
            used.add(pick)
            ids.append(pick)
        else:
            ids.append(row.alert_id)
    out = cand.copy()
    out["alert_id"] = ids
    return out


def _probable_forest(lay: xr.Dataset, prob: np.ndarray, confirmed: gpd.GeoDataFrame, landscape_id: str,
                     mmu_ha: float) -> gpd.GeoDataFrame:
    """Probable forest-loss patches (``prob``: :func:`forest_burn_masks`' ``probable_loss``) not yet
    part of a confirmed one: the ``new`` alerts of the lifecycle."""
    g = vectorize_alerts(lay["forest_status"].copy(data=prob), kind="forest_loss", landscape_id=landscape_id,
                         min_area_ha=mmu_ha, first_detected=lay["forest_first"], status="probable")
    if len(g) and len(confirmed):
        g = g[~g["alert_id"].isin(confirmed["alert_id"])]
        g = g[~g.intersects(confirmed.geometry.union_all())]
    return g


def alert_masks(lay: xr.Dataset) -> dict[str, np.ndarray]:
    """:func:`processors.chain.forest_burn_masks` of the layers; for memory-mapped layers (a big
    landscape's) a band of rows at a time, each band's pages handed back once read, so that the
    resident set holds the boolean masks and one band, not every layer the masks are made from."""
    if _memmap_of(lay["forest_status"].data) is None:
        return forest_burn_masks(lay)
    paged = [PagedRows(lay[v].data) for v in lay.data_vars if _memmap_of(lay[v].data) is not None]
    out: dict[str, np.ndarray] = {}
    for rows in row_bands(lay.sizes["y"]):
        part = forest_burn_masks(lay.isel(y=rows))
        for k, m in part.items():
            out.setdefault(k, np.empty(lay["forest_status"].shape, bool))[rows] = m
        for p in paged:
            p.drop(rows.start, rows.stop)
    return out


def _empty() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"alert_id": [], "kind": [], "status": [], "first_detected": [], "area_ha": [],
                             "severity": []}, geometry=[], crs=4326)


# ------------------------------------------------------------------------------------------- stats
def landscape_stats(settings: Settings, land: Landscape, times: Sequence[str]) -> pd.DataFrame:
    """Per observation: clear fraction, mean NDVI of clear pixels, water hectares (clear scenes)."""
    store = CubeStore(cube_url(settings, land.id), storage_options=settings.storage_options)
    if not times or not store.exists():
        return pd.DataFrame(columns=["landscape_id", "time", "variable", "value", "unit"])
    cube = store.read()
    sel = cube[["clear", "ndvi", "water"]].sel(time=pd.DatetimeIndex(times).values)
    px = land.grid(settings.resolution).pixel_area_ha
    clear = sel["clear"].mean(("y", "x"))
    nd = sel["ndvi"].mean(("y", "x"))
    water = (sel["water"] == 1).sum(("y", "x")) * px
    observed = sel["water"].notnull().mean(("y", "x"))
    clear, nd, water, observed = dask.compute(clear, nd, water, observed)
    rows: list[dict[str, Any]] = []
    for k, t in enumerate(sel["time"].values):
        rows.append({"time": t, "variable": "clear_fraction", "value": float(clear[k]), "unit": "1"})
        if np.isfinite(nd[k]):
            rows.append({"time": t, "variable": "ndvi_mean", "value": float(nd[k]), "unit": "1"})
        if "wetland" in {e.value for e in land.ecosystems} and float(observed[k]) >= 0.95:
            rows.append({"time": t, "variable": "water_ha", "value": float(water[k]), "unit": "ha"})
    df = pd.DataFrame(rows)
    df.insert(0, "landscape_id", land.id)
    return df


def out_path(settings: Settings) -> Path:
    return Path(settings.out.removeprefix("file://"))
