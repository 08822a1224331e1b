from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from processors.zonal import zonal_stats

from .conftest import CountTasks, make_cube


def test_zonal_stats_analytic(backend):
    cube = make_cube(backend=backend, shape=(10, 10))
    nd = xr.full_like(cube["red"], 0.5)
    nd = nd.where(nd.x < nd.x[5])  # half the pixels cloudy
    clear = nd.notnull()
    water = xr.full_like(cube["red"], 0.0).where(clear)
    water = xr.where(water.y > water.y[3], 1.0, water).where(clear)
    burned = xr.zeros_like(cube["red"].isel(time=0, drop=True), dtype=bool)
    burned[:2, :] = True
    zone = xr.ones_like(burned, dtype=bool)
    zone[:, 8:] = False
    with CountTasks() as c:
        s = zonal_stats(pixel_area_ha=0.01, ndvi=nd, clear=clear, water=water, layers_ha={"burned_ha": burned})
        sz = zonal_stats(pixel_area_ha=0.01, clear=clear, layers_ha={"burned_ha": burned}, zone=zone)
    assert c.n == 0
    s, sz = s.compute(), sz.compute()
    assert np.allclose(s["mean_ndvi"], 0.5) and np.allclose(s["percent_clear"], 50.0)
    assert np.allclose(s["water_ha"], 3 * 5 * 0.01)  # rows 0-2 (y above y[3]) of the 5 clear columns
    assert float(s["burned_ha"]) == pytest.approx(0.2) and s["water_ha"].attrs["units"] == "ha"
    assert np.allclose(sz["percent_clear"], 5 / 8 * 100) and float(sz["burned_ha"]) == pytest.approx(0.16)


def test_all_cloud_gives_nan_ndvi_and_zero_clear():
    cube = make_cube(shape=(4, 4))
    nd = cube["red"].where(False)
    s = zonal_stats(pixel_area_ha=0.01, ndvi=nd, clear=nd.notnull())
    assert np.isnan(s["mean_ndvi"]).all() and (s["percent_clear"] == 0).all()
