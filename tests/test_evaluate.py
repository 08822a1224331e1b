"""``amurwatch evaluate`` on the small demo archive (seed 42): the processing-core targets are guarded here."""

from __future__ import annotations

import json
import subprocess
import sys


def test_evaluate_meets_the_targets_on_the_small_demo_archive(small_archive, tmp_path):
    out = tmp_path / "eval.json"
    r = subprocess.run([sys.executable, "-m", "flows.cli", "evaluate", str(small_archive), "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    res = json.loads(out.read_text())
    assert {"per_event", "per_window", "targets", "ndvi_rmse", "cloud_leak", "false_alarm_ha_per_100km2"} <= set(res)
    assert res["events"] == 6 and res["events_detected"] == 6
    unmet = [v["target"] for v in res["targets"].values() if not v["met"]]
    assert not unmet, unmet
    assert r.returncode == 0, r.stderr[-2000:]
    assert res["ndvi_rmse"] < 0.03 and res["cloud_leak"] < 0.1
    assert "scores against the processing-core targets" in r.stdout


def test_evaluate_refuses_an_archive_without_truth(tmp_path):
    r = subprocess.run([sys.executable, "-m", "flows.cli", "evaluate", str(tmp_path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "has no truth/truth.json" in r.stderr
