"""Vectorised Mann-Kendall test and Theil-Sen slope along one dimension (lazy with dask).

Every pair of time steps is compared at once in NumPy, so a chunk of 50,000 pixels over 20 years
is a few array operations, not 50,000 Python loops. Missing values (NaN) drop out pair by pair.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.special import ndtr

from .forest import nanmedian_time

__all__ = ["mann_kendall", "theil_sen_mk_numpy"]


def theil_sen_mk_numpy(y: np.ndarray, x: np.ndarray, continuity: bool = True
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Theil-Sen slope, Mann-Kendall two-sided p-value, S and n over the **last** axis.

    Parameters
    ----------
    y : ndarray (..., n)
        Series; NaN for missing.
    x : ndarray (n,)
        Positions (e.g. years), strictly increasing.
    continuity : bool
        Apply the usual continuity correction ``S -/+ 1`` (as Trends.Earth and pymannkendall do).

    Returns
    -------
    slope, p, s, n
        ``slope`` in units of y per unit of x; ``p`` from the normal approximation with the
        continuity correction and the tie correction of the variance; NaN where fewer than 3
        valid values.
    """
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    n_t = y.shape[-1]
    i, j = np.triu_indices(n_t, 1)
    d = y[..., j] - y[..., i]  # (..., pairs)
    slopes = d / (x[j] - x[i])
    valid = np.isfinite(d)
    s = np.where(valid, np.sign(d), 0.0).sum(axis=-1)
    n = np.isfinite(y).sum(axis=-1).astype(np.float64)
    with np.errstate(all="ignore"):  # (nanmedian_time: no all-NaN warning for a pixel without pairs)
        slope = nanmedian_time(np.where(valid, slopes, np.nan)) if valid.any() else np.full(s.shape, np.nan)
    var = n * (n - 1) * (2 * n + 5) / 18.0
    # tie correction: sum over tie groups of t(t-1)(2t+5); with c_k = how many values equal y_k,
    # a group of t equal values contributes t times (t-1)(2t+5), so the sum is sum_k (c_k-1)(2c_k+5)
    fin = np.isfinite(y)
    c = ((y[..., :, None] == y[..., None, :]) & fin[..., :, None] & fin[..., None, :]).sum(axis=-1)
    tie_term = np.where(fin, (c - 1) * (2 * c + 5), 0).sum(axis=-1)
    var = var - tie_term / 18.0
    with np.errstate(all="ignore"):
        cc = 1.0 if continuity else 0.0
        z = np.where(s > 0, (s - cc) / np.sqrt(var), np.where(s < 0, (s + cc) / np.sqrt(var), 0.0))
        p = 2.0 * (1.0 - ndtr(np.abs(z)))
    bad = n < 3
    slope = np.where(bad, np.nan, slope)
    p = np.where(bad, np.nan, p)
    return slope, p, s, n


def mann_kendall(series: xr.DataArray, *, dim: str = "year") -> xr.Dataset:
    """Theil-Sen slope and Mann-Kendall significance of ``series`` along ``dim``, per pixel.

    Parameters
    ----------
    series : DataArray
        E.g. growing-season NDVI with dims (year, y, x); the ``dim`` coordinate gives positions.
    dim : str
        The trend dimension; it must not be chunked (it is rechunked to one chunk if it is).

    Returns
    -------
    Dataset
        ``slope`` (units of ``series`` per unit of ``dim``, float32), ``p_value`` (float32),
        ``s`` (Mann-Kendall S) and ``n`` (valid values), dims of ``series`` without ``dim``.

    References
    ----------
    Mann, H. B. (1945). Nonparametric tests against trend. Econometrica 13, 245-259.
    Sen, P. K. (1968). Estimates of the regression coefficient based on Kendall's tau. JASA 63, 1379-1389.
    """
    x = np.asarray(series[dim].values if dim in series.coords else np.arange(series.sizes[dim]), dtype=np.float64)
    if series.chunks is not None:
        series = series.chunk({dim: -1})
    slope, p, s, n = xr.apply_ufunc(
        theil_sen_mk_numpy, series, kwargs={"x": x}, input_core_dims=[[dim]], output_core_dims=[[], [], [], []],
        dask="parallelized", output_dtypes=[np.float64] * 4, vectorize=False,
    )
    units = series.attrs.get("units", "1")
    return xr.Dataset({
        "slope": slope.astype(np.float32).assign_attrs(long_name=f"Theil-Sen slope per {dim}", units=f"{units} per {dim}"),
        "p_value": p.astype(np.float32).assign_attrs(long_name="Mann-Kendall two-sided p-value", units="1"),
        "s": s.astype(np.float32).assign_attrs(long_name="Mann-Kendall S", units="1"),
        "n": n.astype(np.float32).assign_attrs(long_name=f"valid values along {dim}", units="1"),
    })
