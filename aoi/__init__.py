"""Conservation landscapes of the Amur-Heilong ecoregion: models, validation and analysis grids."""

from .errors import AmurwatchError, AoiError, AoiProblem, AoiValidationError
from .grid import Grid, grid_for_geometry, reproject_geometry, utm_epsg_for
from .landscapes import (
    DEFAULT_MAX_AREA_KM2,
    Ecosystem,
    Landscape,
    default_landscapes_path,
    load_landscapes,
    parse_landscapes,
)

__all__ = [
    "AmurwatchError", "AoiError", "AoiProblem", "AoiValidationError",
    "Grid", "grid_for_geometry", "reproject_geometry", "utm_epsg_for",
    "DEFAULT_MAX_AREA_KM2", "Ecosystem", "Landscape", "default_landscapes_path", "load_landscapes", "parse_landscapes",
]
