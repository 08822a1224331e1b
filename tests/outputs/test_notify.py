"""Alert digests through a real SMTP server (aiosmtpd) on loopback: content, escaping, outbox semantics."""

from __future__ import annotations

import email
from email import policy

import pyproj
import pytest

from aoi import load_landscapes
from outputs.alerts import AlertStore
from outputs.cube import CubeStore, open_cube
from outputs.maps import alert_map_png, before_after_png
from outputs.notify import NotifyError, SmtpSettings, deliver_digests

from .conftest import DroppingServer, Inbox, free_port, make_alerts, make_slices

ZH = next(land for land in load_landscapes() if land.id == "zhalong")


def landscape(name="Zhalong", managers=("warden@zhalong.example.org", "gis@zhalong.example.org")):
    return ZH.model_copy(update={"name": name, "managers": list(managers)})


def _lonlat(x, y, epsg=32651):
    return pyproj.Transformer.from_crs(epsg, 4326, always_xy=True).transform(x, y)


@pytest.fixture
def store(tmp_path):
    s = AlertStore.at(tmp_path)
    lon, lat = _lonlat(450200, 5679800)
    s.upsert(make_alerts([("fore-zhalong-a", "forest_loss", "new", "2026-05-06", 1.2, None, lon, lat),
                          ("burn-zhalong-b", "burn_scar", "confirmed", "2026-05-06", 6.5, "moderate-high",
                           lon + 0.001, lat)]), landscape_id="zhalong", run_date="2026-05-07")
    yield s
    s.close()


def smtp(port, **kw):
    return SmtpSettings(host="127.0.0.1", port=port, security="none", sender="amurwatch <alerts@example.org>", **kw)


def test_digest_content_recipients_inline_map_and_text(store, inbox, tmp_path):
    land = landscape()
    cube_url = tmp_path / "cubes" / "zhalong.zarr"
    CubeStore(cube_url).write(make_slices(["2026-05-01", "2026-05-11"]))
    cube = open_cube(cube_url)

    def images(lnd, alerts):
        thumbs = {r.alert_id: before_after_png(cube, r._asdict() | {"geometry": r.geometry}, epsg=32651, min_clear=0.5)
                  for r in alerts.itertuples()}
        return alert_map_png(lnd, alerts), {k: v for k, v in thumbs.items() if v}

    rep = deliver_digests(store, {"zhalong": land}, smtp=smtp(inbox.port), images=images, run_date="2026-05-07")
    assert rep.ok and list(rep.sent) == ["zhalong"]
    assert len(inbox.messages) == 1
    frm, rcpt = inbox.envelopes[0]
    assert frm == "alerts@example.org" and sorted(rcpt) == sorted(land.managers)
    m = inbox.messages[0]
    assert m["Subject"] == "[amurwatch] Zhalong: 1 new, 1 confirmed (2 alerts, 7.7 ha)"
    text = m.get_body(("plain",)).get_content()
    html = m.get_body(("html",)).get_content()
    for needle in ("burn-zhalong-b", "fore-zhalong-a", "moderate-high", "2026-05-06", "6.50"):
        assert needle in text and needle in html
    assert text.index("burn-zhalong-b") < text.index("fore-zhalong-a")  # largest first
    imgs = [p for p in m.walk() if p.get_content_type() == "image/png"]
    cids = {p["Content-ID"] for p in imgs}
    assert "<map>" in cids and 'src="cid:map"' in html
    assert all(p.get_content()[:8] == b"\x89PNG\r\n\x1a\n" for p in imgs)
    assert len(imgs) >= 2, "before/after thumbnails are missing"


def test_user_strings_are_escaped(store, inbox):
    land = landscape(name="<script>alert('x')</script> & Co")
    deliver_digests(store, {"zhalong": land}, smtp=smtp(inbox.port))
    html = inbox.messages[0].get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; Co" in html


def test_each_change_is_mailed_once(store, inbox):
    lands = {"zhalong": landscape()}
    deliver_digests(store, lands, smtp=smtp(inbox.port))
    rep = deliver_digests(store, lands, smtp=smtp(inbox.port))  # a rerun: nothing pending
    assert rep.sent == {} and len(inbox.messages) == 1
    lon, lat = _lonlat(450200, 5679800)
    store.upsert(make_alerts([("fore-zhalong-a", "forest_loss", "confirmed", "2026-05-06", 1.2, None, lon, lat)]),
                 landscape_id="zhalong", run_date="2026-05-12")
    deliver_digests(store, lands, smtp=smtp(inbox.port))
    assert len(inbox.messages) == 2
    assert "1 confirmed (1 alert" in inbox.messages[1]["Subject"]
    assert len(set(inbox.message_ids())) == 2


