"""Load clear-sky surface reflectance onto a landscape's grid, lazily, with stackstac over item dicts.

The result is an ``xr.Dataset`` (time, y, x) with one float32 variable per canonical band, in
[0, 1], NaN where the pixel is not clear (cloud, shadow, cirrus, no data; snow too unless
``mask_snow=False``), plus boolean ``clear`` and ``snow`` layers and per-scene provenance
coordinates. Nothing is read until the caller computes, except the preflight below.

Preflight (eager, headers only, in threads):
- every asset that will be read is opened once: an unreadable or missing asset skips its scene and
  is reported, so a hole never silently turns into a clear-sky change;
- the file's grid is compared with the item's ``proj:*`` metadata: a mismatch is an error, unless
  ``use_file_grid=True`` (then the file's own grid is used);
- Sentinel-2 scenes get a sanity check on a decimated read: clear dark pixels far below zero mean
  the BOA offset was applied twice (a wrong catalog flag); the offset is then corrected and reported.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import os
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import dask.array as da
import numba
import numpy as np
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import stackstac
import xarray as xr
from rasterio.enums import Resampling

from aoi.grid import Grid

from .profiles import (
    DEFAULT_BANDS,
    HLS_MSI_TO_OLI,
    QA,
    SCL,
    SCL_NOT_CLEAR,
    CollectionProfile,
    MissingMetadataError,
    Scaling,
    SourceError,
    detect_profile,
    item_platform,
    normalize_item,
    resolve_scaling,
)
from ._reader import HANDLES, GridAlignedReader, is_local_href
from .search import parse_datetime, solar_date

__all__ = ["load_reflectance", "LoadReport", "SkippedScene", "AssetGridMismatchError", "gdal_env",
           "GDAL_HTTP_RETRIES", "GDAL_HTTP_RETRY_DELAY_S", "clear_sky_scl", "clear_sky_qa_pixel"]

log = logging.getLogger(__name__)

#: GDAL retries nothing by default (GDAL_HTTP_MAX_RETRY=0) and waits 30 s when it does.
GDAL_HTTP_RETRIES = 5
GDAL_HTTP_RETRY_DELAY_S = 0.5
#: GDAL's block cache, per process (GDAL's default: 5% of RAM). The loaders keep files open across
#: chunks and read each block once, so a small cache loses nothing and bounds memory on big
#: landscapes. Set GDAL_CACHEMAX in the environment to choose another size.
os.environ.setdefault("GDAL_CACHEMAX", "256")
#: read unsigned 16-bit digital numbers as such (not as float32) when every asset of a collection
#: holds them and no data is 0: half the bytes through the reads (tests switch it off to compare)
_INTEGER_READS = True
#: clear dark pixels below this reflectance mean the offset was subtracted twice
_DOUBLE_OFFSET_FLOOR = -0.04


class AssetGridMismatchError(SourceError, ValueError):
    """An asset's file grid disagrees with its STAC ``proj:*`` metadata."""


@dataclass(frozen=True)
class SkippedScene:
    item_id: str
    asset: str
    reason: str


@dataclass
class LoadReport:
    """What the loader did: scenes loaded, scenes skipped (with reasons), corrections made."""

    loaded: list[str] = field(default_factory=list)
    skipped: list[SkippedScene] = field(default_factory=list)
    offset_corrections: list[str] = field(default_factory=list)
    grid_overrides: list[str] = field(default_factory=list)

    def summary(self) -> str:
        s = f"{len(self.loaded)} scenes loaded, {len(self.skipped)} skipped"
        if self.skipped:
            s += ": " + "; ".join(f"{x.item_id} ({x.asset}: {x.reason})" for x in self.skipped)
        if self.offset_corrections:
            s += ". Offset corrected: " + "; ".join(self.offset_corrections)
        return s


#: build a GeoTIFF's CRS from its geokeys alone. GDAL's default also builds the EPSG database's
#: definition of the code in ProjectedCSTypeGeoKey and compares the two, on every open: about half
#: of the open of a small COG (0.85 vs 1.3-1.7 ms, 432 x 432 px, 2026-11-22), and every asset is
#: opened. The code itself is still read (``crs.to_epsg()`` is unchanged); files whose geokeys
#: contradict their EPSG code (old ESRI writers) are read as their geokeys say.
_GTIFF_SRS_SOURCE = "GEOKEYS"


