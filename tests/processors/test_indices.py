from __future__ import annotations

import numpy as np
import pytest
import spyndex
import xarray as xr

from processors.indices import mndwi, nbr, ndvi, ndwi

from .conftest import CountTasks, make_cube


def test_reference_values():
    r, n = xr.DataArray([0.1, 0.05, 0.3]), xr.DataArray([0.5, 0.45, 0.3])
    np.testing.assert_allclose(ndvi(r, n).values, [0.4 / 0.6, 0.4 / 0.5, 0.0], rtol=1e-6)


@pytest.mark.parametrize("fn,idx,args", [
    (ndvi, "NDVI", {"R": "red", "N": "nir"}),
    (nbr, "NBR", {"N": "nir", "S2": "swir22"}),
    (ndwi, "NDWI", {"G": "green", "N": "nir"}),
    (mndwi, "MNDWI", {"G": "green", "S1": "swir16"}),
])
def test_against_spyndex_on_numpy_and_dask(fn, idx, args, backend):
    cube = make_cube(backend=backend)
    bands = {"ndvi": ("red", "nir"), "nbr": ("nir", "swir22"), "ndwi": ("green", "nir"), "mndwi": ("green", "swir16")}
    with CountTasks() as c:
        out = fn(*(cube[b] for b in bands[fn.__name__]))
    assert c.n == 0  # lazy: nothing ran
    oracle = spyndex.computeIndex(idx, params={k: cube[v].values for k, v in args.items()})
    np.testing.assert_allclose(out.values, oracle, rtol=1e-5, atol=1e-6)
    assert out.dtype == np.float32 and out.attrs["units"] == "1" and "long_name" in out.attrs
    assert "long_name" in cube["red"].attrs and cube["red"].attrs["long_name"] != out.attrs["long_name"]
    assert out.rio.crs.to_epsg() == 32651


def test_edge_cases_nan_zero_inf():
    r = xr.DataArray([np.nan, 0.0, 0.2, np.inf, 0.3])
    n = xr.DataArray([0.3, 0.0, 0.2, 0.1, -0.3])
    out = ndvi(r, n).values
    assert np.isnan(out[0]) and np.isnan(out[1])  # NaN in, 0/0
    assert out[2] == 0.0  # ndvi(x, x) == 0
    assert np.isnan(out[3]) and np.isnan(out[4])  # inf, and a zero denominator


def test_grids_must_match_exactly():
    a = make_cube()["red"]
    b = a.assign_coords(x=a.x + 10)
    with pytest.raises(ValueError):
        ndvi(a, b)


def test_inputs_are_not_changed():
    cube = make_cube()
    before = cube["red"].copy(deep=True)
    ndvi(cube["red"], cube["nir"])
    xr.testing.assert_identical(before, cube["red"])
