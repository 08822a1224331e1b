"""The run report: ``DIR/reports/<date>/index.html`` with per-landscape maps, the NDVI anomaly,
the water-extent time series and the alert table. Images are PNG files beside the page; every
user-controlled string is HTML-escaped (Jinja2 autoescape).

Its cost does not grow with the archive: the NDVI anomaly reads only the last ``window_days`` of
each cube and the same window of earlier years; the water series comes from ``stats.parquet``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jinja2
import numpy as np
import pandas as pd

from aoi.landscapes import Landscape

from .alerts import AlertStore
from .cube import CubeStore
from .maps import alert_map_png, ndvi_anomaly_png, water_series_png
from .stats import read_stats

__all__ = ["write_report", "ndvi_anomaly"]

log = logging.getLogger(__name__)

_env = jinja2.Environment(loader=jinja2.PackageLoader("outputs", "templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def ndvi_anomaly(cube, *, end: str | dt.date, window_days: int = 30, min_years: int = 1):
    """Median NDVI of the ``window_days`` before ``end`` minus the median of the same window in
    earlier years (y, x; NDVI units), or None when either side has no observation."""
    end_t = pd.Timestamp(end)
    t = pd.DatetimeIndex(cube["time"].values)
    cur = (t > end_t - pd.Timedelta(days=window_days)) & (t <= end_t)
    past = np.zeros(len(t), bool)
    years = 0
    for back in range(1, 30):
        e = end_t - pd.DateOffset(years=back)
        sel = (t > e - pd.Timedelta(days=window_days)) & (t <= e)
        if sel.any():
            past |= sel
            years += 1
    if not cur.any() or years < min_years:
        return None
    nd = cube["ndvi"]
    return (nd.isel(time=np.nonzero(cur)[0]).median("time") - nd.isel(time=np.nonzero(past)[0]).median("time")).compute()


def write_report(out_dir: str | Path, run_date: str, landscapes: Sequence[Landscape], *, store: AlertStore,
                 summary: Mapping[str, Mapping[str, Any]] | None = None, window_days: int = 30,
                 cube_store: Callable[[str], CubeStore] | None = None) -> Path:
    """Write the report of the run of ``run_date`` (``YYYY-MM-DD``); returns the path of index.html.

    ``summary`` maps a landscape id to what the run did there (``status``, ``scenes``, ...).
    """
    out = Path(out_dir)
    day = dt.date.fromisoformat(str(run_date))
    rdir = out / "reports" / day.isoformat()
    rdir.mkdir(parents=True, exist_ok=True)
    stats = read_stats(out / "stats.parquet")
    sections = []
    for land in landscapes:
        sec: dict[str, Any] = {"id": land.id, "name": land.name, "ecosystems": [e.value for e in land.ecosystems],
                               "country": "/".join(land.country), "run": dict((summary or {}).get(land.id, {})),
                               "images": {}, "notes": []}
        alerts = store.frame(landscape_id=land.id)
        active = alerts[alerts["status"] != "expired"]
        sec["alerts"] = [
            {"alert_id": r.alert_id, "kind": r.kind.replace("_", " "), "status": r.status,
             "first_detected": str(r.first_detected or ""), "area_ha": f"{r.area_ha:.2f}", "severity": r.severity or "",
             "lonlat": (f"{r.centroid_lon:.5f}, {r.centroid_lat:.5f}" if pd.notna(r.centroid_lon) else "")}
            for r in active.sort_values(["first_detected", "alert_id"], ascending=[False, True]).itertuples()]
        sec["images"]["map"] = _save(rdir / f"{land.id}-map.png", alert_map_png(land, active))
        cube = cube_store(land.id) if cube_store else CubeStore(out / "cubes" / f"{land.id}.zarr")
        if cube.exists():
            ds = cube.read()
            an = ndvi_anomaly(ds, end=day, window_days=window_days)
            if an is not None:
                sec["images"]["ndvi_anomaly"] = _save(rdir / f"{land.id}-ndvi-anomaly.png", ndvi_anomaly_png(
                    an, title=f"NDVI, last {window_days} days minus the same days of earlier years"))
            else:
                sec["notes"].append(f"No NDVI anomaly: no clear observation in the last {window_days} days, "
                                    "or no earlier year to compare with.")
        else:
            sec["notes"].append("No cube yet for this landscape.")
        if "wetland" in sec["ecosystems"]:
            s = stats[stats["landscape_id"] == land.id]
            w = s[s["variable"] == "water_ha"][["time", "value"]].rename(columns={"value": "water_ha"})
            b = s[s["variable"] == "baseline_water_ha"][["time", "value"]].rename(columns={"value": "baseline_ha"})
            w = w.merge(b, on="time", how="left") if len(b) else w.assign(baseline_ha=np.nan)
            w = w[pd.to_datetime(w["time"]).dt.date <= day].sort_values("time")
            sec["images"]["water"] = _save(rdir / f"{land.id}-water.png",
                                           water_series_png(w, title="Open water per clear observation (ha)"))
        sections.append(sec)
    html = _env.get_template("report.html.j2").render(
        run_date=day.isoformat(), sections=sections,
        generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        totals={k: sum(1 for s in sections for a in s["alerts"] if a["kind"] == k.replace("_", " "))
                for k in ("forest_loss", "burn_scar", "wetland_loss", "grassland_degradation")})
    index = rdir / "index.html"
    tmp = rdir / ".index.html.tmp"
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, index)
    return index


def _save(path: Path, png: bytes) -> str:
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_bytes(png)
    os.replace(tmp, path)
    return path.name
