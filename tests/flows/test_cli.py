"""The amurwatch CLI end to end: the demo command (resuming the session's replay), run, alerts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def _cli(*args, timeout=600, env=None):
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_cli_demo_prints_paths_and_scores(replay, tmp_path):
    out = tmp_path / "demo"
    shutil.copytree(replay["out"], out)
    (out / "archive").symlink_to(replay["archive"])
    # the backfill resumes (every chunk is recorded as done); a night every 60 days keeps it quick
    r = _cli("demo", "--out", str(out), "--no-fresh", "--every-days", "60")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "local STAC API: http://127.0.0.1:" in r.stdout and "local SMTP server: 127.0.0.1:" in r.stdout
    for needle in ("alerts.parquet", "stac/catalog.json", "every event >= 0.5 ha detected", "demo finished in"):
        assert needle in r.stdout, needle
    summary = json.loads((out / "demo-summary.json").read_text())
    assert all(v["met"] for v in summary["scores"]["targets"].values())
    assert summary["nights"] and all("seconds" in n for n in summary["nights"])


def test_cli_alerts_list_and_export(replay, tmp_path):
    r = _cli("alerts", "list", "--out", str(replay["out"]), "--status", "confirmed")
    assert r.returncode == 0 and "confirmed" in r.stdout and "burn_scar" in r.stdout
    for suffix in (".gpkg", ".csv", ".geojson"):
        r = _cli("alerts", "export", "--out", str(replay["out"]), "--to", str(tmp_path / f"a{suffix}"))
        assert r.returncode == 0 and (tmp_path / f"a{suffix}").stat().st_size > 0, r.stderr
    r = _cli("alerts", "export", "--out", str(replay["out"]), "--to", str(tmp_path / "a.xlsx"))
    assert r.returncode == 2 and "unknown format '.xlsx'" in r.stderr
    r = _cli("alerts", "list", "--out", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "has no state.db" in r.stderr


def test_cli_run_refuses_bad_input_before_any_work(tmp_path):
    r = _cli("run", "--stac", "x", "--start", "2026-07-01", "--end", "2026-06-01", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "--start 2026-07-01 is after --end 2026-06-01; swap them" in r.stderr
    r = _cli("run", "--stac", "x", "--start", "2026-13-01", "--end", "2026-06-01", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "is not a date; use YYYY-MM-DD" in r.stderr
    r = _cli("run", "--stac", "x", "--start", "2026-06-01", "--end", "2026-06-02", "--out", str(tmp_path / "o"),
             env={"AMURWATCH_RESOLUTON": "20"})
    assert r.returncode == 2 and "AMURWATCH_RESOLUTON" in r.stderr
    assert not (tmp_path / "o").exists()


def test_cli_evaluate_scores_a_run_s_outputs(replay, tmp_path):
    """``amurwatch evaluate ARCHIVE --outputs OUT`` scores what the replay wrote (confirmed alerts, the
    cubes' annual layers), as the demo's summary does, and refuses a folder with no outputs."""
    from flows.evaluate import evaluate_outputs

    js = tmp_path / "scores.json"
    r = _cli("evaluate", str(replay["archive"]), "--outputs", str(replay["out"]), "--json", str(js))
    got = json.loads(js.read_text())
    want = evaluate_outputs(replay["archive"], replay["out"])
    assert r.returncode == (0 if all(v["met"] for v in want["targets"].values()) else 1), r.stderr[-2000:]
    assert got["outputs"] == str(replay["out"]) and got["per_event"] == json.loads(json.dumps(want["per_event"], default=str))
    assert "--outputs" in r.stdout and "every event >= 0.5 ha detected" in r.stdout
    r = _cli("evaluate", str(replay["archive"]), "--outputs", str(tmp_path / "empty"))
    assert r.returncode == 2 and "holds no run outputs" in r.stderr
