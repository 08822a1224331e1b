"""Search, load and summarise one landscape's season: the demo's first look at the data."""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import xarray as xr

from aoi import Landscape
from outputs.quicklook import quicklook_png
from sources.load import load_reflectance
from sources.search import search_items

__all__ = ["season_quicklook"]


def season_quicklook(url: str, landscape: Landscape, start: str, end: str, out_png: Path, *,
                     collections=("sentinel-2-c1-l2a", "landsat-c2-l2"), max_cloud: float = 80.0) -> dict:
    """Load a landscape's scenes over ``[start, end]`` through a STAC API; write a quick-look PNG.

    Returns a JSON-safe summary: scenes found, loaded, skipped, mean clear fraction, and the
    mean NDVI of the clearest July scene.
    """
    items = search_items(url, intersects=landscape.geometry, start=start, end=end,
                         collections=list(collections), max_cloud=max_cloud)
    ds, report = load_reflectance(items, landscape.grid(10), bands=["blue", "green", "red", "nir"])
    ndvi = (ds.nir - ds.red) / (ds.nir + ds.red)
    series = xr.Dataset({"ndvi": ndvi.mean(("y", "x")), "clear_fraction": ds.clear.mean(("y", "x"))})
    with dask.config.set(scheduler="threads"):
        series = series.compute()
    months = ds["time"].dt.month.values
    s2 = np.char.startswith(ds["platform"].values.astype(str), "sentinel")
    pick = np.where((months == 7) & s2)[0]
    pick = pick if pick.size else np.arange(ds.sizes["time"])
    best = int(pick[np.argmax(series["clear_fraction"].values[pick])])
    rgb = ds[["red", "green", "blue"]].isel(time=best).compute()
    quicklook_png(rgb, series.assign_coords(platform=ds["platform"]), title=f"{landscape.name}: {start} to {end}",
                  out=out_png)
    return {
        "landscape_id": landscape.id, "scenes_found": len(items), "scenes_loaded": len(report.loaded),
        "scenes_skipped": [f"{s.item_id}: {s.reason}" for s in report.skipped],
        "offset_corrections": report.offset_corrections,
        "mean_clear_fraction": round(float(series["clear_fraction"].mean()), 3),
        "quicklook_scene": str(ds["item_id"].values[best]),
        "quicklook_ndvi": round(float(series["ndvi"].values[best]), 3),
        "quicklook": str(out_png),
    }
