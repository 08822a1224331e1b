"""Burn severity: dNBR, RdNBR, USGS classes, and the signature that tells a fire from a clearing."""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["dnbr", "rdnbr", "severity_classes", "burn_signature", "SEVERITY_BREAKS", "SEVERITY_NAMES"]

#: Key & Benson (2006) dNBR class breaks
SEVERITY_BREAKS = (0.10, 0.27, 0.44, 0.66)
SEVERITY_NAMES = ("unburned", "low", "moderate_low", "moderate_high", "high")


def dnbr(pre_nbr: xr.DataArray, post_nbr: xr.DataArray) -> xr.DataArray:
    """Differenced NBR, ``pre - post`` (positive where the vegetation burned), float32, unit 1.

    References
    ----------
    Key, C. H., Benson, N. C. (2006). USDA Forest Service RMRS-GTR-164-CD.
    """
    a, b = xr.align(pre_nbr, post_nbr, join="exact")
    out = (a - b).astype(np.float32)
    out.name = "dnbr"
    out.attrs = {"long_name": "differenced normalized burn ratio (pre - post)", "units": "1"}
    return out


def rdnbr(pre_nbr: xr.DataArray, d: xr.DataArray) -> xr.DataArray:
    """Relative dNBR, ``dNBR / sqrt(|pre NBR|)``, NaN where the pre-fire NBR is ~0.

    References
    ----------
    Miller, J. D., Thode, A. E. (2007). Quantifying burn severity in a heterogeneous landscape with a
    relative version of the delta Normalized Burn Ratio. Remote Sens. Environ. 109, 66-80.
    """
    a, b = xr.align(pre_nbr, d, join="exact")
    den = np.sqrt(np.abs(a))
    out = (b / den.where(den > 1e-3)).astype(np.float32)
    out.name = "rdnbr"
    out.attrs = {"long_name": "relative differenced normalized burn ratio", "units": "1"}
    return out


def severity_classes(d: xr.DataArray) -> xr.DataArray:
    """USGS burn-severity class of dNBR: 0 unburned (<0.10), 1 low (0.10-0.27), 2 moderate-low
    (0.27-0.44), 3 moderate-high (0.44-0.66), 4 high (>0.66); -1 where dNBR is NaN. int8."""
    bins = np.asarray(SEVERITY_BREAKS, dtype=np.float64)  # float32 breaks would put 0.10 itself below 0.1
    cls = xr.apply_ufunc(np.digitize, d, kwargs={"bins": bins}, dask="parallelized", output_dtypes=[np.int64])
    out = cls.where(d.notnull(), -1).astype(np.int8)
    out.name = "burn_severity"
    out.attrs = {"long_name": "burn severity (Key & Benson dNBR classes)", "flag_values": [-1, 0, 1, 2, 3, 4],
                 "flag_meanings": "no_data " + " ".join(SEVERITY_NAMES), "units": "1"}
    return out


def burn_signature(pre: xr.Dataset, post: xr.Dataset, *, max_swir16_rise: float = 0.06,
                   max_visible_albedo: float = 0.07) -> xr.DataArray:
    """True where a drop in NBR looks like fire (char), not like a clearing.

    Char darkens the visible and near-infrared and leaves SWIR 1.6 µm about unchanged or lower. A
    clearing exposes soil and dry slash, which brighten the visible and raise SWIR 1.6 µm strongly.
    So a burn keeps ``swir16`` from rising by more than ``max_swir16_rise``, and its post-event mean
    of blue, green and red stays under ``max_visible_albedo``.

    Parameters
    ----------
    pre, post : Dataset
        Reflectance with ``blue, green, red, swir16`` (unit 1), same grid.
    """
    rise = post["swir16"] - pre["swir16"]
    albedo = (post["blue"] + post["green"] + post["red"]) / 3
    out = (rise <= max_swir16_rise) & (albedo <= max_visible_albedo)
    out.name = "burn_signature"
    out.attrs = {"long_name": "fire-like spectral change (char), not a clearing", "units": "1"}
    return out
