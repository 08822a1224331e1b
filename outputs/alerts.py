"""The alert store: a transactional table of alerts with a lifecycle, their history, and the outbox.

A database URL reaches it (SQLAlchemy): ``sqlite:///DIR/state.db`` by default, so PostgreSQL can
follow (``postgresql+psycopg://...``). Every change a run makes to one landscape happens in one
transaction, together with the outbox rows that will mail it: a crash leaves either all of it or
none of it.

Lifecycle (README "Alert schema and lifecycle"):

- ``new``: first seen, not yet confirmed;
- ``updated``: seen again with its area changed by at least ``min_change`` (5%) or its severity
  changed, still unconfirmed;
- ``confirmed``: the processors confirmed it (repeated detections); a confirmed alert that grows
  keeps this status, and the change is still mailed as ``updated``;
- ``expired``: never confirmed within 180 days of its first detection, as GFW does.

Each state change is one outbox row, unique on (alert, event, version): a rerun of the same night
adds none.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any, Iterable

import geopandas as gpd
import pandas as pd
import shapely
import sqlalchemy as sa

from aoi.errors import AmurwatchError

__all__ = ["AlertStore", "AlertStoreError", "UpsertReport", "EXPORT_COLUMNS", "STATUSES", "KINDS",
           "EXPIRE_AFTER_DAYS", "MAILED_EVENTS"]

KINDS = ("forest_loss", "burn_scar", "wetland_loss", "grassland_degradation")
STATUSES = ("new", "updated", "confirmed", "expired")
MAILED_EVENTS = ("new", "updated", "confirmed", "feed_no_clear", "feed_no_items")
EXPIRE_AFTER_DAYS = 180
#: the public columns of alerts.parquet / alerts.geojson (ARCHITECTURE contract first)
EXPORT_COLUMNS = ["alert_id", "landscape_id", "kind", "status", "first_detected", "area_ha", "severity",
                  "severity_ha", "last_seen", "confirmed_on", "expired_on", "version", "centroid_lon",
                  "centroid_lat", "geometry"]

_meta = sa.MetaData()
alerts_t = sa.Table(
    "alerts", _meta,
    sa.Column("alert_id", sa.String(80), primary_key=True),
    sa.Column("landscape_id", sa.String(64), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("first_detected", sa.Date),
    sa.Column("last_seen", sa.Date, nullable=False),
    sa.Column("area_ha", sa.Float, nullable=False),
    sa.Column("severity", sa.String(32)),
    sa.Column("severity_ha", sa.Text),  # JSON
    sa.Column("centroid_lon", sa.Float),
    sa.Column("centroid_lat", sa.Float),
    sa.Column("geometry", sa.LargeBinary, nullable=False),  # WKB, EPSG:4326
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("confirmed_on", sa.Date),
    sa.Column("expired_on", sa.Date),
)
observations_t = sa.Table(
    "observations", _meta,
    sa.Column("alert_id", sa.String(80), sa.ForeignKey("alerts.alert_id"), primary_key=True),
    sa.Column("run_date", sa.Date, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("area_ha", sa.Float, nullable=False),
    sa.Column("severity", sa.String(32)),
)
outbox_t = sa.Table(
    "outbox", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("landscape_id", sa.String(64), nullable=False, index=True),
    sa.Column("subject_id", sa.String(80), nullable=False),  # an alert id, or a feed notice key
    sa.Column("event", sa.String(24), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("run_date", sa.Date, nullable=False),
    sa.Column("detail", sa.Text),  # JSON, for feed notices
    sa.Column("digest_id", sa.String(40), index=True),
    sa.Column("sent_at", sa.DateTime),
    sa.UniqueConstraint("subject_id", "event", "version", name="one_mail_per_change"),
)
digests_t = sa.Table(
    "digests", _meta,
    sa.Column("digest_id", sa.String(40), primary_key=True),
    sa.Column("landscape_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(12), nullable=False),  # sending | sent | written
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("sent_at", sa.DateTime),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
)
feed_t = sa.Table(
    "feed", _meta,
    sa.Column("landscape_id", sa.String(64), primary_key=True),
    sa.Column("last_run", sa.Date),
    sa.Column("last_clear", sa.Date),
    sa.Column("empty_nights", sa.Integer, nullable=False, default=0),
    sa.Column("watermark", sa.DateTime),  #: acquisitions up to here are in the outputs
)
progress_t = sa.Table(
    "progress", _meta,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("done_at", sa.DateTime, nullable=False),
    sa.Column("detail", sa.Text),
)
locks_t = sa.Table(
    "locks", _meta,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("since", sa.DateTime, nullable=False),
)


class AlertStoreError(AmurwatchError):
    """Bad input to the alert store."""


class UpsertReport(dict):
    """Counts of what one upsert did: ``new``, ``updated``, ``confirmed``, ``unchanged``, ``expired``."""


def _wkb(geom) -> bytes:
    return shapely.to_wkb(geom, output_dimension=2)


def _date(v) -> dt.date | None:
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NaT:
        return None
    return pd.Timestamp(v).date()


class AlertStore:
    """Alerts, their history, the outbox and the feed health of every landscape, in one database."""

    def __init__(self, url: str, *, echo: bool = False):
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(url, echo=echo)
        if self.engine.dialect.name == "sqlite":
            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn, _):  # WAL: readers never block the nightly writer; FULL: a commit survives a crash
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()
        _meta.create_all(self.engine)

    @classmethod
    def at(cls, out_dir: str | Path) -> "AlertStore":
        """The default store of an output directory: ``sqlite:///OUT/state.db``."""
        return cls(f"sqlite:///{Path(out_dir).resolve() / 'state.db'}")

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------------------------------ upsert
    def upsert(self, candidates: gpd.GeoDataFrame, *, landscape_id: str, run_date: str | dt.date,
               min_change: float = 0.05, expire_after_days: int = EXPIRE_AFTER_DAYS) -> UpsertReport:
        """Apply one run's alert candidates for one landscape, in one transaction.

        Parameters
        ----------
        candidates : GeoDataFrame in EPSG:4326
            Rows from :func:`processors.vectorize.vectorize_alerts`: ``alert_id``, ``kind``,
            ``status`` (``confirmed`` or anything else for unconfirmed), ``first_detected``,
            ``area_ha``, ``severity``, optionally ``severity_ha``, ``centroid_lon``, ``centroid_lat``.
        run_date : date
            The night the candidates describe.
        min_change : float
            Relative area change that counts as an update.
        """
        day = _date(run_date)
        cand = self._check(candidates, landscape_id)
        rep = UpsertReport(new=0, updated=0, confirmed=0, unchanged=0, expired=0)
        with self.engine.begin() as conn:
            ids = list(cand["alert_id"]) if len(cand) else []
            existing = {r.alert_id: r for r in conn.execute(
                sa.select(alerts_t).where(alerts_t.c.alert_id.in_(ids)))} if ids else {}
            for row in cand.itertuples(index=False):
                rec = {
                    "landscape_id": landscape_id, "kind": row.kind, "first_detected": _date(row.first_detected),
                    "last_seen": day, "area_ha": float(row.area_ha), "severity": _none(getattr(row, "severity", None)),
                    "severity_ha": _json(getattr(row, "severity_ha", None)),
                    "centroid_lon": _none(getattr(row, "centroid_lon", None)),
                    "centroid_lat": _none(getattr(row, "centroid_lat", None)),
                    "geometry": _wkb(row.geometry),
                }
                confirmed = str(row.status) == "confirmed"
                old = existing.get(row.alert_id)
                event = None
                if old is None:
                    status = "confirmed" if confirmed else "new"
                    version = 1
                    conn.execute(alerts_t.insert().values(alert_id=row.alert_id, status=status, version=version,
                                                          confirmed_on=day if confirmed else None, **rec))
                    event = status
                else:
                    grew = abs(rec["area_ha"] - old.area_ha) >= min_change * max(old.area_ha, 1e-9)
                    changed = grew or rec["severity"] != old.severity
                    version = old.version
                    if confirmed and old.status != "confirmed":
                        status, event = "confirmed", "confirmed"
                    elif changed:
                        status, event = ("confirmed" if old.status == "confirmed" else "updated"), "updated"
                    else:
                        status = old.status
                    if event:
                        version += 1
                        upd = dict(rec, status=status, version=version, expired_on=None)
                        if event == "confirmed":
                            upd["confirmed_on"] = day
                    else:
                        upd = {"last_seen": max(day, old.last_seen)}
                    conn.execute(alerts_t.update().where(alerts_t.c.alert_id == row.alert_id).values(**upd))
                rep[event or "unchanged"] += 1
                obs = {"status": status, "area_ha": rec["area_ha"], "severity": rec["severity"]}
                hit = conn.execute(observations_t.update().where(
                    (observations_t.c.alert_id == row.alert_id) & (observations_t.c.run_date == day)).values(**obs))
                if hit.rowcount == 0:
                    conn.execute(observations_t.insert().values(alert_id=row.alert_id, run_date=day, **obs))
                if event:
                    self._queue(conn, landscape_id, row.alert_id, event, version, day)
            # expiry: never confirmed within the window
            limit = day - dt.timedelta(days=expire_after_days)
            stale = conn.execute(sa.select(alerts_t.c.alert_id).where(
                (alerts_t.c.landscape_id == landscape_id) & alerts_t.c.status.in_(("new", "updated"))
                & (alerts_t.c.first_detected <= limit))).scalars().all()
            if stale:
                conn.execute(alerts_t.update().where(alerts_t.c.alert_id.in_(stale)).values(
                    status="expired", expired_on=day, version=alerts_t.c.version + 1))
                rep["expired"] = len(stale)
        return rep

    def _check(self, candidates: gpd.GeoDataFrame, landscape_id: str) -> gpd.GeoDataFrame:
        need = ["alert_id", "kind", "status", "first_detected", "area_ha", "geometry"]
        missing = [c for c in need if c not in candidates.columns]
        if missing:
            raise AlertStoreError(f"alert candidates lack the columns {missing}; vectorise them with "
                                  "processors.vectorize.vectorize_alerts")
        if len(candidates) and (candidates.crs is None or candidates.crs.to_epsg() != 4326):
            raise AlertStoreError(f"alert candidates are in {candidates.crs}, not EPSG:4326; use .to_crs(4326)")
        bad = sorted(set(candidates["kind"]) - set(KINDS))
        if bad:
            raise AlertStoreError(f"unknown alert kind(s) {bad}; expected one of {list(KINDS)}")
        if "landscape_id" in candidates.columns:
            other = sorted(set(candidates["landscape_id"]) - {landscape_id})
            if other:
                raise AlertStoreError(f"candidates of landscape(s) {other} passed for {landscape_id!r}")
        if not candidates["alert_id"].is_unique:
            raise AlertStoreError("alert candidates repeat an alert_id: "
                                  f"{sorted(candidates['alert_id'][candidates['alert_id'].duplicated()])[:3]}")
        return candidates

    @staticmethod
    def _queue(conn, landscape_id: str, subject: str, event: str, version: int, day: dt.date,
               detail: dict | None = None) -> bool:
        exists = conn.execute(sa.select(outbox_t.c.id).where(
            (outbox_t.c.subject_id == subject) & (outbox_t.c.event == event) & (outbox_t.c.version == version))).first()
        if exists:
            return False
        conn.execute(outbox_t.insert().values(landscape_id=landscape_id, subject_id=subject, event=event,
                                              version=version, run_date=day,
                                              detail=json.dumps(detail, sort_keys=True) if detail else None))
        return True

    # ------------------------------------------------------------------------------------- feed health
    def record_feed(self, *, landscape_id: str, run_date: str | dt.date, n_items: int,
                    last_clear: str | dt.date | None, stale_clear_days: int = 21, empty_nights: int = 3) -> list[str]:
        """Record one night's search result for a landscape; queue feed-health notices.

        A notice is queued once per episode: when the landscape has had no clear observation for
        ``stale_clear_days`` days, and when the source has returned nothing for ``empty_nights``
        nights in a row. Returns the notices queued now.
        """
        day = _date(run_date)
        queued = []
        with self.engine.begin() as conn:
            cur = conn.execute(sa.select(feed_t).where(feed_t.c.landscape_id == landscape_id)).first()
            prev_clear = cur.last_clear if cur else None
            clear = max([d for d in (prev_clear, _date(last_clear)) if d is not None], default=None)
            if cur is not None and cur.last_run == day:  # a rerun of the same night counts once
                empty = cur.empty_nights
            else:
                empty = (cur.empty_nights if cur else 0) + 1 if n_items == 0 else 0
            values = {"last_run": day, "last_clear": clear, "empty_nights": empty}
            if cur is None:
                conn.execute(feed_t.insert().values(landscape_id=landscape_id, **values))
            else:
                conn.execute(feed_t.update().where(feed_t.c.landscape_id == landscape_id).values(**values))
            if clear is not None and (day - clear).days >= stale_clear_days:
                key = f"feed-clear-{landscape_id}-{clear.isoformat()}"  # one notice per episode
                if self._queue(conn, landscape_id, key, "feed_no_clear", 1, day,
                               {"last_clear": clear.isoformat(), "days": (day - clear).days}):
                    queued.append("feed_no_clear")
            if empty >= empty_nights:
                start = day - dt.timedelta(days=empty - 1)
                key = f"feed-empty-{landscape_id}-{start.isoformat()}"
                if self._queue(conn, landscape_id, key, "feed_no_items", 1, day, {"since": start.isoformat(),
                                                                                   "nights": empty}):
                    queued.append("feed_no_items")
        return queued

    # -------------------------------------------------------------------------------- watermark, progress
    def watermark(self, landscape_id: str) -> dt.datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(feed_t.c.watermark).where(feed_t.c.landscape_id == landscape_id)).scalar()

    def set_watermark(self, landscape_id: str, when: dt.datetime) -> None:
        """Move the landscape's watermark forward (never back)."""
        when = when.replace(tzinfo=None)
        with self.engine.begin() as conn:
            cur = conn.execute(sa.select(feed_t).where(feed_t.c.landscape_id == landscape_id)).first()
            if cur is None:
                conn.execute(feed_t.insert().values(landscape_id=landscape_id, empty_nights=0, watermark=when))
            elif cur.watermark is None or when > cur.watermark:
                conn.execute(feed_t.update().where(feed_t.c.landscape_id == landscape_id).values(watermark=when))

    def is_done(self, key: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(progress_t.c.key).where(progress_t.c.key == key)).first() is not None

    def mark_done(self, key: str, detail: dict | None = None) -> None:
        with self.engine.begin() as conn:
            if conn.execute(sa.select(progress_t.c.key).where(progress_t.c.key == key)).first() is None:
                conn.execute(progress_t.insert().values(key=key, done_at=dt.datetime.now(dt.timezone.utc).replace(
                    tzinfo=None), detail=json.dumps(detail) if detail else None))

    def acquire(self, name: str, owner: str) -> str | None:
        """Take the named lock; returns None on success, else who holds it and since when."""
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        try:
            with self.engine.begin() as conn:
                conn.execute(locks_t.insert().values(name=name, owner=owner, since=now))
            return None
        except sa.exc.IntegrityError:
            with self.engine.connect() as conn:
                r = conn.execute(sa.select(locks_t).where(locks_t.c.name == name)).first()
            return f"{r.owner} since {r.since:%Y-%m-%d %H:%M:%S} UTC" if r else "another run"

    def release(self, name: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(locks_t.delete().where((locks_t.c.name == name) & (locks_t.c.owner == owner)))

    def break_lock(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(locks_t.delete().where(locks_t.c.name == name))

    # -------------------------------------------------------------------------------------------- read
    def frame(self, *, landscape_id: str | None = None, statuses: Iterable[str] | None = None) -> gpd.GeoDataFrame:
        """The alerts as a GeoDataFrame (EPSG:4326) with :data:`EXPORT_COLUMNS`, sorted by id."""
        q = sa.select(alerts_t).order_by(alerts_t.c.alert_id)
        if landscape_id:
            q = q.where(alerts_t.c.landscape_id == landscape_id)
        if statuses:
            q = q.where(alerts_t.c.status.in_(list(statuses)))
        with self.engine.connect() as conn:
            rows = [r._asdict() for r in conn.execute(q)]
        df = pd.DataFrame(rows, columns=[c.name for c in alerts_t.columns])
        geom = gpd.GeoSeries(shapely.from_wkb(df["geometry"].tolist()) if len(df) else [], crs=4326)
        df = df.drop(columns="geometry")
        for c in ("first_detected", "last_seen", "confirmed_on", "expired_on"):
            df[c] = pd.to_datetime(df[c]).dt.date if len(df) else pd.Series(dtype="object")
        df["version"] = df["version"].astype("int64")
        gdf = gpd.GeoDataFrame(df, geometry=geom.values, crs=4326)
        return gdf[EXPORT_COLUMNS]

    def history(self, alert_id: str) -> pd.DataFrame:
        """The observation history of one alert, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(observations_t).where(observations_t.c.alert_id == alert_id)
                                .order_by(observations_t.c.run_date)).all()
        return pd.DataFrame([r._asdict() for r in rows], columns=[c.name for c in observations_t.columns])

    def pending(self, landscape_id: str | None = None) -> pd.DataFrame:
        """Outbox rows not yet delivered."""
        q = sa.select(outbox_t).where(outbox_t.c.sent_at.is_(None) & outbox_t.c.event.in_(MAILED_EVENTS))
        if landscape_id:
            q = q.where(outbox_t.c.landscape_id == landscape_id)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(outbox_t.c.id)).all()
        return pd.DataFrame([r._asdict() for r in rows], columns=[c.name for c in outbox_t.columns])

    def feed(self) -> pd.DataFrame:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(feed_t).order_by(feed_t.c.landscape_id)).all()
        return pd.DataFrame([r._asdict() for r in rows], columns=[c.name for c in feed_t.columns])

    # ------------------------------------------------------------------------------------------ export
    def export(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``alerts.parquet`` (GeoParquet) and ``alerts.geojson`` into ``out_dir``, atomically."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        gdf = self.frame()
        pq, gj = out / "alerts.parquet", out / "alerts.geojson"
        tmp = out / ".alerts.parquet.tmp"
        gdf.to_parquet(tmp, index=False, schema_version="1.1.0", write_covering_bbox=True)
        os.replace(tmp, pq)
        g2 = gdf.copy()
        for c in ("first_detected", "last_seen", "confirmed_on", "expired_on"):
            g2[c] = g2[c].map(lambda d: d.isoformat() if d is not None and not pd.isna(d) else None)
        tmp = out / ".alerts.geojson.tmp"
        if len(g2):
            g2.to_file(tmp, driver="GeoJSON")
        else:
            tmp.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
        os.replace(tmp, gj)
        return {"parquet": pq, "geojson": gj}


def _json(v: Any) -> str | None:
    v = _none(v)
    return json.dumps(v, sort_keys=True) if v is not None else None


def _none(v: Any) -> Any:
    if v is None:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v
