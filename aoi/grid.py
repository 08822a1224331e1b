"""Each landscape's analysis grid: a UTM CRS from its centroid, bounds snapped to the resolution.

Snapping the bounds to whole multiples of the resolution means two runs (or two nights) over the
same landscape produce pixel-for-pixel identical grids, so cubes append without resampling.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pyproj import CRS, Transformer
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

__all__ = ["Grid", "utm_epsg_for", "grid_for_geometry", "reproject_geometry"]

Resolution = Annotated[float, Field(gt=0, le=1000, description="pixel size in metres")]


def utm_epsg_for(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 / UTM zone containing ``(lon, lat)`` (326xx north, 327xx south).

    The Norway and Svalbard exceptions do not touch the Amur-Heilong region and are not applied.
    """
    if not (-180.0 <= lon <= 180.0 and -80.0 <= lat <= 84.0):
        raise ValueError(f"({lon}, {lat}) is outside the UTM domain (lon -180..180, lat -80..84)")
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


class Grid(BaseModel):
    """A north-up raster grid in a projected CRS. All fields are JSON-safe (no Affine objects).

    Attributes
    ----------
    epsg : int
        EPSG code of the projected CRS.
    resolution : float
        Pixel size in metres (square pixels).
    bounds : tuple of float
        ``(minx, miny, maxx, maxy)`` of the pixel edges, in CRS metres, multiples of ``resolution``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epsg: int
    resolution: Resolution
    bounds: tuple[float, float, float, float]

    @field_validator("epsg")
    @classmethod
    def _check_crs(cls, v: int) -> int:
        try:
            crs = CRS.from_epsg(v)
        except Exception as exc:  # pyproj raises CRSError
            raise ValueError(f"EPSG:{v} is not a known CRS ({exc}); use a UTM code such as 32651") from exc
        if not crs.is_projected:
            raise ValueError(f"EPSG:{v} is not projected; a grid needs metres, e.g. a UTM zone (326xx)")
        return v

    @property
    def crs(self) -> CRS:
        return CRS.from_epsg(self.epsg)

    @property
    def width(self) -> int:
        return round((self.bounds[2] - self.bounds[0]) / self.resolution)

    @property
    def height(self) -> int:
        return round((self.bounds[3] - self.bounds[1]) / self.resolution)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return (self.height, self.width)

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """GDAL-order affine coefficients ``(a, b, c, d, e, f)`` as in STAC ``proj:transform``."""
        r = self.resolution
        return (r, 0.0, self.bounds[0], 0.0, -r, self.bounds[3])

    @property
    def pixel_area_ha(self) -> float:
        return self.resolution * self.resolution / 10_000.0

    def x_coords(self) -> list[float]:
        """Pixel-centre x coordinates, west to east."""
        r = self.resolution
        return [self.bounds[0] + (i + 0.5) * r for i in range(self.width)]

    def y_coords(self) -> list[float]:
        """Pixel-centre y coordinates, north to south."""
        r = self.resolution
        return [self.bounds[3] - (j + 0.5) * r for j in range(self.height)]

    def with_resolution(self, resolution: float) -> "Grid":
        """The same area on another resolution, snapped outward to the new pixel size."""
        return Grid(epsg=self.epsg, resolution=resolution, bounds=_snap(self.bounds, resolution))


def _snap(bounds: tuple[float, float, float, float], res: float) -> tuple[float, float, float, float]:
    minx, miny, maxx, maxy = bounds
    return (
        math.floor(minx / res) * res,
        math.floor(miny / res) * res,
        math.ceil(maxx / res) * res,
        math.ceil(maxy / res) * res,
    )


def grid_for_geometry(geometry_lonlat: BaseGeometry, resolution: float, epsg: int | None = None) -> Grid:
    """The snapped grid covering a lon/lat geometry, in the UTM zone of its centroid.

    Parameters
    ----------
    geometry_lonlat
        A shapely geometry in EPSG:4326 (lon, lat order).
    resolution
        Pixel size in metres.
    epsg
        Override the CRS (defaults to the UTM zone of the centroid).
    """
    c = geometry_lonlat.centroid
    code = epsg or utm_epsg_for(c.x, c.y)
    # densify so that the projected bounds of a long polygon edge are not underestimated
    projected = reproject_geometry(geometry_lonlat.segmentize(0.01), 4326, code)
    return Grid(epsg=code, resolution=resolution, bounds=_snap(projected.bounds, resolution))


def reproject_geometry(geom: BaseGeometry, src_epsg: int, dst_epsg: int) -> BaseGeometry:
    """Reproject a shapely geometry between two EPSG codes (lon/lat axis order for EPSG:4326)."""
    t = Transformer.from_crs(src_epsg, dst_epsg, always_xy=True)

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = t.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, fn)
