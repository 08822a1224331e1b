"""Factories of nightly cube slices and alert candidates, seeded, on a UTM grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401
import xarray as xr


def make_slices(times, *, shape=(40, 50), seed=0, epsg=32651, res=10.0, x0=450000.0, y0=5680000.0) -> xr.Dataset:
    """Cube slices (time, y, x): ndvi, nbr, clear, water, with provenance coordinates.

    The values of a slice depend only on its date and ``seed``, so the same night loaded twice
    gives the same slice.
    """
    t = pd.to_datetime(list(times))
    h, w = shape
    x = x0 + (np.arange(w) + 0.5) * res
    y = y0 - (np.arange(h) + 0.5) * res
    nd, nb, cl, wa = [], [], [], []
    for day in t:
        rng = np.random.default_rng([seed, int(day.strftime("%Y%m%d"))])
        clear = rng.random((h, w)) > 0.3
        v = rng.uniform(-0.2, 0.9, (h, w)).astype(np.float32)
        nd.append(np.where(clear, v, np.nan))
        nb.append(np.where(clear, v * 0.8, np.nan).astype(np.float32))
        cl.append(clear)
        wa.append(np.where(clear, (v < 0).astype(np.float32), np.nan))
    ds = xr.Dataset({"ndvi": (("time", "y", "x"), np.array(nd, np.float32)),
                     "nbr": (("time", "y", "x"), np.array(nb, np.float32)),
                     "clear": (("time", "y", "x"), np.array(cl)),
                     "water": (("time", "y", "x"), np.array(wa, np.float32))},
                    coords={"time": t, "y": y, "x": x,
                            "platform": ("time", ["sentinel-2a" if d.day % 2 else "landsat-9" for d in t]),
                            "item_id": ("time", [f"S2_{d:%Y%m%d}" for d in t])})
    return ds.rio.write_crs(epsg)


def make_alerts(rows, *, landscape_id="zhalong"):
    """Alert candidates in EPSG:4326 from (alert_id, kind, status, first_detected, area_ha, severity, lon, lat)."""
    import geopandas as gpd
    from shapely.geometry import box

    recs = []
    for aid, kind, status, first, area, sev, lon, lat in rows:
        d = (area * 1e4) ** 0.5 / 111_000  # a square of about the right size, in degrees
        recs.append({"alert_id": aid, "landscape_id": landscape_id, "kind": kind, "status": status,
                     "first_detected": pd.Timestamp(first).date(), "area_ha": area, "severity": sev,
                     "severity_ha": {sev: area} if sev else None, "centroid_lon": lon, "centroid_lat": lat,
                     "geometry": box(lon - d / 2, lat - d / 2, lon + d / 2, lat + d / 2)})
    cols = ["alert_id", "landscape_id", "kind", "status", "first_detected", "area_ha", "severity", "severity_ha",
            "centroid_lon", "centroid_lat", "geometry"]
    return gpd.GeoDataFrame(recs, columns=cols, geometry="geometry", crs=4326)