def test_smtp_down_for_one_run_then_up_delivers_exactly_once(store):
    port = free_port()
    lands = {"zhalong": landscape()}
    rep = deliver_digests(store, lands, smtp=smtp(port, timeout_s=5))  # nothing listens: refused
    assert not rep.ok and "ConnectionRefusedError" in rep.failed["zhalong"]
    assert len(store.pending()) == 2
    box = Inbox(port).start()
    try:
        rep = deliver_digests(store, lands, smtp=smtp(port))
        assert rep.ok and len(box.messages) == 1
        deliver_digests(store, lands, smtp=smtp(port))
        assert len(box.messages) == 1 and len(store.pending()) == 0
    finally:
        box.stop()


def test_a_connection_dropped_mid_message_leaves_the_mail_pending(store, inbox):
    flaky = DroppingServer()
    try:
        rep = deliver_digests(store, {"zhalong": landscape()}, smtp=smtp(flaky.port, timeout_s=5))
    finally:
        flaky.close()
    assert flaky.drops == 1 and "zhalong" in rep.failed
    assert len(store.pending()) == 2
    rep = deliver_digests(store, {"zhalong": landscape()}, smtp=smtp(inbox.port))
    assert rep.ok and len(inbox.messages) == 1 and len(store.pending()) == 0


def test_a_crash_after_sending_resends_the_same_message_id(store, inbox, monkeypatch):
    import outputs.notify as notify

    real = notify._mark

    def crash(*a, **k):
        raise KeyboardInterrupt("killed after the server accepted the mail")

    monkeypatch.setattr(notify, "_mark", crash)
    with pytest.raises(KeyboardInterrupt):
        deliver_digests(store, {"zhalong": landscape()}, smtp=smtp(inbox.port))
    monkeypatch.setattr(notify, "_mark", real)
    deliver_digests(store, {"zhalong": landscape()}, smtp=smtp(inbox.port))
    ids = inbox.message_ids()
    assert len(ids) == 2 and len(set(ids)) == 1, "the resend must carry the same Message-ID (deduplicated downstream)"
    assert len(store.pending()) == 0


def test_dry_run_writes_eml_files(store, tmp_path):
    rep = deliver_digests(store, {"zhalong": landscape()}, dry_run_dir=tmp_path, run_date="2026-05-07")
    (path,) = rep.written.values()
    assert path.parent == tmp_path / "outbox" and path.suffix == ".eml"
    m = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert "Zhalong" in m["Subject"] and m.get_body(("plain",)) is not None
    assert len(store.pending()) == 0


def test_authentication_and_plaintext_refusal(store, monkeypatch):
    port = free_port()
    box = Inbox(port, auth=("ranger", "s3cret-planted")).start()
    try:
        monkeypatch.setenv("AMURWATCH_SMTP_PASSWORD", "s3cret-planted")
        rep = deliver_digests(store, {"zhalong": landscape()}, smtp=smtp(port, user="ranger"))
        assert "refusing to send the SMTP password" in rep.failed["zhalong"] and box.messages == []
        rep = deliver_digests(store, {"zhalong": landscape()},
                              smtp=smtp(port, user="ranger", allow_plaintext_auth=True))
        assert rep.ok and len(box.messages) == 1
        assert "s3cret-planted" not in box.messages[0].as_string()
    finally:
        box.stop()


def test_settings_refuse_a_password_and_need_a_destination(store):
    with pytest.raises(ValueError, match="password in the settings file is refused.*AMURWATCH_SMTP_PASSWORD"):
        SmtpSettings.model_validate({"host": "mail.example.org", "password": "hunter2"})
    with pytest.raises(ValueError, match="port"):
        SmtpSettings.model_validate({"port": 70000})
    with pytest.raises(NotifyError, match="no SMTP settings and no dry-run folder"):
        deliver_digests(store, {"zhalong": landscape()})


def test_feed_notices_are_mailed(store, inbox):
    store.record_feed(landscape_id="zhalong", run_date="2026-05-01", n_items=1, last_clear="2026-05-01")
    store.record_feed(landscape_id="zhalong", run_date="2026-05-25", n_items=1, last_clear=None)
    deliver_digests(store, {"zhalong": landscape()}, smtp=smtp(inbox.port))
    text = inbox.messages[0].get_body(("plain",)).get_content()
    assert "FEED NOTICE: No clear observation for 24 days (last on 2026-05-01)" in text
