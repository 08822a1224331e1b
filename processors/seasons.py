"""Growing-season and snow windows for 42-53°N, and per-period grouping helpers."""

from __future__ import annotations

from dataclasses import dataclass

import xarray as xr

__all__ = ["SeasonWindows", "season_windows", "in_window"]


@dataclass(frozen=True)
class SeasonWindows:
    """Day-of-year windows of one landscape (inclusive)."""

    growing_start_doy: int
    growing_end_doy: int
    snow_end_doy: int  #: lasting snow usually gone after this day
    snow_start_doy: int  #: lasting snow usually back from this day
    peak_start_doy: int  #: the flat top of the season: yearly means sampled here hardly depend on the dates
    peak_end_doy: int

    def grassland(self) -> dict:
        """The windows :func:`processors.chain.grassland_layers` takes: the peak window for each
        pixel's yearly values, the growing season for the landscape's yearly levels, fitted over
        the snow-free season."""
        return {"start_doy": self.peak_start_doy, "end_doy": self.peak_end_doy,
                "season_doy": (self.growing_start_doy, self.growing_end_doy),
                "fit_doy": (self.snow_end_doy, self.snow_start_doy)}


def season_windows(lat: float) -> SeasonWindows:
    """Default windows for the Amur-Heilong latitudes (42-53°N).

    Green-up comes about 2.5 days later per degree north, and senescence about 2 days earlier. At
    47°N the growing season's core runs from 1 June to mid-September, its peak from about 21 June
    to 11 September, and the lasting snow from early November to early April. Trends use the peak
    window: with a few clear looks a year, early-June green-up timing would dominate a
    whole-season mean.
    """
    if not 35.0 <= lat <= 60.0:
        raise ValueError(f"latitude {lat} is outside 35-60°N, where these defaults hold; pass explicit windows")
    d = lat - 47.0
    return SeasonWindows(growing_start_doy=int(round(152 + 2.5 * d)), growing_end_doy=int(round(258 - 2.0 * d)),
                         snow_end_doy=int(round(95 + 3.0 * d)), snow_start_doy=int(round(305 - 3.0 * d)),
                         peak_start_doy=int(round(172 + 2.5 * d)), peak_end_doy=int(round(254 - 2.0 * d)))


def in_window(time: xr.DataArray, start_doy: int, end_doy: int) -> xr.DataArray:
    """Boolean along ``time``: the day of year lies in ``[start_doy, end_doy]``."""
    doy = time.dt.dayofyear
    return (doy >= start_doy) & (doy <= end_doy)
