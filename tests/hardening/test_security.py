"""Security: a planted SMTP password never leaks, user strings are escaped, ids never become paths
outside the output folder, and plaintext authentication is refused unless allowed."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from aoi.errors import AoiValidationError
from aoi.landscapes import load_landscapes
from outputs.alerts import AlertStore
from outputs.notify import NotifyError, SmtpSettings, deliver_digests
from outputs.report import write_report

from ..flows.test_e2e import _latest_artifact
from ..outputs.conftest import Inbox, free_port

PLANTED = "pl4nted-Secr3t-7f0e2c"


def _grep_tree(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.slow
def test_a_planted_smtp_password_never_leaks(replay, prefect_harness, monkeypatch, caplog, tmp_path):
    """A real nightly flow run (Prefect harness) that mails with SMTP AUTH, once accepted and once
    refused by the server: the password is in no output file, log record, artifact or Prefect's
    own database."""
    from flows.demo import demo_settings
    from flows.nightly import nightly

    out = tmp_path / "out"
    shutil.copytree(replay["snapshot"], out)
    monkeypatch.setenv("AMURWATCH_SMTP_PASSWORD", PLANTED)
    caplog.set_level(logging.DEBUG)
    results = []
    for night, server_password in (("2026-06-17", PLANTED), ("2026-06-24", "another-password")):
        port = free_port()
        box = Inbox(port, auth=("ranger", server_password)).start()
        try:
            s = demo_settings(replay["archive"], out, replay["api"], port)
            over = json.loads(s.model_dump_json())
            over["smtp"].update(user="ranger", allow_plaintext_auth=True)
            over["dask"] = {"n_workers": 1, "threads_per_worker": 2, "processes": False}
            results.append(nightly(night, overrides=over))
            if server_password == PLANTED:
                assert box.messages, "the digest was not sent: the AUTH path was not exercised"
                assert all(PLANTED not in m.as_string() for m in box.messages)
        finally:
            box.stop()
    assert results[1]["mail"]["failed"], "the refused login should leave the digest pending"
    assert PLANTED not in json.dumps(results, default=str)
    assert PLANTED not in caplog.text
    assert _grep_tree(out, PLANTED.encode()) == []
    for key in ("amurwatch-nightly", "amurwatch-nightly-table"):
        assert PLANTED not in str(_latest_artifact(key).data)
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_HOME

    homes = {Path(str(PREFECT_HOME.value()))}
    url = str(PREFECT_API_DATABASE_CONNECTION_URL.value() or "")
    if "sqlite" in url:
        homes.add(Path(url.split("///", 1)[-1]).parent)
    for h in homes:
        if h.exists():
            assert _grep_tree(h, PLANTED.encode()) == [], h


def test_user_strings_are_escaped_in_the_report(tmp_path):
    land = next(iter(load_landscapes())).model_copy(update={"name": "<script>alert('x')</script> & co"})
    store = AlertStore.at(tmp_path)
    try:
        page = write_report(tmp_path, "2026-06-30", [land], store=store,
                            summary={land.id: {"status": "failed", "error": "<img src=x onerror=alert(1)>"}})
    finally:
        store.close()
    html = page.read_text()
    assert "<script>alert(" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x" in html


@pytest.mark.parametrize("bad", ["../../etc", "a/b", "..", "/abs", "zhalong\\..\\x", "Zhalong", "x%2f..%2fy"])
def test_landscape_ids_that_could_become_paths_are_refused(tmp_path, bad):
    fc = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "id": bad, "geometry": {"type": "Polygon", "coordinates": [[
            [124.0, 47.0], [124.1, 47.0], [124.1, 47.1], [124.0, 47.1], [124.0, 47.0]]]},
        "properties": {"id": bad, "name": "x", "ecosystems": ["wetland"], "country": ["CN"],
                       "managers": ["a@example.org"], "boundary_source": "approximate"}}]}
    (tmp_path / "aoi.geojson").write_text(json.dumps(fc))
    with pytest.raises(AoiValidationError, match="not a slug"):
        load_landscapes(tmp_path / "aoi.geojson")


def test_plaintext_auth_is_refused_unless_allowed_and_passwords_are_not_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("AMURWATCH_SMTP_PASSWORD", PLANTED)
    with pytest.raises(ValueError, match="a password in the settings file is refused"):
        SmtpSettings(host="127.0.0.1", port=2525, password=PLANTED)
    from flows.settings import load_settings

    cfg = tmp_path / "s.toml"
    cfg.write_text(f'[smtp]\nhost = "127.0.0.1"\npassword = "{PLANTED}"\n')
    with pytest.raises(Exception) as exc:
        load_settings(cfg)
    assert PLANTED not in str(exc.value)  # the refusal does not echo it
    store = AlertStore.at(tmp_path)
    try:
        with pytest.raises(NotifyError):
            deliver_digests(store, {}, smtp=None)
    finally:
        store.close()
