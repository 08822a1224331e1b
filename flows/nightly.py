"""Prefect flows: ``amurwatch-nightly`` (one night, every landscape in parallel) and
``amurwatch-backfill`` (a date range in monthly chunks, resumable).

Per landscape, as tasks: search (retried: IO) -> ingest into the cube (retried: IO) -> alerts
(not retried: compute) -> stats. A landscape that fails does not stop the others. Then, once:
feed health, the alert exports, the emails, the report, the STAC record, the watermarks of the
landscapes that succeeded, and two Prefect artifacts (markdown and table). The run ends failed if
any landscape failed, after all of that.

Tasks get small references (settings, a landscape id, dates, item dicts), never arrays; the cube
and the alert store are where data changes hands. Side effects are idempotent (cube upserts,
alert upserts, the outbox), so a retried or rerun task repeats nothing.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from aoi.errors import AmurwatchError
from aoi.landscapes import Landscape
from outputs.alerts import AlertStore
from outputs.notify import deliver_digests
from outputs.report import write_report
from outputs.stac_record import write_output_catalog
from outputs.stats import append_stats, read_stats
from sources.search import solar_date

from . import pipeline
from .cluster import dask_client
from .settings import Settings, load_settings

__all__ = ["nightly", "backfill", "run_night", "run_range", "RunSummary", "RunLockedError", "LOCK_NAME"]

log = logging.getLogger(__name__)
LOCK_NAME = "amurwatch-run"


class RunLockedError(AmurwatchError):
    """Another run holds the output folder."""


@dataclass
class RunSummary:
    kind: str
    night: str
    landscapes: dict[str, dict[str, Any]] = field(default_factory=dict)
    mail: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [k for k, v in self.landscapes.items() if v.get("status") != "ok"]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "night": self.night, "landscapes": self.landscapes, "mail": self.mail,
                "paths": self.paths, "failed": self.failed}


# -------------------------------------------------------------------------------------------- tasks
def _land(settings: Settings, landscape_id: str) -> Landscape:
    return next(land for land in pipeline.select_landscapes(settings) if land.id == landscape_id)


@task(name="search", retries=3, retry_delay_seconds=[1, 5, 20], cache_policy=NO_CACHE,
      task_run_name="search-{landscape_id}")
def search_task(settings: Settings, landscape_id: str, start: str, end: str) -> list[dict]:
    return pipeline.find_items(settings, _land(settings, landscape_id), start, end)


@task(name="ingest", retries=2, retry_delay_seconds=[5, 30], cache_policy=NO_CACHE,
      task_run_name="ingest-{landscape_id}")
def ingest_task(settings: Settings, landscape_id: str, items: list[dict]) -> dict:
    return pipeline.ingest(settings, _land(settings, landscape_id), items).to_dict()


@task(name="alerts", cache_policy=NO_CACHE, task_run_name="alerts-{landscape_id}")
def alerts_task(settings: Settings, landscape_id: str, night: str, final: bool = False,
                ingest: dict | None = None, only_if_new: bool = False) -> dict:
    if only_if_new and not final and ingest is not None and not ingest.get("slices_written"):
        return {"landscape_id": landscape_id, "night": night, "skipped": "no new observation", "upsert": {}}
    store = AlertStore(settings.state_url())
    try:
        return pipeline.update_alerts(settings, _land(settings, landscape_id), dt.date.fromisoformat(night),
                                      store=store, final=final).to_dict()
    finally:
        store.close()


@task(name="stats", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE,
      task_run_name="stats-{landscape_id}")
def stats_task(settings: Settings, landscape_id: str, ingest: dict) -> int:
    out = pipeline.out_path(settings)
    # the slices written now, and any slice of the cube the table lacks: a run killed between its
    # cube commit and this task left some, which the rerun (writing nothing new) must still add
    have = read_stats(out / "stats.parquet")
    have = have[(have["landscape_id"] == landscape_id) & (have["variable"] == "clear_fraction")]
    t = pd.DatetimeIndex(have["time"])
    done = set((t.tz_convert("UTC").tz_localize(None) if t.tz is not None else t).floor("s"))
    cube = pipeline.cube_store(settings, landscape_id)
    missing = [t for t in cube.times().floor("s") if t not in done]
    want = pd.DatetimeIndex(pd.to_datetime(list(ingest.get("times", []))).append(pd.DatetimeIndex(missing)))
    times = [t.isoformat() for t in want.floor("s").unique().sort_values()]
    df = pipeline.landscape_stats(settings, _land(settings, landscape_id), times)
    if not len(df):
        return 0
    with _file_lock(out / ".stats.lock"):
        append_stats(out / "stats.parquet", df)
    return len(df)


def _io(t, settings: Settings):
    """An IO task with the retries of the settings."""
    return t.with_options(retries=settings.io_retries, retry_delay_seconds=settings.io_retry_delay_s)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------- lock
def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def run_lock(store: AlertStore) -> Iterator[None]:
    """One run at a time per output folder. A lock left by a dead process on this host is broken."""
    me = _owner()
    held = store.acquire(LOCK_NAME, me)
    if held is not None:
        host, _, pid = held.split(" since ")[0].rpartition(":")
        alive = True
        if host == socket.gethostname() and pid.isdigit():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                alive = False
            except PermissionError:
                pass
        if alive:
            raise RunLockedError(f"another amurwatch run holds this output folder ({held}); wait for it to "
                                 "finish, or, if it is gone, delete its row from the 'locks' table of the state db")
        log.warning("breaking a stale run lock (%s: that process is gone)", held)
        store.break_lock(LOCK_NAME)
        if store.acquire(LOCK_NAME, me) is not None:
            raise RunLockedError("another amurwatch run took the output folder at the same moment")
    try:
        yield
    finally:
        store.release(LOCK_NAME, me)


# ---------------------------------------------------------------------------------------- one night
def _window_start(settings: Settings, store: AlertStore, lid: str, night: dt.date) -> dt.date:
    wm = store.watermark(lid)
    start = (wm.date() if wm else night) - dt.timedelta(days=settings.lookback_days)
    return min(start, night)


def run_night(settings: Settings, night: dt.date, *, final: bool = False, notify: bool = True,
              window: tuple[dt.date, dt.date] | None = None, kind: str = "nightly",
              progress: Callable[[str], None] | None = None, report: bool = True,
              alerts_only_if_new: bool = False, only: set[str] | None = None, inline: bool = False) -> RunSummary:
    """One run over every landscape (inside a flow). ``window`` overrides the search window.

    ``inline=True`` runs the same task bodies one after the other without Prefect (no API server,
    no task retries): the fault-injection tests kill it at random points.
    ``report=False`` skips the HTML report and the STAC record (a replay writes them now and then);
    ``alerts_only_if_new`` skips the indicators for a landscape that got no new observation;
    ``only`` restricts the night to some landscapes (a replay skips those with no acquisition).
    """
    lands = pipeline.select_landscapes(settings)
    out = pipeline.out_path(settings)
    out.mkdir(parents=True, exist_ok=True)
    store = AlertStore(settings.state_url())
    summary = RunSummary(kind, night.isoformat())
    try:
        todo = [land for land in lands if only is None or land.id in only]
        recs: dict[str, dict[str, Any]] = {land.id: {"status": "ok"} for land in todo}

        def stage(name: str, t, *args_of: Callable[[str], Any]) -> dict[str, Any]:
            """Run task ``t`` once per landscape still ok and wait for all of them (a barrier: no
            futures are passed between tasks); record failures. ``args_of(lid)`` give the arguments."""
            live = [lid for lid, rec in recs.items() if rec["status"] == "ok"]
            got = {}
            if inline:  # the task bodies, in order, without Prefect (no API, no retries)
                for lid in live:
                    try:
                        got[lid] = recs[lid][name] = t.fn(*(a(lid) for a in args_of))
                    except Exception as exc:
                        recs[lid].update(status="failed", error=f"{name}: {type(exc).__name__}: {exc}")
                return got
            futs = {lid: t.submit(*(a(lid) for a in args_of)) for lid in live}
            for lid, fut in futs.items():
                fut.wait(timeout=settings.task_timeout_s)
                if fut.state.is_completed():
                    got[lid] = fut.result()
                    recs[lid][name] = got[lid]
                    continue
                recs[lid]["status"] = "failed"
                if not fut.state.is_final():
                    recs[lid]["error"] = f"{name}: did not finish within {settings.task_timeout_s} s"
                    continue
                try:
                    fut.result(raise_on_failure=True)
                except Exception as exc:  # the landscape's error, for the summary
                    recs[lid]["error"] = f"{name}: {type(exc).__name__}: {exc}"
            return got

        windows = {land.id: window or (_window_start(settings, store, land.id, night), night) for land in todo}
        the = lambda v: (lambda lid: v)  # noqa: E731  (the same argument for every landscape)
        found = stage("search", _io(search_task, settings), the(settings), lambda lid: lid,
                      lambda lid: windows[lid][0].isoformat(), lambda lid: windows[lid][1].isoformat())
        ing = stage("ingest", _io(ingest_task, settings), the(settings), lambda lid: lid, lambda lid: found[lid])
        stage("alerts", alerts_task, the(settings), lambda lid: lid, the(night.isoformat()), the(final),
              lambda lid: ing[lid], the(alerts_only_if_new))
        stage("stats", stats_task, the(settings), lambda lid: lid, lambda lid: ing[lid])
        for lid, rec in recs.items():
            items = rec.pop("search", None)
            if items is not None:
                rec["scenes_found"] = len(items)
                ingd = rec.get("ingest", {})
                rec["scenes"] = ingd.get("slices_written", 0)
                store.record_feed(landscape_id=lid, run_date=night, n_items=len(items),
                                  last_clear=ingd.get("last_clear"), stale_clear_days=settings.stale_clear_days,
                                  empty_nights=settings.empty_nights)
            summary.landscapes[lid] = rec
            if progress:
                progress(lid)
        _publish(settings, store, lands, night, summary, notify=notify, report=report)
        for lid, rec in summary.landscapes.items():
            if rec["status"] == "ok":
                store.set_watermark(lid, dt.datetime.combine(night, dt.time.max))
    finally:
        store.close()
    return summary


def _publish(settings: Settings, store: AlertStore, lands: list[Landscape], night: dt.date, summary: RunSummary,
             *, notify: bool, report: bool = True) -> None:
    out = pipeline.out_path(settings)
    cubes = (lambda lid: pipeline.cube_store(settings, lid)) if settings.cubes else None  # noqa: E731
    paths = store.export(out)
    summary.paths.update({k: str(v) for k, v in paths.items()})
    report_path = None
    if report:
        report_path = write_report(out, night.isoformat(), lands, store=store, summary=summary.landscapes,
                                   window_days=settings.report_window_days, cube_store=cubes)
        summary.paths["report"] = str(report_path)
    if notify and (settings.smtp is not None or settings.mail_dry_run):
        from .images import digest_images

        rep = deliver_digests(store, {land.id: land for land in lands},
                              smtp=None if settings.mail_dry_run else settings.smtp,
                              dry_run_dir=out if settings.mail_dry_run else None,
                              images=digest_images(settings), run_date=night.isoformat(),
                              report_url=report_path.resolve().as_uri() if report_path else None)
        summary.mail = {"sent": rep.sent, "written": {k: str(v) for k, v in rep.written.items()},
                        "failed": rep.failed, "skipped": rep.skipped}
    if report:
        summary.paths["stac"] = str(write_output_catalog(out, lands, run_date=night.isoformat(), cube_store=cubes))


def _artifacts(summary: RunSummary) -> None:
    try:
        from prefect.artifacts import create_markdown_artifact, create_table_artifact
    except ImportError:  # pragma: no cover
        return
    rows = []
    for lid, rec in summary.landscapes.items():
        up = (rec.get("alerts") or {}).get("upsert", {})
        rows.append({"landscape": lid, "status": rec["status"], "scenes found": rec.get("scenes_found", ""),
                     "slices written": rec.get("scenes", ""),
                     "scenes skipped": len((rec.get("ingest") or {}).get("skipped", [])), "new": up.get("new", ""),
                     "updated": up.get("updated", ""), "confirmed": up.get("confirmed", ""),
                     "error": rec.get("error", "")})
    lines = [f"# amurwatch {summary.kind}: {summary.night}", "",
             f"**{len(summary.landscapes) - len(summary.failed)} of {len(summary.landscapes)} landscapes succeeded**"
             + (f"; failed: {', '.join(summary.failed)}" if summary.failed else ""), "",
             "| landscape | status | scenes | skipped | new | updated | confirmed |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['landscape']} | {r['status']} | {r['slices written']} | {r['scenes skipped']} | {r['new']} | "
              f"{r['updated']} | {r['confirmed']} |" for r in rows]
    skipped = [(lid, s) for lid, rec in summary.landscapes.items() for s in (rec.get("ingest") or {}).get("skipped", [])]
    if skipped:
        lines += ["", "Scenes skipped (retried by the next night's lookback):"]
        lines += [f"- {lid}: {s}" for lid, s in skipped]
    if summary.mail:
        lines += ["", f"Mail: sent {sorted(summary.mail.get('sent', {}))}, failed {sorted(summary.mail.get('failed', {}))}"]
    if "report" in summary.paths:
        lines += ["", f"Report: `{summary.paths['report']}`"]
    key = f"amurwatch-{summary.kind}"
    create_markdown_artifact("\n".join(lines), key=key, description=f"amurwatch {summary.kind} {summary.night}")
    create_table_artifact(rows, key=f"{key}-table", description="per landscape")


def _finish(summary: RunSummary) -> dict:
    _artifacts(summary)
    logger = get_run_logger()
    for lid, rec in summary.landscapes.items():
        logger.info("%s: %s%s", lid, rec["status"], f" ({rec['error']})" if rec.get("error") else "")
    if summary.failed:
        raise RuntimeError(f"{len(summary.failed)} landscape(s) failed: "
                           + "; ".join(f"{k}: {summary.landscapes[k].get('error')}" for k in summary.failed)
                           + f". The others completed: {sorted(set(summary.landscapes) - set(summary.failed))}")
    return summary.to_dict()


# -------------------------------------------------------------------------------------------- flows
@flow(name="amurwatch-nightly", log_prints=True)
def nightly(night: str | None = None, settings_file: str | None = None, overrides: dict[str, Any] | None = None,
            final: bool = False) -> dict:
    """Process every landscape for one night: the scenes since each watermark (with the lookback)."""
    settings = load_settings(settings_file, **(overrides or {}))
    day = dt.date.fromisoformat(night) if night else dt.datetime.now(dt.timezone.utc).date()
    store = AlertStore(settings.state_url())
    try:
        with run_lock(store), dask_client(settings.dask):
            summary = run_night(settings, day, final=final)
    finally:
        store.close()
    return _finish(summary)


def month_chunks(start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    out, cur = [], start
    while cur <= end:
        nxt = (pd.Timestamp(cur) + pd.offsets.MonthBegin(1)).date()
        out.append((cur, min(end, nxt - dt.timedelta(days=1))))
        cur = nxt
    return out


def run_range(settings: Settings, start: dt.date, end: dt.date, *, notify: bool,
              progress: Callable[[str, int, int], None] | None = None) -> RunSummary:
    """Ingest [start, end] in monthly chunks (resumable: finished chunks are recorded), then run the
    alerts and publish for ``end``."""
    if end < start:
        raise ValueError(f"start {start} is after end {end}; swap them")
    store = AlertStore(settings.state_url())
    chunks = month_chunks(start, end)
    lands = pipeline.select_landscapes(settings)
    try:
        # one search per landscape for the whole range (IO, retried), then ingest month by month
        found = {land.id: _io(search_task, settings).submit(settings, land.id, start.isoformat(), end.isoformat())
                 for land in lands}
        items: dict[str, list[dict]] = {}
        for lid, fut in found.items():
            fut.wait()
            items[lid] = fut.result() if fut.state.is_completed() else []
        for k, (lo, hi) in enumerate(chunks):
            futures = {}
            for land in lands:
                key = f"range:{land.id}:{lo}:{hi}"
                if store.is_done(key) or not found[land.id].state.is_completed():
                    continue
                month = [it for it in items[land.id] if lo <= solar_date(it) <= hi]
                futures[land.id] = _io(ingest_task, settings).submit(settings, land.id, month)
            stats = {}
            for lid, i in futures.items():
                i.wait(timeout=settings.task_timeout_s)
                if i.state.is_completed():
                    stats[lid] = (i.result(), stats_task.submit(settings, lid, i.result()))
            for lid, (res, st) in stats.items():
                st.wait(timeout=settings.task_timeout_s)
                if st.state.is_completed():
                    store.mark_done(f"range:{lid}:{lo}:{hi}", {"slices": res.get("slices_written", 0)})
            if progress:
                progress(f"{lo:%Y-%m}", k + 1, len(chunks))
    finally:
        store.close()
    return run_night(settings, end, final=True, notify=notify, window=(start, end), kind="backfill")


@flow(name="amurwatch-backfill", log_prints=True)
def backfill(start: str, end: str, settings_file: str | None = None, overrides: dict[str, Any] | None = None,
             notify: bool = False) -> dict:
    """Ingest a date range in monthly chunks (resumable), build the baselines, run the alerts for ``end``."""
    settings = load_settings(settings_file, **(overrides or {}))
    s, e = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    store = AlertStore(settings.state_url())
    try:
        with run_lock(store), dask_client(settings.dask):
            summary = run_range(settings, s, e, notify=notify)
    finally:
        store.close()
    return _finish(summary)

