"""Alert candidates as polygons: vectorise a mask, measure it on the UTM grid, reproject to EPSG:4326.

This is the one place where pixels must be in memory: pass NumPy-backed arrays (compute the mask
first, in the flow). Nothing here computes a dask graph.
"""

from __future__ import annotations

import hashlib
from typing import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from affine import Affine
from rasterio.features import shapes
from scipy import ndimage
from shapely.geometry import shape

__all__ = ["vectorize_alerts", "alert_id", "ALERT_COLUMNS", "Patches", "BAND_ROWS"]

#: rows labelled at once: one band of int32 labels (40 MB at 10,000 columns) instead of the landscape's
BAND_ROWS = 1024

ALERT_COLUMNS = ["alert_id", "landscape_id", "kind", "status", "first_detected", "area_ha", "severity", "geometry"]


def alert_id(kind: str, landscape_id: str, first_detected: str, anchor_x: float, anchor_y: float) -> str:
    """A stable id: the same event seen again (a later night, a rerun) keeps it.

    It hashes the kind, the landscape, the first detection date and the anchor: the grid
    coordinates of the event's earliest, then north-west-most, pixel. Growth on later nights
    changes neither.
    """
    key = f"{kind}|{landscape_id}|{first_detected}|{anchor_x:.1f}|{anchor_y:.1f}"
    return f"{kind.split('_')[0][:4]}-{landscape_id}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def _numpy(a: xr.DataArray, what: str) -> np.ndarray:
    data = a.data
    if not isinstance(data, np.ndarray):
        raise TypeError(f"{what} is not in memory ({type(data).__name__}); compute it before vectorising "
                        "(processors never compute dask graphs themselves)")
    return data


