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

__all__ = ["vectorize_alerts", "alert_id", "ALERT_COLUMNS"]

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
    m = _numpy(mask, "mask").astype(bool)
    crs = mask.rio.crs
    if crs is None or not crs.is_projected:
        raise ValueError(f"mask CRS {crs} is not a projected CRS in metres; load on the landscape's UTM grid")
    tr = mask.rio.transform()
    px_ha = abs(tr.a * tr.e) / 10_000.0
    structure = np.ones((3, 3)) if connectivity == 8 else None
    labels, n = ndimage.label(m, structure=structure)
    rows = []
    dates = _numpy(first_detected, "first_detected") if first_detected is not None else None
    sev = _numpy(severity, "severity") if severity is not None else None
    ys, xs = mask["y"].values, mask["x"].values
    if n:
        sizes = np.bincount(labels.ravel())
        boxes = ndimage.find_objects(labels)  # each patch is read within its bounding box only
        for lab in range(1, n + 1):
            npx = int(sizes[lab])
            area = npx * px_ha
            if area < min_area_ha:
                continue
            win = boxes[lab - 1]
            r0, c0 = win[0].start, win[1].start
            sub = labels[win] == lab
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
                row["severity_ha"] = {names.get(i, str(i)): round(float(c) * px_ha, 4) for i, c in enumerate(counts) if c}
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
