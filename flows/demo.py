"""The offline demo as one Prefect flow: backfill the baseline, then replay the monitoring season
night by night against the local STAC API, mailing the digests to a local SMTP server.

Each replayed night sees only the scenes acquired up to that date (the search ends on the night).
A night processes the landscapes with an acquisition that day (the others would find nothing new),
and the last night all of them.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any, Callable

from prefect import flow

from outputs.alerts import AlertStore
from outputs.notify import SmtpSettings
from sources.search import search_items, solar_date

from . import pipeline
from .cluster import dask_client
from .nightly import RunSummary, run_lock, run_night, run_range
from .settings import DaskSettings, Settings, SourceConfig

__all__ = ["demo_flow", "demo_settings", "acquisition_nights"]

COLLECTIONS = ["sentinel-2-c1-l2a", "landsat-c2-l2"]


def demo_settings(archive: Path, out: Path, stac_url: str, smtp_port: int | None, *, max_cloud: float = 90.0
                  ) -> Settings:
    return Settings(
        sources=[SourceConfig(url=stac_url, collections=COLLECTIONS, max_cloud=max_cloud)],
        aoi=archive / "aoi.geojson", out=str(out),
        smtp=SmtpSettings(host="127.0.0.1", port=smtp_port, security="none",
                          sender="amurwatch demo <alerts@amurwatch.invalid>") if smtp_port else None,
        mail_dry_run=smtp_port is None,
        dask=DaskSettings(n_workers=1, threads_per_worker=2, processes=False),
    )


def acquisition_nights(settings: Settings, start: dt.date, end: dt.date) -> dict[dt.date, set[str]]:
    """Each date in [start, end] with a scene over some landscape -> those landscapes; ``end`` -> all."""
    nights: dict[dt.date, set[str]] = {}
    lands = pipeline.select_landscapes(settings)
    for land in lands:
        for src in settings.sources:
            for it in search_items(src.url, intersects=land.geometry, start=start, end=end,
                                   collections=src.collections, max_cloud=src.max_cloud):
                d = solar_date(it)
                if start <= d <= end:
                    nights.setdefault(d, set()).add(land.id)
    nights[end] = {land.id for land in lands}
    return dict(sorted(nights.items()))


@flow(name="amurwatch-demo", log_prints=False)
def demo_flow(archive: str, out: str, stac_url: str, smtp_port: int | None = None, every_days: int = 1,
              progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Backfill, then replay. ``every_days=1`` replays every acquisition night; ``every_days=7`` a
    night a week (each still sees only the scenes acquired up to it), for quicker tests."""
    archive_p, out_p = Path(archive), Path(out)
    truth = json.loads((archive_p / "truth" / "truth.json").read_text())
    settings = demo_settings(archive_p, out_p, stac_url, smtp_port)
    season0, season1 = (dt.date.fromisoformat(d) for d in truth["monitoring_season"])
    base0 = dt.date(truth["baseline_years"][0], 1, 1)
    timings: dict[str, float] = {}
    nights_done: list[dict] = []
    store = AlertStore(settings.state_url())
    try:
        with run_lock(store), dask_client(settings.dask):
            t0 = time.perf_counter()
            run_range(settings, base0, season0 - dt.timedelta(days=1), notify=False,
                      progress=(lambda label, k, n: progress(f"backfill {label}", k, n)) if progress else None)
            timings["backfill_s"] = round(time.perf_counter() - t0, 1)
            if every_days > 1:
                everyone = {land.id for land in pipeline.select_landscapes(settings)}
                n = (season1 - season0).days // every_days
                nights = {season0 + dt.timedelta(days=every_days * k): everyone for k in range(n + 1)}
                nights[season1] = everyone
            else:
                nights = acquisition_nights(settings, season0, season1)
            t0 = time.perf_counter()
            last: RunSummary | None = None
            for k, (night, acquired) in enumerate(nights.items()):
                # the report and STAC record weekly and on the last night; the indicators only where
                # something new arrived (the digests go out every night there is a change)
                t1 = time.perf_counter()
                last = run_night(settings, night, final=night == season1, alerts_only_if_new=True,
                                 report=night == season1 or k % 7 == 6, only=acquired)
                nights_done.append({"night": night.isoformat(), "failed": last.failed,
                                    "seconds": round(time.perf_counter() - t1, 2),
                                    "slices": {lid: r.get("scenes", 0) for lid, r in last.landscapes.items()}})
                if progress:
                    progress(f"night {night}", k + 1, len(nights))
            timings["replay_s"] = round(time.perf_counter() - t0, 1)
    finally:
        store.close()
    return {"timings": timings, "nights": nights_done, "last": last.to_dict() if last else None,
            "settings": json.loads(settings.model_dump_json())}