class Patches:
    """Connected patches of a 2-D boolean mask, labelled in bands of rows and joined across band edges.

    The same partition as ``scipy.ndimage.label`` on the whole mask, without its int32 label image
    (400 MB for a landscape of 10,000 x 10,000 px): one band of labels is held at a time, and per
    patch only its size, bounding box, one of its pixels and the ``count`` sums.

    Parameters
    ----------
    mask : 2-D array-like of bool (NumPy, or a memory map); read one band of rows at a time.
    connectivity : 8 or 4.
    band_rows : rows per band (default :data:`BAND_ROWS`).
    count : name -> 2-D bool array-like of the mask's shape; the number of its pixels in each patch
        is in ``counts[name]``.

    Attributes
    ----------
    n : number of patches. Patch ``i`` (0-based) has ``sizes[i]`` pixels, rows
        ``[row0[i], row1[i])``, columns ``[col0[i], col1[i])`` and contains pixel ``(pix_r[i], pix_c[i])``.
    """

    def __init__(self, mask, *, connectivity: int = 8, band_rows: int | None = None,
                 count: Mapping[str, object] | None = None) -> None:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        if connectivity not in (4, 8):
            raise ValueError(f"connectivity={connectivity!r}: use 8 (diagonal neighbours join) or 4")
        self.mask, self.shape = mask, tuple(mask.shape)
        self.structure = np.ones((3, 3)) if connectivity == 8 else None
        self.band_rows = max(1, int(band_rows or BAND_ROWS))
        h, w = self.shape
        count = dict(count or {})
        offs, edges = [], []
        size, r0s, r1s, c0s, c1s, pr, pc = ([] for _ in range(7))
        csum: dict[str, list] = {k: [] for k in count}
        total, prev = 0, None
        for b0 in range(0, h, self.band_rows):
            lab, n = self._label(b0)
            offs.append(total)
            flat = np.flatnonzero(lab)
            ids = lab.ravel()[flat]
            order = np.argsort(ids, kind="stable")  # by label, then by pixel (row-major)
            starts = np.searchsorted(ids[order], np.arange(1, n + 1))
            rows, cols = np.divmod(flat[order], w)
            size.append(np.diff(np.append(starts, flat.size)))
            if n:
                r0s.append(np.minimum.reduceat(rows, starts) + b0)
                r1s.append(np.maximum.reduceat(rows, starts) + b0 + 1)
                c0s.append(np.minimum.reduceat(cols, starts))
                c1s.append(np.maximum.reduceat(cols, starts) + 1)
                pr.append(rows[starts] + b0)
                pc.append(cols[starts])
            for k, arr in count.items():
                sel = np.asarray(arr[b0:b0 + lab.shape[0]], dtype=bool)
                csum[k].append(np.bincount(lab[sel], minlength=n + 1)[1:])
            if prev is not None:  # join patches across the edge between this band and the one above
                top = np.where(lab[0] > 0, lab[0] + total, 0)
                shifts = (-1, 0, 1) if connectivity == 8 else (0,)
                for d in shifts:
                    a = prev[max(0, -d):w - max(0, d)]
                    b = top[max(0, d):w - max(0, -d)]
                    j = (a > 0) & (b > 0)
                    if j.any():
                        edges.append(np.stack([a[j], b[j]]))
            prev = np.where(lab[-1] > 0, lab[-1] + total, 0)
            total += n
        cat = (lambda parts, dt=np.int64: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt))
        node_size, node_r0, node_r1, node_c0, node_c1 = (cat(x) for x in (size, r0s, r1s, c0s, c1s))
        node_pr, node_pc = cat(pr), cat(pc)
        # global node ids are 1-based (0 is the background); the graph has total + 1 nodes
        e = np.concatenate(edges, axis=1) if edges else np.zeros((2, 0), np.int64)
        g = coo_matrix((np.ones(e.shape[1], np.int8), (e[0], e[1])), shape=(total + 1, total + 1))
        _, comp = connected_components(g, directed=False)
        comp = comp[1:]  # drop the background node
        # number the patches in order of their first node (band order, then label order): deterministic
        _, first, inv = np.unique(comp, return_index=True, return_inverse=True)
        rank = np.empty(first.size, np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(first.size)
        self.node_patch = rank[inv] if total else np.zeros(0, np.int64)
        self.n = int(first.size)
        self.sizes = np.bincount(self.node_patch, weights=node_size, minlength=self.n).astype(np.int64)
        self.row0 = self._reduce(np.minimum, node_r0, h)
        self.row1 = self._reduce(np.maximum, node_r1, 0)
        self.col0 = self._reduce(np.minimum, node_c0, w)
        self.col1 = self._reduce(np.maximum, node_c1, 0)
        head = np.empty(self.n, np.int64)
        head[rank] = first  # each patch's first node
        self.pix_r, self.pix_c = node_pr[head], node_pc[head]
        self.counts = {k: np.bincount(self.node_patch, weights=cat(v), minlength=self.n).astype(np.int64)
                       for k, v in csum.items()}
        self._offsets = offs

    def _label(self, b0: int) -> tuple[np.ndarray, int]:
        band = np.asarray(self.mask[b0:b0 + self.band_rows], dtype=bool)
        return ndimage.label(band, structure=self.structure)

    def _reduce(self, ufunc, values: np.ndarray, fill: int) -> np.ndarray:
        out = np.full(self.n, fill, np.int64)
        ufunc.at(out, self.node_patch, values)
        return out

    def box(self, i: int) -> tuple[slice, slice]:
        return slice(int(self.row0[i]), int(self.row1[i])), slice(int(self.col0[i]), int(self.col1[i]))

    def pixels(self, i: int) -> tuple[np.ndarray, tuple[slice, slice]]:
        """Patch ``i`` as a boolean array over its bounding box, and the box."""
        win = self.box(i)
        lab, _ = ndimage.label(np.asarray(self.mask[win], dtype=bool), structure=self.structure)
        return lab == lab[self.pix_r[i] - win[0].start, self.pix_c[i] - win[1].start], win

    def select(self, keep: np.ndarray) -> np.ndarray:
        """The mask of the patches where ``keep`` (bool per patch) is true, as a NumPy bool array."""
        keep = np.asarray(keep, dtype=bool)
        out = np.zeros(self.shape, bool)
        for k, b0 in enumerate(range(0, self.shape[0], self.band_rows)):
            lab, n = self._label(b0)
            lut = np.zeros(n + 1, bool)
            lut[1:] = keep[self.node_patch[self._offsets[k]:self._offsets[k] + n]]
            out[b0:b0 + lab.shape[0]] = lut[lab]
        return out


def vectorize_alerts(
    mask: xr.DataArray,
    *,
    kind: str,
    landscape_id: str,
    min_area_ha: float,
    first_detected: xr.DataArray | None = None,
    severity: xr.DataArray | None = None,
    severity_names: Mapping[int, str] | None = None,
    status: str = "new",
    connectivity: int = 8,
    band_rows: int | None = None,
) -> gpd.GeoDataFrame:
    """Polygons of the connected patches of ``mask`` of at least ``min_area_ha``.

    Parameters
    ----------
    mask : DataArray (y, x), bool, NumPy-backed, with a CRS (``rio.crs``) in metres.
    kind : str
        ``forest_loss``, ``burn_scar``, ``wetland_loss`` or ``grassland_degradation``.
    min_area_ha : float
        Minimum mapping unit.
    first_detected : DataArray (y, x) of datetime64, optional
        Per-pixel first detection; the patch's date is its earliest.
    severity : DataArray (y, x) of int classes, optional
        The patch gets its dominant class (``severity``) and its hectares per class
        (``severity_ha``, a dict).

    Returns
    -------
    GeoDataFrame in EPSG:4326 with the columns of :data:`ALERT_COLUMNS` (and ``severity_ha``,
    ``centroid_lon``, ``centroid_lat``, ``n_pixels``), one row per patch, sorted by ``alert_id``.
    """
    m = np.asarray(_numpy(mask, "mask"), dtype=bool)
    crs = mask.rio.crs
    if crs is None or not crs.is_projected:
        raise ValueError(f"mask CRS {crs} is not a projected CRS in metres; load on the landscape's UTM grid")
    tr = mask.rio.transform()
    px_ha = abs(tr.a * tr.e) / 10_000.0
    pat = Patches(m, connectivity=connectivity, band_rows=band_rows)
    rows = []
    dates = _numpy(first_detected, "first_detected") if first_detected is not None else None
    sev = _numpy(severity, "severity") if severity is not None else None
    ys, xs = mask["y"].values, mask["x"].values
    for i in np.nonzero(pat.sizes * px_ha >= min_area_ha)[0]:
        npx = int(pat.sizes[i])
        area = npx * px_ha
        sub, win = pat.pixels(i)  # each patch is read within its bounding box only
        r0, c0 = win[0].start, win[1].start
        rr, cc = np.nonzero(sub)
        rr, cc = rr + r0, cc + c0
        if dates is not None:
            d = dates[rr, cc]
            ok = ~np.isnat(d)
            dmin = d[ok].min() if ok.any() else np.datetime64("NaT")
            cand = np.nonzero(ok & (d == dmin))[0] if ok.any() else np.arange(rr.size)
        else:
            dmin = np.datetime64("NaT")
            cand = np.arange(rr.size)
        k = cand[np.lexsort((cc[cand], rr[cand]))[0]]
        day = str(np.datetime_as_string(dmin, unit="D")) if not np.isnat(dmin) else ""
        wtr = Affine(*tuple(tr)[:6]) @ Affine.translation(c0, r0)
        geoms = [shape(g) for g, v in shapes(sub.astype(np.uint8), mask=sub, transform=wtr,
                                               connectivity=connectivity) if v == 1]
        geom = geoms[0] if len(geoms) == 1 else gpd.GeoSeries(geoms).union_all()
        row = {"alert_id": alert_id(kind, landscape_id, day, float(xs[cc[k]]), float(ys[rr[k]])),
               "landscape_id": landscape_id, "kind": kind, "status": status,
               "first_detected": pd.Timestamp(dmin).date() if day else None,
               "area_ha": round(area, 4), "n_pixels": npx, "geometry": geom}
        if sev is not None:
            vals = sev[rr, cc]
            vals = vals[vals >= 0]
            counts = np.bincount(vals.astype(int)) if vals.size else np.array([])
            names = severity_names or {}
            row["severity_ha"] = {names.get(j, str(j)): round(float(c) * px_ha, 4) for j, c in enumerate(counts) if c}
            row["severity"] = names.get(int(np.argmax(counts)), str(int(np.argmax(counts)))) if counts.size else None
        else:
            row["severity_ha"] = None
            row["severity"] = None
        rows.append(row)
    gdf = gpd.GeoDataFrame(rows, columns=ALERT_COLUMNS + ["severity_ha", "n_pixels"], geometry="geometry", crs=crs)
    gdf = gdf.to_crs(4326)
    c = gdf.geometry.representative_point() if len(gdf) else gpd.GeoSeries([], crs=4326)
    gdf["centroid_lon"] = c.x.round(6) if len(gdf) else pd.Series(dtype=float)
    gdf["centroid_lat"] = c.y.round(6) if len(gdf) else pd.Series(dtype=float)
    return gdf.sort_values("alert_id").reset_index(drop=True)
