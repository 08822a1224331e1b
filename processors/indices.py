"""Spectral indices: one public function per formula.

Inputs are surface reflectance DataArrays (unit 1, already scaled: never divide by 10000 here).
Outputs keep the input dims, are float32, NaN where the index is undefined (NaN input, or a zero
denominator), and carry their own ``long_name`` and ``units = "1"``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["ndvi", "nbr", "ndwi", "mndwi", "normalized_difference"]


def _normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The kernel: one pass per arithmetic step, in place (a per-night cost of the flows)."""
    dtype = np.result_type(a.dtype, b.dtype, np.float32)
    a, b = np.asarray(a, dtype), np.asarray(b, dtype)
    den = a + b
    out = a - b
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        np.divide(out, den, out=out)
        out = out.astype(np.float32, copy=False)
    out[~np.isfinite(out)] = np.nan  # 0 / 0, x / 0 and float32 overflow: undefined
    return out


def normalized_difference(a: xr.DataArray, b: xr.DataArray, *, name: str, long_name: str) -> xr.DataArray:
    """``(a - b) / (a + b)``, float32, NaN where undefined; grids must match exactly."""
    out = xr.apply_ufunc(_normalized_difference, a, b, join="exact", dask="parallelized",
                         output_dtypes=[np.float32], keep_attrs=True)
    out.name = name
    out.attrs = {"long_name": long_name, "units": "1", "valid_min": -1.0, "valid_max": 1.0}
    return out


def ndvi(red: xr.DataArray, nir: xr.DataArray) -> xr.DataArray:
    """Normalized Difference Vegetation Index, ``(nir - red) / (nir + red)``.

    Parameters
    ----------
    red, nir : DataArray
        Surface reflectance (unit 1), same grid.

    Returns
    -------
    DataArray
        float32 in [-1, 1], dims of the inputs.

    References
    ----------
    Rouse, J. W., Haas, R. H., Schell, J. A., Deering, D. W. (1974). Monitoring vegetation systems in
    the Great Plains with ERTS. NASA SP-351, 309-317.
    """
    return normalized_difference(nir, red, name="ndvi", long_name="normalized difference vegetation index")


def nbr(nir: xr.DataArray, swir22: xr.DataArray) -> xr.DataArray:
    """Normalized Burn Ratio, ``(nir - swir22) / (nir + swir22)``.

    References
    ----------
    Key, C. H., Benson, N. C. (2006). Landscape assessment (LA): sampling and analysis methods.
    USDA Forest Service RMRS-GTR-164-CD.
    """
    return normalized_difference(nir, swir22, name="nbr", long_name="normalized burn ratio")


def ndwi(green: xr.DataArray, nir: xr.DataArray) -> xr.DataArray:
    """Normalized Difference Water Index (McFeeters), ``(green - nir) / (green + nir)``.

    References
    ----------
    McFeeters, S. K. (1996). The use of the Normalized Difference Water Index (NDWI) in the delineation
    of open water features. Int. J. Remote Sens. 17(7), 1425-1432.
    """
    return normalized_difference(green, nir, name="ndwi", long_name="normalized difference water index")


def mndwi(green: xr.DataArray, swir16: xr.DataArray) -> xr.DataArray:
    """Modified Normalized Difference Water Index, ``(green - swir16) / (green + swir16)``.

    References
    ----------
    Xu, H. (2006). Modification of normalised difference water index (NDWI) to enhance open water
    features in remotely sensed imagery. Int. J. Remote Sens. 27(14), 3025-3033.
    """
    return normalized_difference(green, swir16, name="mndwi", long_name="modified normalized difference water index")
