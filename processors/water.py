"""Open water per observation (MNDWI with a per-scene Otsu threshold), frequency and extent."""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["otsu_threshold", "mndwi_histogram", "water_mask", "water_frequency", "water_extent_ha", "DEFAULT_THRESHOLD_BOUNDS"]

#: Otsu thresholds on MNDWI are clamped here: outside, the histogram was not bimodal water/land
DEFAULT_THRESHOLD_BOUNDS = (-0.1, 0.3)


def _otsu_1d(values: np.ndarray, bins: int = 128, lo: float = -1.0, hi: float = 1.0, min_n: int = 200) -> float:
    v = values[np.isfinite(values)]
    if v.size < min_n:
        return np.nan
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    p = hist.astype(np.float64) / max(1, hist.sum())
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    w1 = 1 - w0
    m0 = np.cumsum(p * centers)
    mt = m0[-1]
    with np.errstate(all="ignore"):
        between = (mt * w0 - m0) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1
    return float(edges[1:][np.argmax(between)])


_BINS, _LO, _HI, _MIN_N = 128, -1.0, 1.0, 200


def _hist_block(a: np.ndarray) -> np.ndarray:
    """MNDWI histogram of each scene of a block: (..., y, x) -> (..., 1, 1, bins)."""
    flat = a.reshape(a.shape[:-2] + (-1,))
    out = np.zeros(flat.shape[:-1] + (_BINS,), np.int64)
    for idx in np.ndindex(flat.shape[:-1]):
        v = flat[idx]
        out[idx] = np.histogram(v[np.isfinite(v)], bins=_BINS, range=(_LO, _HI))[0]
    return out[..., None, None, :]


def _otsu_from_hist(hist: np.ndarray) -> np.ndarray:
    """Otsu's threshold from histograms (..., bins), as :func:`_otsu_1d` computes it; NaN under 200 values."""
    n = hist.sum(axis=-1)
    p = hist.astype(np.float64) / np.maximum(1, n)[..., None]
    edges = np.linspace(_LO, _HI, _BINS + 1)  # np.histogram's edges
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p, axis=-1)
    w1 = 1 - w0
    m0 = np.cumsum(p * centers, axis=-1)
    mt = m0[..., -1:]
    with np.errstate(all="ignore"):
        between = (mt * w0 - m0) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1
    thr = edges[1:][np.argmax(between, axis=-1)]
    return np.where(n >= _MIN_N, thr, np.nan)


def mndwi_histogram(mndwi: xr.DataArray) -> xr.DataArray:
    """Per-scene histogram of MNDWI (128 bins over [-1, 1]), lazily: a ``bin`` dim replaces (y, x).

    Histograms add up, so a caller can sum those of parts of a scene (bands of rows of a big one)."""
    lead = [d for d in mndwi.dims if d not in ("y", "x")]
    m = mndwi.transpose(*lead, "y", "x")
    data = m.data
    if isinstance(data, np.ndarray):
        h = _hist_block(data)[..., 0, 0, :]
    else:
        nd = data.ndim
        h = data.map_blocks(_hist_block, new_axis=nd, dtype=np.int64,
                            chunks=data.chunks[:-2] + ((1,) * len(data.chunks[-2]), (1,) * len(data.chunks[-1]),
                                                       (_BINS,)))
        h = h.sum(axis=(nd - 2, nd - 1))
    return xr.DataArray(h, dims=lead + ["bin"], coords={c: v for c, v in m.isel(y=0, x=0, drop=True).coords.items()})


def otsu_threshold(mndwi: xr.DataArray | None = None, *, bounds: tuple[float, float] = DEFAULT_THRESHOLD_BOUNDS,
                   fallback: float = 0.0, histogram: xr.DataArray | None = None) -> xr.DataArray:
    """Per-scene Otsu threshold of MNDWI over the clear pixels, clamped to ``bounds``.

    Scenes with fewer than 200 clear pixels get ``fallback``. Returns float32 along every dim but (y, x).
    The scene's histogram is summed from per-chunk histograms, so a scene is never gathered into one
    chunk; ``histogram``: that histogram (:func:`mndwi_histogram`) instead of ``mndwi``.

    References
    ----------
    Otsu, N. (1979). A threshold selection method from gray-level histograms. IEEE Trans. SMC 9, 62-66.
    """
    h = mndwi_histogram(mndwi) if histogram is None else histogram
    t = xr.apply_ufunc(_otsu_from_hist, h, input_core_dims=[["bin"]], dask="parallelized",
                       output_dtypes=[np.float64])
    t = t.fillna(fallback).clip(*bounds).astype(np.float32)
    t.name = "water_threshold"
    t.attrs = {"long_name": "per-scene MNDWI water threshold (Otsu, clamped)", "units": "1"}
    return t


def water_mask(mndwi: xr.DataArray, *, bounds: tuple[float, float] = DEFAULT_THRESHOLD_BOUNDS,
               threshold: xr.DataArray | None = None) -> xr.DataArray:
    """Water (1), land (0) or not observed (NaN) per pixel and scene, float32.

    The threshold is each scene's Otsu threshold, clamped to ``bounds``. ``threshold``: that
    threshold already computed (:func:`otsu_threshold`): a caller writing a large scene chunk by
    chunk computes it first, so that the mask no longer waits on a reduction over the whole scene.
    """
    thr = otsu_threshold(mndwi, bounds=bounds) if threshold is None else threshold
    w = (mndwi > thr).astype(np.float32).where(mndwi.notnull())
    w.name = "water"
    w.attrs = {"long_name": "open water (1) or land (0), NaN where not clear", "units": "1"}
    return w


def water_frequency(water: xr.DataArray, *, dim: str = "time") -> xr.Dataset:
    """Wet and clear counts and their ratio over ``dim`` (as DEA's Water Observations)."""
    wet = (water == 1).sum(dim).astype(np.int16)
    clear = water.notnull().sum(dim).astype(np.int16)
    freq = (wet / clear.where(clear > 0)).astype(np.float32)
    return xr.Dataset({
        "wet": wet.assign_attrs(long_name="wet observations", units="1"),
        "clear": clear.assign_attrs(long_name="clear observations", units="1"),
        "frequency": freq.assign_attrs(long_name="water frequency (wet / clear)", units="1"),
    })


def water_extent_ha(water: xr.DataArray, *, pixel_area_ha: float, min_clear_fraction: float = 0.8) -> xr.DataArray:
    """Water area (ha) per scene; NaN where under ``min_clear_fraction`` of the pixels are observed."""
    area = (water == 1).sum(("y", "x")) * pixel_area_ha
    frac = water.notnull().mean(("y", "x"))
    out = area.where(frac >= min_clear_fraction).astype(np.float32)
    out.name = "water_ha"
    out.attrs = {"long_name": "open-water extent", "units": "ha"}
    return out