def gdal_env(**extra: str) -> stackstac.rio_env.LayeredEnv:
    """stackstac's GDAL environment with HTTP retries turned on (GDAL retries nothing by default)."""
    always = {"GDAL_HTTP_MAX_RETRY": str(GDAL_HTTP_RETRIES), "GDAL_HTTP_RETRY_DELAY": str(GDAL_HTTP_RETRY_DELAY_S),
              "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GTIFF_SRS_SOURCE": _GTIFF_SRS_SOURCE, **extra}
    return stackstac.DEFAULT_GDAL_ENV.updated(always=always)


def _rio_env(**extra) -> rasterio.Env:
    return rasterio.Env(GDAL_HTTP_MAX_RETRY=GDAL_HTTP_RETRIES, GDAL_HTTP_RETRY_DELAY=GDAL_HTTP_RETRY_DELAY_S,
                        GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", GTIFF_SRS_SOURCE=_GTIFF_SRS_SOURCE, **extra)


# ----------------------------------------------------------------------------------------- masks
def clear_sky_scl(scl: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """(clear, snow) from Sentinel-2 SCL: not clear = 0, 1, 3, 8, 9, 10 (and NaN); snow = 11, its own flag."""
    valid = scl.notnull()
    snow = valid & (scl == SCL.SNOW)
    bad = scl.isin(sorted(SCL_NOT_CLEAR))
    return valid & ~bad & ~snow, snow


def _flags_np(mask: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """NumPy twin of :func:`clear_sky_scl` / :func:`clear_sky_qa_pixel`: (clear, snow)."""
    valid = np.isfinite(mask)
    if kind == "scl":
        # a lookup table on the class value: one pass instead of np.isin's sort and search
        m = np.where(valid & (mask >= 0) & (mask < 256), mask, 256).astype(np.uint16)
        clear = _SCL_CLEAR[m]
        clear &= valid
        snow = m == SCL.SNOW
        snow &= valid
        return clear, snow
    q = np.where(valid, mask, 1).astype(np.uint16)
    not_clear = (q & 0b11111) != 0
    snow = valid & (((q >> QA.SNOW) & 1) == 1) & ~not_clear
    return valid & ~not_clear & ~snow, snow


#: SCL value -> clear: not 0, 1, 3, 8, 9, 10 and not snow (11), as :func:`clear_sky_scl` (256: any other value)
_SCL_CLEAR = np.ones(257, bool)
_SCL_CLEAR[sorted(SCL_NOT_CLEAR) + [SCL.SNOW]] = False


def _reflectance_block(dn: np.ndarray, mask: np.ndarray, sc: np.ndarray, off: np.ndarray, nod: np.ndarray, *,
                       slope: np.ndarray, intercept: np.ndarray, mask_kind: str, mask_snow: bool) -> np.ndarray:
    """(t, band, y, x) digital numbers and (t, y, x) mask -> (t, band + 2, y, x): reflectance in [0, 1]
    (NaN where not clear or nodata), then the clear and snow flags as 0/1. Computed in place in the
    output block (this runs on every pixel of every scene)."""
    clear, snow = _flags_np(mask, mask_kind)
    keep = clear | snow if not mask_snow else clear
    t, nb, h, w = dn.shape
    out = np.empty((t, nb + 2, h, w), np.float32)
    r = out[:, :nb]
    np.multiply(dn, sc[:, :, None, None], out=r, casting="unsafe")
    r += off[:, :, None, None]
    np.copyto(r, np.float32(np.nan), where=dn == nod[:, :, None, None])  # NaN digital numbers stay NaN
    if (slope != 1).any() or (intercept != 0).any():
        r -= intercept[None, :, None, None]
        r /= slope[None, :, None, None]
    np.clip(r, 0.0, 1.0, out=r)
    complete = ~np.isnan(r).any(axis=1)  # every band has a value
    np.copyto(r, np.float32(np.nan), where=~keep[:, None])
    out[:, -2] = clear & complete
    out[:, -1] = snow
    return out


@numba.njit(nogil=True, cache=True)
def _reflectance_nb(dn, mask, sc, off, nod, slope, intercept, scl_lut, is_scl, mask_snow, out):  # pragma: no cover (JIT)
    t_n, nb, h, w = dn.shape
    harm = False
    for b in range(nb):
        if slope[b] != 1 or intercept[b] != 0:
            harm = True
    nan = np.float32(np.nan)
    lo, hi = np.float32(0), np.float32(1)
    for t in range(t_n):
        for y in range(h):
            for x in range(w):
                m = mask[t, y, x]
                if not np.isfinite(m):
                    clear = False
                    snow = False
                elif is_scl:
                    k = int(m) if (m >= 0 and m < 256) else 256
                    clear = scl_lut[k]
                    snow = k == 11
                else:
                    q = np.uint16(m)
                    not_clear = (q & 31) != 0
                    snow = ((q >> 5) & 1) == 1 and not not_clear
                    clear = not not_clear and not snow
                keep = clear or (snow and not mask_snow)
                complete = True
                for b in range(nb):
                    v = np.float32(dn[t, b, y, x])
                    if v == nod[t, b] or v != v:
                        complete = False
                        out[t, b, y, x] = nan
                        continue
                    r = v * sc[t, b] + off[t, b]
                    if harm:
                        r = (r - intercept[b]) / slope[b]
                    r = min(max(r, lo), hi)
                    out[t, b, y, x] = r if keep else nan
                out[t, nb, y, x] = 1 if (clear and complete) else 0
                out[t, nb + 1, y, x] = 1 if snow else 0


def _reflectance_fused(dn: np.ndarray, mask: np.ndarray, sc: np.ndarray, off: np.ndarray, nod: np.ndarray, *,
                       slope: np.ndarray, intercept: np.ndarray, mask_kind: str, mask_snow: bool) -> np.ndarray:
    """:func:`_reflectance_block` in one compiled pass over the pixels, without the GIL (the same
    output, bit for bit: float32 arithmetic in the same order)."""
    t, nb, h, w = dn.shape
    out = np.empty((t, nb + 2, h, w), np.float32)
    _reflectance_nb(dn, mask, sc.astype(np.float32), off.astype(np.float32), nod.astype(np.float32),
                    slope.astype(np.float32), intercept.astype(np.float32), _SCL_CLEAR, mask_kind == "scl",
                    bool(mask_snow), out)
    return out


def clear_sky_qa_pixel(qa: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """(clear, snow) from Landsat QA_PIXEL: bits 0-4 (fill, dilated cloud, cirrus, cloud, shadow) must
    all be 0; bit 5 is snow. The clear bit (6) alone is not trusted: shadow pixels keep it set."""
    valid = qa.notnull()
    q = qa.fillna(1).astype("uint16")
    not_clear = (q & 0b11111) != 0
    snow = valid & (((q >> QA.SNOW) & 1) == 1) & ~not_clear
    return valid & ~not_clear & ~snow, snow


# ----------------------------------------------------------------------------------------- preflight
@dataclass
class _Scene:
    item: dict
    profile: CollectionProfile
    scaling: dict[str, Scaling]
    time: dt.datetime
    solar: dt.date
    dtypes: dict[str, str] = field(default_factory=dict)  #: band -> the file's pixel type (from the preflight)

    @property
    def dn_dtype(self) -> str | None:
        """The one pixel type of the scene's reflectance assets, or None when they differ."""
        kinds = {v for b, v in self.dtypes.items() if b != "mask"}
        return kinds.pop() if len(kinds) == 1 else None


def _meta_grid(item: dict, asset: dict) -> tuple[int | None, list | None, list | None]:
    p = item.get("properties", {})
    epsg = asset.get("proj:epsg", p.get("proj:epsg"))
    shape = asset.get("proj:shape", p.get("proj:shape"))
    transform = asset.get("proj:transform", p.get("proj:transform"))
    return epsg, shape, transform


def _check_asset(scene: _Scene, band: str, use_file_grid: bool, report: LoadReport,
                 opened: list) -> SkippedScene | None:
    """None when the asset can be read as its item says (its open dataset appended to ``opened``,
    for the reader), else why its scene is skipped; a grid disagreement raises."""
    key = scene.profile.asset_for(band)
    asset = scene.item["assets"].get(key)
    iid = scene.item.get("id", "?")
    if asset is None or not asset.get("href"):
        raise MissingMetadataError(f"item {iid!r} ({scene.profile.name}) has no asset {key!r} for band {band!r}; "
                                   f"it has {sorted(scene.item.get('assets', {}))}")
    try:
        ds = rasterio.open(asset["href"], sharing=False)
    except Exception as exc:  # RasterioIOError, CPLE_*: unreadable, missing, corrupt
        return SkippedScene(iid, key, f"unreadable: {str(exc).splitlines()[0][:200]}")
    try:
        f_epsg = ds.crs.to_epsg() if ds.crs else None
        f_shape = [ds.height, ds.width]
        f_transform = list(ds.transform)[:6]
        f_dtype = np.dtype(ds.dtypes[0])
    except Exception as exc:
        ds.close()
        return SkippedScene(iid, key, f"unreadable: {str(exc).splitlines()[0][:200]}")
    opened.append((asset["href"], ds))
    scene.dtypes[band] = f_dtype.name
    # the wrong pixel type would be scaled as if it were the catalogue's digital numbers
    said = ((asset.get("raster:bands") or [{}])[0] or {}).get("data_type")
    sc = scene.scaling.get(band)
    if said and np.dtype(said) != f_dtype:
        return SkippedScene(iid, key, f"the file holds {f_dtype} pixels but raster:bands says {said}: the scale "
                                      "and offset would give wrong reflectance. Fix: correct the file or the catalogue")
    if not said and f_dtype.kind == "f" and sc is not None and sc.scale != 1:
        return SkippedScene(iid, key, f"the file holds {f_dtype} pixels where digital numbers (integers, scale "
                                      f"{sc.scale}) are expected. Fix: correct the file or the catalogue")
    epsg, shape, transform = _meta_grid(scene.item, asset)
    missing = [n for n, v in (("proj:epsg", epsg), ("proj:shape", shape), ("proj:transform", transform)) if v is None]
    differs = []
    if not missing:
        if int(epsg) != f_epsg:
            differs.append(f"proj:epsg {epsg} vs file EPSG:{f_epsg}")
        if list(shape) != f_shape:
            differs.append(f"proj:shape {list(shape)} vs file {f_shape}")
        if not np.allclose(np.asarray(transform, float), np.asarray(f_transform, float), atol=1e-6):
            differs.append(f"proj:transform {list(transform)} vs file {f_transform}")
    if missing or differs:
        if not use_file_grid:
            what = f"lacks {', '.join(missing)}" if missing else "disagrees with its file: " + "; ".join(differs)
            cls = MissingMetadataError if missing else AssetGridMismatchError
            raise cls(f"item {iid!r} asset {key!r} {what}. Fix: correct the catalog, or pass use_file_grid=True "
                      "to read each asset on the grid stored in its file")
        asset["proj:epsg"], asset["proj:shape"], asset["proj:transform"] = f_epsg, f_shape, f_transform
        report.grid_overrides.append(f"{iid}/{key}")
    return None


def _offset_check(scene: _Scene) -> str | None:
    """Detect a Sentinel-2 offset applied twice (or missing) from a decimated read; fix the scaling."""
    prof = scene.profile
    probe = "swir22" if "swir22" in prof.bands else "red"  # probed even when the caller did not ask for it
    s = scene.scaling.get(probe) or resolve_scaling(prof, scene.item, probe)
    try:
        with _rio_env():
            with rasterio.open(scene.item["assets"][prof.asset_for(probe)]["href"]) as ds:
                # decimated (COG overviews serve it cheaply), but never coarser than 256 px a side
                shape = (min(ds.height, max(256, ds.height // 8)), min(ds.width, max(256, ds.width // 8)))
                dn = ds.read(1, out_shape=shape, resampling=Resampling.nearest).astype(np.float64)
            with rasterio.open(scene.item["assets"][prof.mask_asset]["href"]) as ds:
                scl = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
    except Exception:
        return None  # unreadable scenes are reported by the asset check
    clear = (dn != s.nodata) & np.isin(scl, [SCL.VEGETATION, SCL.NOT_VEGETATED, SCL.WATER, SCL.DARK_AREA])
    if clear.sum() < 50:
        return None
    refl = dn[clear] * s.scale + s.offset
    iid = scene.item.get("id")
    if s.offset < 0 and np.percentile(refl, 2) < _DOUBLE_OFFSET_FLOOR:
        for b, sc in scene.scaling.items():
            scene.scaling[b] = Scaling(sc.scale, 0.0, sc.nodata, sc.reason + "; corrected: offset was applied twice")
        return (f"{iid}: BOA offset applied twice (2% of clear {probe} pixels read below {_DOUBLE_OFFSET_FLOOR} "
                f"with offset {s.offset:g}); offset removed")
    water = (dn != s.nodata) & (scl == SCL.WATER)
    if s.offset == 0 and water.sum() >= 50 and probe == "swir22" and np.median(dn[water]) * s.scale > 0.09:
        off = -1000 * s.scale
        for b, sc in scene.scaling.items():
            scene.scaling[b] = Scaling(sc.scale, off, sc.nodata, sc.reason + "; corrected: the DN carry the +1000 offset")
        return (f"{iid}: the DN carry the +1000 BOA offset although the item says it was removed (clear water "
                f"reads {np.median(dn[water]) * s.scale:.3f} in SWIR 2.2); offset {off:g} applied")
    return None


_EXECUTORS: dict[tuple[int, int], cf.ThreadPoolExecutor] = {}
_EXECUTORS_LOCK = threading.Lock()


_THREAD_ENV = threading.local()


def _thread_gdal_env() -> None:
    """Give a preflight thread a GDAL environment for its whole life. Each outermost ``rasterio.Env``
    looks up GDAL's and PROJ's data folders on the disk as it starts and tears them down as it ends
    (a fifth of a small load's time); nested ones only set their options."""
    env = rasterio.Env()
    env.__enter__()
    _THREAD_ENV.env = env  # kept (and never exited) while the thread lives


def _executor(n: int) -> cf.ThreadPoolExecutor:
    """The preflight's threads, kept across loads (starting 8 threads cost ~70 ms a load)."""
    key = (os.getpid(), n)  # a forked child has none of its parent's threads
    with _EXECUTORS_LOCK:
        ex = _EXECUTORS.get(key)
        if ex is None:
            ex = _EXECUTORS[key] = cf.ThreadPoolExecutor(max_workers=n, thread_name_prefix="amurwatch-preflight",
                                                         initializer=_thread_gdal_env)
        return ex


def _prepare(items: Sequence[Mapping[str, Any]], bands: Sequence[str]) -> list[_Scene]:
    scenes = []
    for raw in items:
        it = normalize_item(raw)
        prof = detect_profile(it)
        avail = [b for b in bands if b in prof.bands]
        scaling = {b: resolve_scaling(prof, it, b) for b in avail}
        t = parse_datetime(it["properties"].get("datetime") or it["properties"]["start_datetime"])
        scenes.append(_Scene(it, prof, scaling, t, solar_date(it)))
    return scenes


# ----------------------------------------------------------------------------------------- load
def load_reflectance(
    items: Sequence[Mapping[str, Any]],
    grid: Grid,
    *,
    bands: Sequence[str] = DEFAULT_BANDS,
    harmonize: bool = False,
    mask_snow: bool = True,
    use_file_grid: bool = False,
    check_offset: bool = True,
    resampling: str = "nearest",
    chunksize: int = 1024,
    preflight_threads: int = 8,
) -> tuple[xr.Dataset, LoadReport]:
    """Clear-sky surface reflectance of ``items`` on ``grid``, lazily.

    Parameters
    ----------
    items
        STAC item dicts (any supported provider, mixed missions and CRSs allowed).
    grid
        Target grid (``landscape.grid(10)`` or ``grid(20)``). Sentinel-2 20 m bands and Landsat 30 m
        are resampled bilinearly onto it; mask bands with nearest neighbour.
    bands
        Canonical bands: ``blue, green, red, nir, swir16, swir22`` (and ``nir08``, Sentinel-2 only).
    harmonize
        Bring Landsat OLI onto the Sentinel-2 MSI scale with the HLS bandpass adjustment
        (Claverie et al. 2018): ``MSI = (OLI - offset) / slope``.
    mask_snow
        Also set snow pixels to NaN (they stay flagged in ``snow`` either way).
    use_file_grid
        Read each asset on the grid stored in its file when the STAC metadata disagree or are missing.
    check_offset
        Run the Sentinel-2 double-offset sanity check.
    resampling
        ``nearest`` (default, as in stackstac and odc-stac: no mixing of cloud edges into clear
        pixels, and 20 m bands keep their own values) or ``bilinear`` for reflectance bands that need
        resampling. Mask bands always use nearest. Assets already on the grid are never warped.
    chunksize
        Spatial chunk size in pixels (per time step and band).
    preflight_threads
        Threads that open the assets' headers before anything is read, when the hrefs are remote
        (the opens wait on the network). Local files are opened on one thread: a local open is
        mostly Python work under the GIL, and more threads only contend. The Sentinel-2 offset
        check reads decimated pixels on at most 2 threads for local files.

    Returns
    -------
    (dataset, report)
        ``dataset``: variables ``<band>`` (float32, unit 1), ``clear`` and ``snow`` (bool), dims
        (time, y, x), CRS as the CF grid mapping ``spatial_ref``; coordinates along time:
        ``platform``, ``item_id``, ``collection``, ``processing_baseline``, ``cloud_cover``,
        ``offset``, ``solar_date``. ``report``: loaded and skipped scenes and corrections.
    """
    bands = list(dict.fromkeys(bands))
    report = LoadReport()
    scenes = _prepare(items, bands)
    if not scenes:
        raise SourceError("no items to load; widen the time window or check the search (0 items found)")

    # preflight: every asset header, in threads
    def check(scene: _Scene) -> SkippedScene | None:
        opened: list = []  # handed to the readers when the whole scene passes (one open per asset)
        passed = False
        try:
            with _rio_env():  # one GDAL environment per scene, not per asset
                for b in list(scene.scaling) + ["mask"]:
                    r = _check_asset(scene, b, use_file_grid, report, opened)
                    if r is not None:
                        return r
            passed = True
            return None
        finally:
            for href, ds in opened:
                if passed:
                    HANDLES.give(href, ds)
                else:
                    ds.close()

    # Opening a local file is CPU work that mostly holds the GIL (rasterio's environment and path
    # handling): one thread, since a second one only trades the GIL back and forth (60 scenes, 420
    # opens, 2 cores, 2026-11-22: whole load 0.95 s on one thread, 1.21 s on two). Remote opens wait
    # on the network: use them all. The offset check decodes pixels (GIL released): up to 2 locally.
    remote = not all(is_local_href(str(a.get("href", ""))) for s in scenes for a in s.item["assets"].values())
    results = list(_executor(preflight_threads if remote else 1).map(check, scenes))
    good = []
    for sc, r in zip(scenes, results):
        if r is None:
            good.append(sc)
        else:
            report.skipped.append(r)
            log.warning("skipping scene %s: %s %s", r.item_id, r.asset, r.reason)
    if check_offset:
        s2 = [s for s in good if s.profile.mission == "sentinel-2"]
        threads = preflight_threads if remote else max(1, min(preflight_threads, os.cpu_count() or 1, 2))
        for msg in _executor(threads).map(_offset_check, s2):
            if msg:
                report.offset_corrections.append(msg)
                log.warning("offset correction: %s", msg)
    if not good:
        raise SourceError(f"every scene failed to load: {report.summary()}")
    report.loaded = [s.item.get("id", "?") for s in good]
    good.sort(key=lambda s: s.time)  # stacked in time order: no sortby (a take on every variable) afterwards

    parts = []
    by_profile: dict[str, list[_Scene]] = {}
    for s in good:
        by_profile.setdefault(s.profile.name, []).append(s)
    for pname, group in by_profile.items():
        parts.append(_stack_profile(group, grid, bands, harmonize, mask_snow, chunksize, Resampling[resampling]))
    ds = xr.concat(parts, dim="time", join="outer", coords="different", compat="equals") if len(parts) > 1 else parts[0]
    if not ds.indexes["time"].is_monotonic_increasing:
        ds = ds.sortby("time")  # a take on every variable, even when nothing moves
    ds = _mosaic_solar_days(ds)
    for b in bands:
        if b not in ds:
            ds[b] = xr.full_like(ds["clear"], np.nan, dtype=np.float32)
        ds[b].attrs = {"long_name": f"{b} surface reflectance", "units": "1", "_FillValue": np.float32(np.nan)}
        ds[b].encoding = {}
    ds["clear"].attrs = {"long_name": "clear-sky observation (not cloud, shadow, cirrus, no data or snow)", "units": "1"}
    ds["snow"].attrs = {"long_name": "snow or ice", "units": "1"}
    ds = ds[bands + ["clear", "snow"]]
    ds = ds.rio.write_crs(grid.epsg)
    ds.attrs = {"title": "clear-sky surface reflectance", "grid_epsg": grid.epsg, "grid_resolution": grid.resolution,
                "grid_bounds": list(grid.bounds), "harmonized": int(harmonize), "Conventions": "CF-1.8"}
    return ds, report


def _stack_profile(group: list[_Scene], grid: Grid, bands, harmonize, mask_snow, chunksize,
                   resampling: Resampling) -> xr.Dataset:
    prof = group[0].profile
    avail = [b for b in bands if b in prof.bands]
    dicts = [s.item for s in group]
    # several scenes per task when scenes are small: dask costs ~1 ms a task, a 400 px read less than that
    time_chunk = max(1, min(len(group), (1024 * 1024) // max(1, grid.width * grid.height)))
    # digital numbers stay integers through the reads when they can (half the bytes of float32 to
    # copy and stack); the fill value is then the no-data value itself
    int_dn = (_INTEGER_READS and all(s.dn_dtype == "uint16" for s in group)
              and all(s.scaling[b].nodata == 0 for s in group for b in avail))
    dn_type, dn_fill = ("uint16", np.uint16(0)) if int_dn else ("float32", np.float32(np.nan))
    common = dict(epsg=grid.epsg, resolution=grid.resolution, bounds=grid.bounds, snap_bounds=False,
                  dtype=dn_type, fill_value=dn_fill, rescale=False,
                  chunksize=(time_chunk, 1, chunksize, chunksize),
                  gdal_env=gdal_env(), errors_as_nodata=(), sortby_date=False, properties=False, band_coords=False,
                  xy_coords="center", reader=GridAlignedReader)
    # Bands whose every asset already sits on the target grid (same CRS, pixel size, whole-pixel offset) are read
    # with nearest even when bilinear is asked for: there the two are identical, and nearest skips the warp.
    aligned = [b for b in avail if resampling == Resampling.nearest
               or all(_on_grid(s.item, prof.asset_for(b), grid) for s in group)]
    stacks = []
    for sel, rs in ((aligned, Resampling.nearest), ([b for b in avail if b not in aligned], resampling)):
        if sel:
            # all the bands of a scene in one chunk: one task reads them, and no rechunk copies them together
            kw = {**common, "chunksize": (time_chunk, len(sel), chunksize, chunksize)}
            stacks.append(stackstac.stack(dicts, assets=[prof.asset_for(b) for b in sel], resampling=rs, **kw)
                          .assign_coords(band=sel))
    dn = xr.concat(stacks, dim="band") if len(stacks) > 1 else stacks[0]
    mcommon = dict(common)
    if int_dn:  # out of the footprint: SCL 0 (no data), QA_PIXEL bit 0 (fill)
        mcommon.update(dtype="uint16", fill_value=np.uint16(0 if prof.mask_kind == "scl" else 1))
    mask = stackstac.stack(dicts, assets=[prof.mask_asset], resampling=Resampling.nearest, **mcommon).isel(band=0, drop=True)
    times = np.array([s.time.astimezone(dt.timezone.utc).replace(tzinfo=None) for s in group], dtype="datetime64[ns]")
    dn = dn.assign_coords(time=times)
    mask = mask.assign_coords(time=times)
    nb = len(avail)
    sc = np.array([[s.scaling[b].scale for b in avail] for s in group], np.float32)
    off = np.array([[s.scaling[b].offset for b in avail] for s in group], np.float32)
    nod = np.array([[s.scaling[b].nodata for b in avail] for s in group], np.float32)
    slope, intercept = np.ones(nb, np.float32), np.zeros(nb, np.float32)
    if harmonize and prof.mission == "landsat":
        for k, b in enumerate(avail):
            slope[k], intercept[k] = HLS_MSI_TO_OLI["nir08" if b == "nir" else b]
    # one blockwise kernel for every band, the mask and the clear/snow flags: a handful of graph layers
    # instead of ~10 xarray operations per band (graph building dominated small loads)
    d = dn.data.rechunk({1: -1})
    m = mask.data.rechunk(tuple(d.chunks[i] for i in (0, 2, 3)))
    tch = (d.chunks[0], (nb,))
    arr = da.blockwise(
        _reflectance_fused, "tbyx", d, "tbyx", m, "tyx",
        da.from_array(sc, chunks=tch), "tb", da.from_array(off, chunks=tch), "tb", da.from_array(nod, chunks=tch), "tb",
        dtype=np.float32, adjust_chunks={"b": nb + 2}, concatenate=True,
        slope=slope, intercept=intercept, mask_kind=prof.mask_kind, mask_snow=mask_snow,
        meta=np.empty((0, 0, 0, 0), np.float32))
    stack = xr.DataArray(arr, dims=("time", "band", "y", "x"),
                         coords={"time": dn["time"], "y": dn["y"], "x": dn["x"]})
    out = {b: stack.isel(band=k, drop=True) for k, b in enumerate(avail)}
    clear = stack.isel(band=nb, drop=True) > 0
    snow = stack.isel(band=nb + 1, drop=True) > 0
    ds = xr.Dataset(out)
    ds["clear"] = clear
    ds["snow"] = snow
    for c in [c for c in ds.coords if c not in ("time", "x", "y")]:
        ds = ds.drop_vars(c)
    first = avail[0]
    ds = ds.assign_coords(
        platform=("time", np.array([item_platform(s.item) for s in group], dtype=str)),
        item_id=("time", np.array([s.item.get("id", "") for s in group], dtype=str)),
        collection=("time", np.array([s.profile.name for s in group], dtype=str)),
        processing_baseline=("time", np.array([str(s.item["properties"].get(s.profile.baseline_property, "") or "")
                                               if s.profile.baseline_property else "" for s in group], dtype=str)),
        cloud_cover=("time", np.array([float(s.item["properties"].get("eo:cloud_cover", np.nan)) for s in group], np.float32)),
        offset=("time", np.array([s.scaling[first].offset for s in group], np.float32)),
        solar_date=("time", np.array([s.solar.isoformat() for s in group], dtype=str)),
    )
    return ds


def _on_grid(item: dict, key: str, grid: Grid) -> bool:
    a = item["assets"][key]
    epsg, _, t = _meta_grid(item, a)
    if epsg is None or t is None or int(epsg) != grid.epsg:
        return False
    res = grid.resolution
    if abs(t[0] - res) > 1e-9 or abs(-t[4] - res) > 1e-9 or t[1] or t[3]:
        return False
    dx, dy = (t[2] - grid.bounds[0]) / res, (t[5] - grid.bounds[3]) / res
    return abs(dx - round(dx)) < 1e-6 and abs(dy - round(dy)) < 1e-6


def _mosaic_solar_days(ds: xr.Dataset) -> xr.Dataset:
    """Merge same-day tiles of one platform (same solar date) into one observation: first valid pixel wins."""
    keys = [f"{p}|{d}" for p, d in zip(ds["platform"].values, ds["solar_date"].values)]
    if len(set(keys)) == len(keys):
        return ds
    order: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        order.setdefault(k, []).append(i)
    parts = []
    for k, idx in order.items():
        if len(idx) == 1:
            parts.append(ds.isel(time=idx))
            continue
        sub = ds.isel(time=idx)
        merged = sub.isel(time=0)
        for j in range(1, len(idx)):
            nxt = sub.isel(time=j)
            merged = xr.Dataset({v: (merged[v] | nxt[v]) if merged[v].dtype == bool else merged[v].fillna(nxt[v])
                                 for v in merged.data_vars}, coords=merged.coords)
        merged = merged.expand_dims("time")
        merged = merged.assign_coords(
            time=[sub["time"].values[0]],
            item_id=("time", ["+".join(sub["item_id"].values.tolist())]),
            cloud_cover=("time", [np.float32(np.nanmean(sub["cloud_cover"].values))]),
            platform=("time", [sub["platform"].values[0]]), collection=("time", [sub["collection"].values[0]]),
            processing_baseline=("time", [sub["processing_baseline"].values[0]]),
            offset=("time", [sub["offset"].values[0]]), solar_date=("time", [sub["solar_date"].values[0]]))
        parts.append(merged)
    return xr.concat(parts, dim="time").sortby("time")
