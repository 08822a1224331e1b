"""Pictures for the digests: the alert map, and before/after NDVI from the cube for the largest alerts."""

from __future__ import annotations

import logging
from typing import Callable

import pandas as pd

from aoi.landscapes import Landscape
from outputs.maps import alert_map_png, before_after_png
from outputs.notify import Images

from . import pipeline
from .settings import Settings

__all__ = ["digest_images", "THUMBNAILS"]

log = logging.getLogger(__name__)
THUMBNAILS = 3  #: before/after pictures per digest (the largest alerts)


def digest_images(settings: Settings) -> Callable[[Landscape, pd.DataFrame], Images]:
    def images(land: Landscape, alerts: pd.DataFrame) -> Images:
        map_png = alert_map_png(land, alerts) if len(alerts) else None
        thumbs: dict[str, bytes] = {}
        store = pipeline.cube_store(settings, land.id)
        if len(alerts) and store.exists():
            cube = store.read()
            for _, row in alerts.sort_values("area_ha", ascending=False).head(THUMBNAILS).iterrows():
                try:
                    png = before_after_png(cube, row, epsg=land.utm_epsg)
                except Exception as exc:  # one bad picture never stops the mail
                    log.warning("no before/after picture for %s: %s", row["alert_id"], exc)
                    png = None
                if png:
                    thumbs[row["alert_id"]] = png
        return map_png, thumbs

    return images
