"""A factory of small, seeded, synthetic cubes with a CRS and units, on numpy or dask."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import xarray as xr


def make_cube(*, times=("2026-07-01", "2026-07-06"), shape=(40, 50), seed=0, bands=("blue", "green", "red", "nir",
              "swir16", "swir22"), epsg=32651, res=10.0, backend="numpy") -> xr.Dataset:
    rng = np.random.default_rng(seed)
    t = pd.to_datetime(list(times))
    h, w = shape
    x = 450000 + (np.arange(w) + 0.5) * res
    y = 5680000 - (np.arange(h) + 0.5) * res
    data = {b: (("time", "y", "x"), rng.uniform(0.01, 0.5, (len(t), h, w)).astype(np.float32),
                {"units": "1", "long_name": f"{b} surface reflectance"}) for b in bands}
    ds = xr.Dataset(data, coords={"time": t, "y": y, "x": x}).rio.write_crs(epsg)
    if backend == "dask":
        ds = ds.chunk({"time": 1, "y": 16, "x": 16})
    return ds


@pytest.fixture(params=["numpy", "dask"])
def backend(request):
    return request.param


class CountTasks:
    """Counts dask tasks executed inside the block: processors must build graphs, not run them."""

    def __enter__(self):
        from dask.callbacks import Callback

        self.n = 0
        outer = self

        class _C(Callback):
            def _pretask(self, key, dask, state):
                outer.n += 1

        self._cb = _C()
        self._cb.__enter__()
        return self

    def __exit__(self, *exc):
        self._cb.__exit__(*exc)
