"""Zonal statistics per landscape (and per ecosystem mask): the numbers of the stats table."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import xarray as xr

__all__ = ["zonal_stats"]


def zonal_stats(*, pixel_area_ha: float, ndvi: xr.DataArray | None = None, clear: xr.DataArray | None = None,
                water: xr.DataArray | None = None, layers_ha: Mapping[str, xr.DataArray] | None = None,
                zone: xr.DataArray | None = None) -> xr.Dataset:
    """Per-observation statistics over a zone (the whole landscape, or an ecosystem mask).

    Parameters
    ----------
    pixel_area_ha : float
        Area of one pixel (``grid.pixel_area_ha``).
    ndvi : DataArray (time, y, x), optional
        Gives ``mean_ndvi`` (of clear pixels, unit 1).
    clear : DataArray (time, y, x) bool, optional
        Gives ``percent_clear`` (%).
    water : DataArray (time, y, x), 1 water / 0 land / NaN, optional
        Gives ``water_ha``.
    layers_ha : mapping of name -> bool DataArray, optional
        Each gives ``<name>`` in ha (e.g. ``burned_ha``, ``forest_loss_ha``, ``degrading_ha``).
    zone : DataArray (y, x) bool, optional
        Restrict everything to these pixels.

    Returns
    -------
    Dataset of 1-D (time) or 0-D variables with ``units`` attributes, as the stats table expects.
    """
    z = zone if zone is not None else True
    out = {}
    if ndvi is not None:
        out["mean_ndvi"] = ndvi.where(z).mean(("y", "x"), skipna=True).astype(np.float32).assign_attrs(
            units="1", long_name="mean NDVI of clear pixels")
    if clear is not None:
        n = (xr.ones_like(clear.isel(time=0), dtype=np.float32).where(z)).sum(("y", "x")) if zone is not None \
            else clear.sizes["y"] * clear.sizes["x"]
        out["percent_clear"] = (clear.where(z, False).sum(("y", "x")) / n * 100).astype(np.float32).assign_attrs(
            units="%", long_name="share of the zone observed clear")
    if water is not None:
        out["water_ha"] = ((water == 1).where(z, False).sum(("y", "x")) * pixel_area_ha).astype(np.float32).assign_attrs(
            units="ha", long_name="open water")
    for name, m in (layers_ha or {}).items():
        out[name] = (m.where(z, False).astype(bool).sum(("y", "x")) * pixel_area_ha).astype(np.float32).assign_attrs(
            units="ha", long_name=name.replace("_ha", "").replace("_", " "))
    return xr.Dataset(out)
