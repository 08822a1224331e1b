"""Zarr cubes per landscape: ``cubes/<landscape_id>.zarr``, appended night by night, kill-safe.

Layout (Zarr format 2, written by zarr-python 3 through xarray; the README's "Cube layout" is the
public contract). Format 2 because GDAL 3.10, which QGIS and rasterio use, refuses Zarr v3's
``bytes`` codec but reads v2 cubes with their CRS and geotransform.


- root group, dims (time, y, x): ``ndvi``, ``nbr`` (float32, NaN where not clear), ``clear``
  (uint8 0/1), ``water`` (int8 0/1, -1 = not observed, decoded to NaN), per-slice provenance
  coordinates (``platform``, ``item_id``), the CF grid mapping ``spatial_ref``;
- groups ``annual/grassland`` (the trend: ``grass_slope``, ``grass_p_value``, ``grass_class``) and
  ``annual/forest`` (``forest_baseline``, ``forest_status``, ``burn_severity``, ``dnbr``; the nightly
  flow writes the last two inside the year's burn-scar alerts only), dims (year, y, x): the
  indicator layers of each year, replaced while the year runs.

Chunks are (time 8, y 256, x 256), 2 MiB of float32: a map of one date reads 8 slices too many,
a pixel's season (~60-100 slices) reads 8-13 chunks instead of one per slice, and a nightly
append rewrites at most 8 slices of each spatial chunk. Every chunk is Zstd-compressed with its
frame checksum on, so a flipped bit is an error, not a wrong value.

Commit protocol (plain Zarr, so GDAL and QGIS keep reading the cubes):

- the **consolidated metadata** in the group's ``.zmetadata`` is the committed record: it holds
  each array's committed shape, and readers (``xr.open_zarr``, consolidated by default) honour
  it. It is written last, as one atomic file replacement.
- an **append** (new slices all after the last committed one) writes only chunks beyond the
  committed shape, or rewrites the last partial chunk with its committed values unchanged, then
  commits. A kill before the commit leaves the committed view intact.
- an **insert** (a late scene, or a changed slice) rewrites the tail from the first changed slice.
  The new tail is first staged completely in a sibling store ``<cube>.zarr.txn``, then a journal
  ``<cube>.zarr.txn.json`` is written, then the tail is copied in and committed. A kill before the journal leaves
  the cube untouched; after it, the next writer replays the journal (redo) before anything else.
- a rerun with slices identical to the committed ones writes nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
import zarr
from numcodecs import Zstd

from aoi.errors import AmurwatchError

__all__ = ["CubeStore", "CubeError", "CubeGridError", "WriteReport", "open_cube", "CUBE_VARIABLES",
           "REFLECTANCE_VARIABLES", "ANNUAL_VARIABLES", "ANNUAL_GROUPS", "GRASSLAND_VARIABLES", "FOREST_VARIABLES",
           "CHUNKS", "TIME_UNITS"]

log = logging.getLogger(__name__)

#: storage chunks (see the module docstring for why)
#: cubes of more pixels than this are read through dask (:meth:`CubeStore.read`)
DASK_READ_PX = 4_000_000
CHUNKS = {"time": 8, "year": 1, "y": 256, "x": 256}
TIME_UNITS = "seconds since 1970-01-01"
ZARR_FORMAT = 2  #: GDAL 3.10 (QGIS, rasterio) rejects Zarr v3's "bytes" codec; it reads v2 with the CRS
_COMPRESSOR = Zstd(level=3, checksum=True)

#: name -> (on-disk dtype, fill value or None, attrs)
CUBE_VARIABLES: dict[str, tuple[str, Any, dict]] = {
    "ndvi": ("float32", float("nan"), {"long_name": "normalized difference vegetation index", "units": "1",
                                        "valid_min": -1.0, "valid_max": 1.0}),
    "nbr": ("float32", float("nan"), {"long_name": "normalized burn ratio (B8A/OLI B5, SWIR2)", "units": "1",
                                       "valid_min": -1.0, "valid_max": 1.0}),
    "clear": ("uint8", None, {"long_name": "clear-sky observation", "units": "1", "flag_values": [0, 1],
                              "flag_meanings": "not_clear clear"}),
    "water": ("int8", -1, {"long_name": "open water (MNDWI above the scene's Otsu threshold)", "units": "1",
                           "flag_values": [0, 1], "flag_meanings": "land water"}),
}
#: optional surface reflectance, stored as int16 x 1e-4 (CF scale_factor): what the indicators need
REFLECTANCE_SCALE = 1e-4
REFLECTANCE_VARIABLES: dict[str, tuple[str, Any, dict]] = {
    b: ("int16", -32768, {"long_name": f"{b} surface reflectance (clear sky)", "units": "1",
                          "scale_factor": REFLECTANCE_SCALE, "add_offset": 0.0})
    for b in ("blue", "green", "red", "nir", "nir08", "swir16", "swir22")}
GRASSLAND_VARIABLES: dict[str, tuple[str, Any, dict]] = {
    "grass_slope": ("float32", float("nan"), {"long_name": "Theil-Sen slope of growing-season NDVI",
                                               "units": "year-1"}),
    "grass_p_value": ("float32", float("nan"), {"long_name": "Mann-Kendall p-value of growing-season NDVI",
                                                 "units": "1"}),
    "grass_class": ("int8", -2, {"long_name": "grassland trajectory", "units": "1", "flag_values": [-1, 0, 1],
                                 "flag_meanings": "degrading stable improving"}),
}
FOREST_VARIABLES: dict[str, tuple[str, Any, dict]] = {
    "forest_baseline": ("uint8", None, {"long_name": "forest baseline mask", "units": "1",
                                        "flag_values": [0, 1], "flag_meanings": "not_forest forest"}),
    "forest_status": ("int8", None, {"long_name": "forest disturbance status", "units": "1",
                                     "flag_values": [0, 1, 2, 3], "flag_meanings": "none probable confirmed withdrawn"}),
    "burn_severity": ("int8", None, {"long_name": "burn severity class (Key & Benson)", "units": "1",
                                     "flag_values": [-1, 0, 1, 2, 3, 4],
                                     "flag_meanings": "not_burned unburned low moderate_low moderate_high high"}),
    "dnbr": ("float32", float("nan"), {"long_name": "dNBR at detection (burned pixels)", "units": "1"}),
}
#: annual layers, one group each, dims (year, y, x)
ANNUAL_GROUPS: dict[str, dict[str, tuple[str, Any, dict]]] = {
    "annual/grassland": GRASSLAND_VARIABLES,
    "annual/forest": FOREST_VARIABLES,
}
ANNUAL_VARIABLES = {**GRASSLAND_VARIABLES, **FOREST_VARIABLES}
_ANNUAL = "annual"


class CubeError(AmurwatchError):
    """A cube cannot be written or read as asked."""


class CubeGridError(CubeError):
    """New slices are not on the cube's grid."""


