"""Alert digests by email: one per landscape, to its managers, from the outbox of the alert store.

Delivery is exactly-once per state change, as far as SMTP allows:

1. the pending outbox rows of a landscape are claimed by a digest in one transaction; the digest
   id hashes the rows' ids, and becomes the ``Message-ID``;
2. the digest is rendered (HTML with inline map and thumbnails, plus a plain-text part) and sent;
3. only when the server has accepted it (250 after DATA) are the rows marked sent, in one
   transaction.

If SMTP fails (refused, dropped mid-message, rejected), the claim is released and the rows go out
with the next run's digest: neither lost nor sent twice. If the process dies between 2 and 3, the
next run resends the *same* digest with the same ``Message-ID``, which mail systems deduplicate.

Settings never hold a password: it comes from an environment variable (``password_env``) or a
Prefect Secret block (``password_secret``). Authentication over a plaintext connection is refused
unless ``allow_plaintext_auth`` says otherwise.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import jinja2
import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from aoi.errors import AmurwatchError
from aoi.landscapes import Landscape

from .alerts import AlertStore, digests_t, outbox_t

__all__ = ["SmtpSettings", "NotifyError", "DeliveryReport", "deliver_digests", "render_digest", "resolve_password",
           "Images"]

log = logging.getLogger(__name__)

#: (map PNG or None, {alert_id: before/after PNG})
Images = tuple[bytes | None, dict[str, bytes]]


class NotifyError(AmurwatchError):
    """Mail cannot be sent as configured."""


class SmtpSettings(BaseModel):
    """How to reach the mail server. The password is not a setting: see ``password_env``."""

    model_config = ConfigDict(extra="forbid")

    host: str = "localhost"
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    user: str | None = None
    password_env: str = "AMURWATCH_SMTP_PASSWORD"  #: environment variable holding the password
    password_secret: str | None = None  #: or the name of a Prefect Secret block
    sender: str = "amurwatch <amurwatch@localhost>"
    allow_plaintext_auth: bool = False  #: send the password over an unencrypted connection (tests only)
    ca_file: Path | None = None  #: a private CA for the server's certificate
    timeout_s: float = Field(30.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _no_password(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and any(k in data for k in ("password", "pass", "smtp_password")):
            raise ValueError("a password in the settings file is refused; put it in the environment variable "
                             "named by smtp.password_env (default AMURWATCH_SMTP_PASSWORD) or in a Prefect Secret "
                             "block named by smtp.password_secret")
        return data


def resolve_password(settings: SmtpSettings) -> SecretStr | None:
    """The SMTP password from the environment, else from a Prefect Secret block, else None."""
    v = os.environ.get(settings.password_env)
    if v:
        return SecretStr(v)
    if settings.password_secret:
        from prefect.blocks.system import Secret  # only when a block is configured

        return SecretStr(Secret.load(settings.password_secret).get())
    return None


@dataclass
class DeliveryReport:
    sent: dict[str, str] = field(default_factory=dict)  #: landscape -> digest id
    written: dict[str, Path] = field(default_factory=dict)  #: dry run: landscape -> .eml
    failed: dict[str, str] = field(default_factory=dict)  #: landscape -> error (rows stay pending)
    skipped: dict[str, str] = field(default_factory=dict)  #: landscape -> why

    @property
    def ok(self) -> bool:
        return not self.failed


_env = jinja2.Environment(loader=jinja2.PackageLoader("outputs", "templates"),
                          autoescape=lambda name: not (name or "").endswith(".txt.j2"),  # HTML is always escaped
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)

EVENT_LABEL = {"new": "new", "updated": "updated", "confirmed": "confirmed", "feed_no_clear": "feed",
               "feed_no_items": "feed"}


def _digest_id(ids: list[int], landscape_id: str) -> str:
    return hashlib.sha1(f"{landscape_id}|{','.join(map(str, sorted(ids)))}".encode()).hexdigest()[:24]


def render_digest(landscape: Landscape, events: pd.DataFrame, alerts: pd.DataFrame, *, digest_id: str,
                  sender: str, images: Images = (None, {}), run_date: str | None = None,
                  report_url: str | None = None) -> EmailMessage:
    """The digest email of one landscape: HTML (inline map, thumbnails) with a plain-text part.

    ``events`` are outbox rows (``subject_id``, ``event``, ``detail``); ``alerts`` the store's rows
    of the alerts they mention (:meth:`AlertStore.frame`).
    """
    import json

    a = alerts.set_index("alert_id") if len(alerts) else alerts
    rows, notices = [], []
    for ev in events.itertuples(index=False):
        if ev.event.startswith("feed_"):
            d = json.loads(ev.detail or "{}")
            if ev.event == "feed_no_clear":
                notices.append(f"No clear observation for {d.get('days')} days (last on {d.get('last_clear')}): "
                               "clouds or snow may hide changes; alerts can be late.")
            else:
                notices.append(f"The imagery source returned no scene for {d.get('nights')} nights in a row "
                               f"(since {d.get('since')}): check the feed.")
            continue
        if ev.subject_id not in getattr(a, "index", []):
            continue
        r = a.loc[ev.subject_id]
        rows.append({"alert_id": ev.subject_id, "event": ev.event, "kind": r["kind"], "status": r["status"],
                     "date": str(r["first_detected"] or ""), "area_ha": float(r["area_ha"]),
                     "severity": r["severity"] or "", "lon": r["centroid_lon"], "lat": r["centroid_lat"]})
    # one line per alert: its latest change
    latest: dict[str, dict] = {}
    order = {"new": 0, "updated": 1, "confirmed": 2}
    for r in rows:
        if r["alert_id"] not in latest or order[r["event"]] >= order[latest[r["alert_id"]]["event"]]:
            latest[r["alert_id"]] = r
    rows = sorted(latest.values(), key=lambda r: (-r["area_ha"], r["alert_id"]))
    by_kind: dict[str, dict[str, float]] = {}
    for r in rows:
        k = by_kind.setdefault(r["kind"], {"n": 0, "ha": 0.0})
        k["n"] += 1
        k["ha"] += r["area_ha"]
    counts = {e: sum(1 for r in rows if r["event"] == e) for e in ("new", "updated", "confirmed")}
    map_png, thumbs = images
    thumbs = {k: v for k, v in thumbs.items() if k in latest}
    ctx = {"landscape": landscape, "rows": rows, "by_kind": by_kind, "counts": counts, "notices": notices,
           "has_map": map_png is not None, "thumbs": list(thumbs), "run_date": run_date or "",
           "report_url": report_url, "digest_id": digest_id}
    total_ha = sum(r["area_ha"] for r in rows)
    parts = [f"{n} {e}" for e, n in counts.items() if n]
    if rows:
        subject = (f"[amurwatch] {landscape.name}: {', '.join(parts)} "
                   f"({len(rows)} alert{'s' if len(rows) != 1 else ''}, {total_ha:.1f} ha)")
    else:
        subject = f"[amurwatch] {landscape.name}: feed notice"
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(landscape.managers)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<{digest_id}@amurwatch>"
    msg["X-Amurwatch-Landscape"] = landscape.id
    msg.set_content(_env.get_template("digest.txt.j2").render(**ctx))
    msg.add_alternative(_env.get_template("digest.html.j2").render(**ctx), subtype="html")
    html = msg.get_payload()[1]
    if map_png is not None:
        html.add_related(map_png, maintype="image", subtype="png", cid="<map>", filename="map.png")
    for aid, png in thumbs.items():
        html.add_related(png, maintype="image", subtype="png", cid=f"<{aid}>", filename=f"{aid}.png")
    return msg


def _send(msg: EmailMessage, smtp: SmtpSettings, password: SecretStr | None) -> None:
    if smtp.user and smtp.security == "none" and not smtp.allow_plaintext_auth:
        raise NotifyError(f"refusing to send the SMTP password for {smtp.user!r} over a plaintext connection to "
                          f"{smtp.host}:{smtp.port}; set smtp.security to 'starttls' or 'ssl' (or, for a test "
                          "server only, smtp.allow_plaintext_auth = true)")
    if smtp.user and password is None:
        raise NotifyError(f"SMTP user {smtp.user!r} is set but no password was found; export "
                          f"{smtp.password_env} or set smtp.password_secret to a Prefect Secret block")
    ctx = ssl.create_default_context(cafile=str(smtp.ca_file) if smtp.ca_file else None)
    if smtp.security == "ssl":
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s, context=ctx)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
    with client:
        client.ehlo()
        if smtp.security == "starttls":
            client.starttls(context=ctx)
            client.ehlo()
        if smtp.user:
            client.login(smtp.user, password.get_secret_value())
        refused = client.send_message(msg)
        if refused:
            raise NotifyError(f"the server refused recipients {sorted(refused)}")


def deliver_digests(store: AlertStore, landscapes: Mapping[str, Landscape], *, smtp: SmtpSettings | None = None,
                    dry_run_dir: str | Path | None = None,
                    images: Callable[[Landscape, pd.DataFrame], Images] | None = None,
                    run_date: str | None = None, report_url: str | None = None) -> DeliveryReport:
    """Send (or, with ``dry_run_dir``, write ``DIR/outbox/*.eml``) one digest per landscape with
    pending outbox rows. Failures are reported, not raised: the rows stay pending."""
    if smtp is None and dry_run_dir is None:
        raise NotifyError("no SMTP settings and no dry-run folder: pass smtp=SmtpSettings(...) or dry_run_dir")
    rep = DeliveryReport()
    password = resolve_password(smtp) if smtp is not None and dry_run_dir is None else None
    pending = store.pending()
    for lid in sorted(set(pending["landscape_id"])):
        land = landscapes.get(lid)
        if land is None:
            rep.skipped[lid] = "not in the AOI file: its outbox rows stay pending"
            continue
        if not land.managers and dry_run_dir is None:
            rep.skipped[lid] = "no managers listed in the AOI file: its outbox rows stay pending"
            continue
        digest_id, events = _claim(store, lid)
        alerts = store.frame(landscape_id=lid)
        alerts = alerts[alerts["alert_id"].isin(events["subject_id"])]
        try:
            imgs = images(land, alerts) if images else (None, {})
        except Exception as exc:  # a picture must never stop a mail
            log.warning("digest %s: pictures failed (%s); sending without them", lid, exc)
            imgs = (None, {})
        msg = render_digest(land, events, alerts, digest_id=digest_id,
                            sender=smtp.sender if smtp else "amurwatch <amurwatch@localhost>", images=imgs,
                            run_date=run_date, report_url=report_url)
        if dry_run_dir is not None:
            box = Path(dry_run_dir) / "outbox"
            box.mkdir(parents=True, exist_ok=True)
            path = box / f"{run_date or dt.date.today().isoformat()}-{lid}-{digest_id}.eml"
            tmp = path.with_name("." + path.name + ".tmp")
            tmp.write_bytes(bytes(msg))
            os.replace(tmp, path)
            _mark(store, digest_id, "written")
            rep.written[lid] = path
            continue
        try:
            _send(msg, smtp, password)
        except (OSError, smtplib.SMTPException, NotifyError) as exc:
            _release(store, digest_id, f"{type(exc).__name__}: {exc}")
            rep.failed[lid] = f"{type(exc).__name__}: {exc}"
            log.error("digest for %s not sent (%s); it stays pending for the next run", lid, exc)
            continue
        _mark(store, digest_id, "sent")
        rep.sent[lid] = digest_id
    return rep


def _claim(store: AlertStore, landscape_id: str) -> tuple[str, pd.DataFrame]:
    """The landscape's interrupted digest if there is one, else a new digest of all its pending rows."""
    with store.engine.begin() as conn:
        open_ = conn.execute(sa.select(digests_t.c.digest_id).where(
            (digests_t.c.landscape_id == landscape_id) & (digests_t.c.state == "sending"))).scalars().first()
        if open_ is None:
            ids = conn.execute(sa.select(outbox_t.c.id).where(
                (outbox_t.c.landscape_id == landscape_id) & outbox_t.c.sent_at.is_(None)
                & outbox_t.c.digest_id.is_(None))).scalars().all()
            open_ = _digest_id(list(ids), landscape_id)
            now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            if conn.execute(sa.select(digests_t.c.digest_id).where(digests_t.c.digest_id == open_)).first():
                conn.execute(digests_t.update().where(digests_t.c.digest_id == open_).values(
                    state="sending", attempts=digests_t.c.attempts + 1))
            else:
                conn.execute(digests_t.insert().values(digest_id=open_, landscape_id=landscape_id, state="sending",
                                                       created_at=now, attempts=1))
            conn.execute(outbox_t.update().where(outbox_t.c.id.in_(ids)).values(digest_id=open_))
        rows = conn.execute(sa.select(outbox_t).where(outbox_t.c.digest_id == open_).order_by(outbox_t.c.id)).all()
    return open_, pd.DataFrame([r._asdict() for r in rows], columns=[c.name for c in outbox_t.columns])


def _mark(store: AlertStore, digest_id: str, state: str) -> None:
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with store.engine.begin() as conn:
        conn.execute(digests_t.update().where(digests_t.c.digest_id == digest_id).values(state=state, sent_at=now))
        conn.execute(outbox_t.update().where(outbox_t.c.digest_id == digest_id).values(sent_at=now))


def _release(store: AlertStore, digest_id: str, error: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(digests_t.update().where(digests_t.c.digest_id == digest_id).values(state="failed",
                                                                                         last_error=error[:500]))
        conn.execute(outbox_t.update().where(outbox_t.c.digest_id == digest_id).values(digest_id=None))