@dataclass
class WriteReport:
    """What one :meth:`CubeStore.write` did."""

    added: list[str] = field(default_factory=list)  #: new slice labels
    replaced: list[str] = field(default_factory=list)  #: slices that changed
    unchanged: int = 0  #: slices identical to the committed ones (not written)
    rewritten_from: int | None = None  #: first index rewritten (None: nothing written)
    repaired: list[str] = field(default_factory=list)  #: what recovery did first

    @property
    def wrote(self) -> bool:
        return self.rewritten_from is not None


def _store(url: str | Path, storage_options: Mapping | None = None, *, read_only: bool = False):
    s = str(url)
    if "://" in s and not s.startswith("file://"):
        return zarr.storage.FsspecStore.from_url(s, storage_options=dict(storage_options or {}), read_only=read_only)
    return zarr.storage.LocalStore(Path(s.removeprefix("file://")), read_only=read_only)


@contextlib.contextmanager
def _quiet():
    """Silence zarr's warning that consolidated metadata is not in the v3 spec (we write v2)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        yield


def open_cube(url: str | Path, *, group: str | None = None, storage_options: Mapping | None = None,
              chunks: Any = None) -> xr.Dataset:
    """Open a cube's committed state with xarray (CRS through ``rio.crs``).

    ``group="annual/forest"`` or ``"annual/grassland"`` opens the annual layers. Equivalent to
    ``xr.open_zarr(url, group=group, consolidated=True, decode_coords="all")``.
    """
    with _quiet():
        ds = xr.open_zarr(_store(url, storage_options, read_only=True), group=group, consolidated=True,
                          decode_coords="all", chunks=chunks)
    # variable-length strings come back as NumPy's StringDType: give callers plain str arrays
    fix = {c: (ds[c].dims, np.array([str(v) for v in ds[c].values], dtype=str)) for c in ds.coords
           if ds[c].ndim == 1 and ds[c].dtype.kind in "OT"}
    if fix:
        ds = ds.assign_coords(fix)
    if CubeStore(url, storage_options=storage_options).pending():
        log.warning("cube %s has an interrupted write; the next run repairs it", url)
    return ds


class CubeStore:
    """One landscape's cube. ``url`` is a local path or an fsspec URL (``s3://bucket/cubes/x.zarr``)."""

    def __init__(self, url: str | Path, *, storage_options: Mapping | None = None):
        self.url = str(url)
        self.storage_options = dict(storage_options or {})

    # ---------------------------------------------------------------------------------------- paths
    @property
    def _txn_url(self) -> str:
        return self.url.rstrip("/") + ".txn"

    def _fs(self, url: str):
        import fsspec

        fs, path = fsspec.core.url_to_fs(url, **self.storage_options)
        return fs, path

    def exists(self) -> bool:
        fs, path = self._fs(self.url)
        return fs.exists(f"{path}/.zmetadata")

    @property
    def _writing_url(self) -> str:
        """A marker beside the cube while a write changes its arrays (after the repair, until its
        commit): a kill in between can leave stray ``*.partial`` chunk files even when nothing else
        needs repairing (an append rewriting its last partial chunk, the committed values unchanged)."""
        return self.url.rstrip("/") + ".writing"

    @property
    def _journal_url(self) -> str:
        return self.url.rstrip("/") + ".txn.json"

    def pending(self) -> bool:
        """Whether an interrupted insert waits to be replayed."""
        fs, path = self._fs(self._journal_url)
        return fs.exists(path)

    # ----------------------------------------------------------------------------------------- read
    def open(self, *, group: str | None = None, chunks: Any = None) -> xr.Dataset:
        return open_cube(self.url, group=group, storage_options=self.storage_options, chunks=chunks)

    def read(self, *, group: str | None = None) -> xr.Dataset:
        """The cube, lazily: NumPy-backed for a small landscape (one read per variable, fastest),
        dask-backed on the stored chunks for one of more than :data:`DASK_READ_PX` pixels, so that
        a reduction over a big landscape never loads a whole variable."""
        ds = self.open(group=group)
        if ds.sizes.get("y", 0) * ds.sizes.get("x", 0) > DASK_READ_PX:
            ds = self.open(group=group, chunks={})
        return ds

    def coordinate(self, name: str) -> np.ndarray:
        """One committed 1-D coordinate (``item_id``, ``platform``...) without opening the cube with
        xarray: an empty array when there is no cube yet."""
        if not self.exists():
            return np.array([], dtype=object)
        with _quiet():
            g = zarr.open_group(_store(self.url, self.storage_options, read_only=True), mode="r",
                                use_consolidated=True, zarr_format=ZARR_FORMAT)
            return np.asarray(g[name][:])

    def times(self) -> pd.DatetimeIndex:
        """The committed time coordinate, decoded, without opening the cube with xarray (an open
        decodes every variable's metadata: ~35 ms on a small cube, and the nightly stats ask once
        a landscape-night)."""
        if not self.exists():
            return pd.DatetimeIndex([])
        with _quiet():
            g = zarr.open_group(_store(self.url, self.storage_options, read_only=True), mode="r",
                                use_consolidated=True, zarr_format=ZARR_FORMAT)
            a = g["time"]
            raw, attrs = np.asarray(a[:]), dict(a.attrs)
        if "units" not in attrs:
            return pd.DatetimeIndex(raw)
        from xarray.coding.times import decode_cf_datetime

        return pd.DatetimeIndex(decode_cf_datetime(raw, attrs["units"], attrs.get("calendar")))

    # ---------------------------------------------------------------------------------------- write
    def write(self, ds: xr.Dataset) -> WriteReport:
        """Upsert time slices of ``ds`` (time, y, x) with the variables of :data:`CUBE_VARIABLES`.

        Slices are keyed by time: a time already in the cube is replaced when its data differ and
        left alone when they don't; new times are inserted in order.
        """
        spec = dict(CUBE_VARIABLES)
        have = [b for b in REFLECTANCE_VARIABLES if b in ds]
        if self.exists():
            have = [b for b in REFLECTANCE_VARIABLES if b in self._committed_shapes()]
        spec.update({b: REFLECTANCE_VARIABLES[b] for b in have})
        return self._upsert(ds, dim="time", group=None, spec=spec)

    def write_annual(self, ds: xr.Dataset, *, group: str) -> WriteReport:
        """Upsert annual layers (year, y, x) into ``group``: ``annual/grassland`` or ``annual/forest``
        (:data:`ANNUAL_GROUPS` lists their variables)."""
        if group not in ANNUAL_GROUPS:
            raise CubeError(f"unknown annual group {group!r}; use one of {list(ANNUAL_GROUPS)}")
        if not self.exists():
            raise CubeError(f"no cube at {self.url} yet; write observations before annual layers")
        return self._upsert(ds, dim="year", group=group, spec=ANNUAL_GROUPS[group])

    def repair(self) -> list[str]:
        """Bring the store back to a committed state: replay a journalled insert, drop an unjournalled
        stage, shrink arrays grown by an uncommitted append, remove stray ``*.partial`` files."""
        done: list[str] = []
        wfs, wpath = self._fs(self._writing_url)
        if wfs.exists(wpath):
            wfs.rm(wpath)
            done.append("cleaned up after an interrupted write")
        tfs, tpath = self._fs(self._txn_url)
        jfs, jpath = self._fs(self._journal_url)
        if jfs.exists(jpath):
            j = json.loads(jfs.cat_file(jpath))
            staged = self._open_raw(self._txn_url, group=j.get("group"))
            self._apply(staged, start=j["start"], length=j["length"], dim=j["dim"], group=j.get("group"))
            self._commit()
            jfs.rm(jpath)
            done.append(f"replayed the journalled insert from {j['dim']} index {j['start']}")
        if tfs.exists(tpath):
            tfs.rm(tpath, recursive=True)
            if not done:
                done.append("dropped an uncommitted stage")
        fs, path = self._fs(self.url)
        if self.exists():
            done += self._shrink_to_committed()
            committed = self._committed_shapes()
            for grp in ANNUAL_GROUPS:
                if fs.exists(f"{path}/{grp}") and not any(k.startswith(f"{grp}/") for k in committed):
                    fs.rm(f"{path}/{grp}", recursive=True)  # its creation was never committed
                    done.append(f"removed the uncommitted group {grp}")
        elif fs.exists(path):
            fs.rm(path, recursive=True)  # a creation killed before its first commit: nothing to keep
            done.append("removed a cube whose creation was never committed")
        if done and ("://" not in self.url or self.url.startswith("file://")):
            # an interrupted write is the only source of stray *.partial files: scan only then
            partial = list(Path(self.url.removeprefix("file://")).rglob("*.partial"))
            for p in partial:
                p.unlink(missing_ok=True)
            if partial:
                done.append(f"removed {len(partial)} stray .partial files")
        for d in done:
            log.warning("cube %s: %s", self.url, d)
        return done

    # ------------------------------------------------------------------------------------ internals
    def _open_raw(self, url: str, *, group: str | None) -> xr.Dataset:
        with _quiet():
            return xr.open_zarr(_store(url, self.storage_options, read_only=True), group=group,
                                consolidated=False, decode_coords="all")

    def _group(self, mode: str = "r+") -> zarr.Group:
        with _quiet():
            return zarr.open_group(_store(self.url, self.storage_options), mode=mode, use_consolidated=False,
                                   zarr_format=ZARR_FORMAT)

    def _committed_shapes(self) -> dict[str, tuple[int, ...]]:
        fs, path = self._fs(self.url)
        meta = json.loads(fs.cat_file(f"{path}/.zmetadata"))["metadata"]
        return {k.removesuffix("/.zarray"): tuple(v["shape"]) for k, v in meta.items() if k.endswith(".zarray")}

    def _shrink_to_committed(self) -> list[str]:
        shapes = self._committed_shapes()
        g = self._group()
        out = []
        for name, shape in shapes.items():
            arr = g[name]
            if tuple(arr.shape) != shape:
                arr.resize(shape)
                out.append(f"shrank {name} from {arr.shape} back to its committed shape {shape}")
        return out

    def _commit(self) -> None:
        with _quiet():
            st = _store(self.url, self.storage_options)
            fs, path = self._fs(self.url)
            for grp in ANNUAL_GROUPS:
                if fs.exists(f"{path}/{grp}/.zgroup"):
                    zarr.consolidate_metadata(st, path=grp)
            zarr.consolidate_metadata(st)

    def _encode(self, ds: xr.Dataset, dim: str, spec: Mapping[str, tuple[str, Any, dict]]) -> tuple[xr.Dataset, dict]:
        missing = [v for v in spec if v not in ds]
        if missing:
            raise CubeError(f"the slices lack {missing}; a cube needs {list(spec)}")
        if ds.rio.crs is None:
            raise CubeError("the slices have no CRS; load them on the landscape's grid (rio.write_crs)")
        out = ds[list(spec)].transpose(dim, "y", "x")
        keep = [c for c in out.coords if c in (dim, "y", "x", "spatial_ref") or out[c].dims == (dim,)]
        out = out.drop_vars([c for c in out.coords if c not in keep])
        crs = ds.rio.crs
        out = out.rio.write_crs(crs)
        enc: dict[str, dict] = {}
        for name, (dtype, fill, attrs) in spec.items():
            v = out[name]
            if dtype.startswith("float"):
                v = v.astype(dtype)
            out[name] = v
            cf = {k: attrs[k] for k in ("scale_factor", "add_offset") if k in attrs}
            out[name].attrs = {**{k: a for k, a in attrs.items() if k not in cf}, "grid_mapping": "spatial_ref"}
            ch = tuple(min(CHUNKS[d], out.sizes[d]) if d != dim else CHUNKS[d] for d in (dim, "y", "x"))
            enc[name] = {"dtype": dtype, "chunks": ch, "compressors": [_COMPRESSOR], **cf}
            if fill is not None:
                enc[name]["_FillValue"] = fill
        for c in out.coords:
            if out[c].dims == (dim,) and c != dim:
                if out[c].dtype.kind in "OU":
                    out[c] = out[c].astype(str).astype(object)  # variable-length UTF-8 in Zarr v3
                enc[c] = {"chunks": (1024,)}
        out["x"].attrs = {"standard_name": "projection_x_coordinate", "long_name": "x (pixel centre)", "units": "m"}
        out["y"].attrs = {"standard_name": "projection_y_coordinate", "long_name": "y (pixel centre)", "units": "m"}
        if dim == "time":
            out = out.assign_coords(time=out.indexes["time"].floor("s"))  # the stored precision: seconds
            enc["time"] = {"units": TIME_UNITS, "calendar": "proleptic_gregorian", "dtype": "int64", "chunks": (1024,)}
            out["time"].attrs = {"standard_name": "time", "long_name": "observation (solar day)"}
        else:
            enc[dim] = {"chunks": (1024,)}
        return out, enc

    def _upsert(self, ds: xr.Dataset, *, dim: str, group: str | None, spec) -> WriteReport:
        new, enc = self._encode(ds, dim, spec)
        if new.sizes[dim] == 0:
            return WriteReport()
        if not new.indexes[dim].is_unique:
            raise CubeError(f"the slices repeat a {dim} label; group same-day scenes first (solar-day mosaics)")
        new = new.sortby(dim)
        report = WriteReport(repaired=self.repair())
        wfs, wpath = self._fs(self._writing_url)
        wfs.makedirs(wpath.rsplit("/", 1)[0], exist_ok=True)
        wfs.pipe_file(wpath, b"")
        try:
            return self._upsert_repaired(new, enc, report, dim=dim, group=group, spec=spec)
        finally:
            wfs.rm(wpath)  # (not reached on a kill: the next writer's repair finds it)

    def _upsert_repaired(self, new: xr.Dataset, enc: dict, report: WriteReport, *, dim: str, group: str | None,
                         spec) -> WriteReport:
        fs, path = self._fs(self.url)
        fresh = not self.exists() or (group is not None and not fs.exists(f"{path}/{group}/.zgroup"))
        if fresh:
            lazy = _row_bands(new) is not None
            with _quiet():
                # dask-backed slices: the arrays are created here, their values written band of rows by band
                new.to_zarr(_store(self.url, self.storage_options), group=group, mode="w-" if group is None else "a",
                            encoding=enc, consolidated=False, zarr_format=ZARR_FORMAT, compute=not lazy,
                            align_chunks=lazy)
            if lazy:
                self._write_rows(new.drop_vars([c for c in new.coords if dim not in new[c].dims]), group=group,
                                 region={dim: slice(0, new.sizes[dim])})
            self._commit()
            report.added = [_label(v) for v in new[dim].values]
            report.rewritten_from = 0
            return report

        old = self.open(group=group)
        try:
            xr.align(old[["y", "x"]].coords.to_dataset(), new[["y", "x"]].coords.to_dataset(), join="exact")
        except ValueError:
            raise CubeGridError(
                f"the slices' grid (x {float(new.x[0])}..{float(new.x[-1])}, y {float(new.y[0])}..{float(new.y[-1])}, "
                f"{new.sizes['y']}x{new.sizes['x']}) is not the cube's ({old.sizes['y']}x{old.sizes['x']}) at "
                f"{self.url}; load on the landscape's grid, or write to a new cube") from None
        if old.rio.crs != new.rio.crs:
            raise CubeGridError(f"the slices' CRS {new.rio.crs} is not the cube's {old.rio.crs} ({self.url})")
        old_idx = old.indexes[dim]
        keep = []
        for k, lab in enumerate(new[dim].values):
            if lab in old_idx:
                if _same(old.sel({dim: [lab]}), new.isel({dim: [k]}), spec):
                    report.unchanged += 1
                    continue
                report.replaced.append(_label(lab))
            else:
                report.added.append(_label(lab))
            keep.append(k)
        if not keep:
            return report
        new = new.isel({dim: keep})
        merged_idx = old_idx.union(new.indexes[dim])  # sorted
        start = int(merged_idx.get_loc(new[dim].values.min()))
        length = len(merged_idx)
        n_old = old.sizes[dim]
        if start == n_old:
            tail = new  # append: everything beyond the committed shape
        else:
            kept_old = old.isel({dim: slice(start, None)})
            kept_old = kept_old.drop_sel({dim: [v for v in new[dim].values if v in kept_old.indexes[dim]]})
            if kept_old.sizes[dim] == 0:  # only replaced labels from ``start`` on (concat of an empty
                tail = new                  # lazy side fails in dask's chunking: 10k annual layers)
            else:
                tail = xr.concat([kept_old[list(spec) + [c for c in new.coords if new[c].dims == (dim,) and c != dim]],
                                  new], dim=dim, coords="minimal", compat="override", join="override").sortby(dim)
            tail = tail.rio.write_crs(new.rio.crs)
            self._stage(tail, enc, start=start, length=length, dim=dim, group=group)
        self._apply(tail, start=start, length=length, dim=dim, group=group)
        self._commit()
        if start != n_old:
            jfs, jpath = self._fs(self._journal_url)
            jfs.rm(jpath)
            tfs, tpath = self._fs(self._txn_url)
            tfs.rm(tpath, recursive=True)
        report.rewritten_from = start
        return report

    def _write_rows(self, body: xr.Dataset, *, group: str | None, region: dict) -> None:
        """Region-write ``body`` (no coordinate outside the region's dim); dask-backed data one band of
        :data:`ROW_BAND` rows per compute, so that memory is bounded by a band of rows however the
        source's graph orders its reads (stackstac's does not order them block by block)."""
        bands = _row_bands(body)
        if bands is None:
            parts = [(body, region)]
        else:
            parts = []
            for k, rows in enumerate(bands):
                part = body.isel(y=rows)
                if k:  # the 1-D coordinates along the region's dim go with the first band
                    part = part.drop_vars([c for c in part.coords if "y" not in part[c].dims])
                parts.append((part, {**region, "y": rows, "x": slice(0, body.sizes["x"])}))
        for part, reg in parts:
            with _quiet():
                part.to_zarr(_store(self.url, self.storage_options), group=group, region=reg, consolidated=False,
                             mode="r+", align_chunks=True)

    def _stage(self, tail: xr.Dataset, enc: dict, *, start: int, length: int, dim: str, group: str | None) -> None:
        tfs, tpath = self._fs(self._txn_url)
        if tfs.exists(tpath):
            tfs.rm(tpath, recursive=True)
        staged = tail.copy()
        for v in staged.variables.values():
            v.encoding = {}
        with _quiet():
            staged.to_zarr(_store(self._txn_url, self.storage_options), group=group, mode="w-", consolidated=False,
                           zarr_format=ZARR_FORMAT,
                           encoding={k: {kk: vv for kk, vv in e.items() if kk != "chunks"} for k, e in enc.items()})
        journal = {"start": start, "length": length, "dim": dim, "group": group}
        _atomic_put(self._journal_url, json.dumps(journal).encode(), self.storage_options)  # the stage is complete

    def _apply(self, tail: xr.Dataset, *, start: int, length: int, dim: str, group: str | None) -> None:
        g = self._group()
        g = g[group] if group else g
        for name in g.array_keys():
            arr = g[name]
            dims = arr.attrs.get("_ARRAY_DIMENSIONS") or ()
            if dims and dims[0] == dim and arr.shape[0] != length:
                arr.resize((length,) + tuple(arr.shape[1:]))
        region_vars = [v for v in tail.data_vars] + [c for c in tail.coords if tail[c].dims == (dim,) and c != dim]
        body = tail[[v for v in tail.data_vars]].assign_coords(
            {c: tail[c] for c in region_vars if c not in tail.data_vars}).drop_vars(
            [c for c in tail.coords if dim not in tail[c].dims])
        self._write_rows(body, group=group, region={dim: slice(start, length)})
        # xarray never writes an index in a region write: encode the labels with the array's own units
        labels = tail[dim].values
        if dim == "time":
            units = g["time"].attrs.get("units", TIME_UNITS)
            cal = g["time"].attrs.get("calendar", "proleptic_gregorian")
            enc, _, _ = xr.coding.times.encode_cf_datetime(labels, units, cal, dtype=np.dtype(g["time"].dtype))
            g["time"][start:length] = np.asarray(enc)
        else:
            g[dim][start:length] = np.asarray(labels).astype(g[dim].dtype)


#: rows written per compute when slices are dask-backed (:meth:`CubeStore._write_rows`)
ROW_BAND = 1024


def row_bands(ny: int) -> list[slice]:
    """Bands of :data:`ROW_BAND` rows covering ``ny`` rows: one compute each on big lazy data
    (stackstac's graphs are not ordered block by block, so one compute over a whole scene holds
    every block of every band at once)."""
    return [slice(r, min(r + ROW_BAND, ny)) for r in range(0, ny, ROW_BAND)]


def _row_bands(ds: xr.Dataset) -> list[slice] | None:
    """Bands of rows to write ``ds`` in, or None when it is small or in memory (one write)."""
    lazy = any(v.chunks is not None for v in ds.data_vars.values())
    ny = ds.sizes.get("y", 0)
    return row_bands(ny) if lazy and ny > ROW_BAND else None


def _atomic_put(url: str, data: bytes, storage_options: Mapping) -> None:
    """Write a small file whole or not at all (an object PUT is atomic; a local file is renamed into place)."""
    if "://" not in url or url.startswith("file://"):
        path = Path(url.removeprefix("file://"))
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    else:
        import fsspec

        fs, p = fsspec.core.url_to_fs(url, **storage_options)
        fs.pipe_file(p, data)


def _label(v) -> str:
    if isinstance(v, np.datetime64):
        return str(np.datetime_as_string(v, unit="s"))
    return str(v)


def _same(old: xr.Dataset, new: xr.Dataset, spec) -> bool:
    """Whether ``new`` would store exactly what ``old`` holds (compared 1024 rows at a time, so a
    large landscape's slice is never held whole)."""
    ny = old.sizes.get("y", 1)
    for r in range(0, ny, 1024):
        rows = {"y": slice(r, r + 1024)} if "y" in old.dims else {}
        if not _same_values(old.isel(rows), new.isel(rows), spec):
            return False
    for c in new.coords:
        if c in old.coords and new[c].dims == old[c].dims and new[c].dims and c not in ("x", "y"):
            if [str(v) for v in np.asarray(old[c].values)] != [str(v) for v in np.asarray(new[c].values)]:
                return False
    return True


def _same_values(old: xr.Dataset, new: xr.Dataset, spec) -> bool:
    for name in spec:
        a = np.asarray(old[name].values)
        b = np.asarray(new[name].values)
        scale = spec[name][2].get("scale_factor")
        if scale:  # compare what would be stored
            a, b = (np.where(np.isnan(v), -32768, np.round(v.astype(np.float64) / scale)) for v in (a, b))
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            b = b.astype(np.float64)
            a = a.astype(np.float64)
            if name in CUBE_VARIABLES and CUBE_VARIABLES[name][0].startswith("float"):
                b = b.astype(np.float32).astype(np.float64)
        if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True):
            return False
    return True
