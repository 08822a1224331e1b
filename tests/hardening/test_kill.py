"""SIGKILL at random points of nightly runs: after each kill a rerun gives outputs identical to a run
that was never interrupted. Nothing lost, nothing duplicated.

Each trial starts from the same mid-season snapshot of the demo replay (the small archive, before
its fire), runs the next nightly run in a child process (the nightly flow's own body,
``run_night(inline=True)``, mailing to a real aiosmtpd server; forked from a zygote that imported
everything once, see ``conftest.py``), kills it with SIGKILL at a random moment, reruns it to
completion, and compares with the uninterrupted reference:

- every cube (observations and annual layers) equal value for value;
- the alert and observation rows equal; ``stats.parquet`` equal;
- every change (outbox row) mailed, each in exactly one Message-ID, and every Message-ID received
  (a digest accepted just before the kill is resent with the same Message-ID, which mail systems
  deduplicate).

The kill moments cover the cube commits, the alert upserts and the outbox: each trial records what
the killed run left behind (a cube journal or grown arrays, a digest in ``sending`` state, ...).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import time
from collections import Counter
from email import message_from_bytes
from email import policy
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr

from demo.mailserver import MailCatcher
from tests.hardening.night_driver import Forked

pytestmark = pytest.mark.slow

NIGHTS = ["2026-06-24"]  #: one nightly run: two weeks of scenes since the snapshot, the fire among them
TRIALS = 14  #: half anywhere in the run, half in its last phase (the mail)
REPO = Path(__file__).resolve().parents[2]


def _settings(replay, out: Path, port: int) -> dict:
    from flows.demo import demo_settings

    s = demo_settings(replay["archive"], out, replay["api"], port)
    return json.loads(s.model_dump_json())


def _start(zygote, replay, out: Path, port: int) -> Forked:
    return zygote.start({"settings": _settings(replay, out, port), "nights": NIGHTS})


def _finish(proc: Forked) -> None:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-3000:]


def _snapshot(replay, dest: Path) -> Path:
    shutil.copytree(replay["snapshot"], dest)
    return dest


def _outputs(out: Path, mail: Path) -> dict:
    res: dict = {"cubes": {}}
    for cube in sorted((out / "cubes").glob("*.zarr")):
        groups = {"": xr.open_zarr(cube, consolidated=True).load()}
        for g in ("annual/forest", "annual/grassland"):
            if (cube / g / ".zgroup").exists():
                groups[g] = xr.open_zarr(cube, group=g, consolidated=True).load()
        res["cubes"][cube.name] = groups
    con = sqlite3.connect(out / "state.db")
    try:
        res["alerts"] = pd.read_sql("SELECT * FROM alerts ORDER BY alert_id", con)
        res["observations"] = pd.read_sql("SELECT * FROM observations ORDER BY alert_id, run_date", con)
        res["outbox"] = pd.read_sql("SELECT landscape_id, subject_id, event, version, run_date, digest_id, "
                                    "sent_at IS NOT NULL AS sent FROM outbox ORDER BY subject_id, event, version", con)
        res["digests"] = pd.read_sql("SELECT digest_id, state FROM digests", con)
    finally:
        con.close()
    res["stats"] = pd.read_parquet(out / "stats.parquet")
    ids = [message_from_bytes(p.read_bytes(), policy=policy.default)["Message-ID"] for p in sorted(mail.glob("*.eml"))]
    res["message_ids"] = ids
    return res


def _left_behind(out: Path) -> list[str]:
    """What a killed run left for the rerun to repair."""
    seen = []
    for cube in (out / "cubes").glob("*.zarr"):
        if Path(f"{cube}.txn.json").exists():
            seen.append("cube journal")
        if Path(f"{cube}.txn").exists():
            seen.append("cube stage")
        if list(cube.rglob("*.partial")):
            seen.append("partial chunk")
        meta = json.loads((cube / ".zmetadata").read_text())["metadata"] if (cube / ".zmetadata").exists() else {}
        for k, v in meta.items():
            if k.endswith("/.zarray"):
                arr = json.loads((cube / k).read_text())
                if arr["shape"] != v["shape"]:
                    seen.append("uncommitted growth")
                    break
    con = sqlite3.connect(out / "state.db")
    try:
        if con.execute("SELECT count(*) FROM digests WHERE state = 'sending'").fetchone()[0]:
            seen.append("digest sending")
        if con.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]:
            seen.append("outbox pending")
        if con.execute("SELECT count(*) FROM locks").fetchone()[0]:
            seen.append("stale run lock")
    finally:
        con.close()
    return sorted(set(seen))


def _old_digests(replay) -> set[str]:
    """The digests already in the snapshot (mailed during the replay, before these nights)."""
    con = sqlite3.connect(replay["snapshot"] / "state.db")
    try:
        return {r[0] for r in con.execute("SELECT digest_id FROM digests")}
    finally:
        con.close()


def _assert_same(ref: dict, got: dict, trial: int, old: set[str]) -> None:
    assert ref["cubes"].keys() == got["cubes"].keys()
    for name, groups in ref["cubes"].items():
        assert groups.keys() == got["cubes"][name].keys(), (trial, name)
        for g, ds in groups.items():
            xr.testing.assert_identical(ds, got["cubes"][name][g])
    for t in ("alerts", "observations"):
        pd.testing.assert_frame_equal(ref[t], got[t], obj=f"trial {trial} {t}")
    cols = ["landscape_id", "subject_id", "event", "version", "run_date", "sent"]
    pd.testing.assert_frame_equal(ref["outbox"][cols], got["outbox"][cols], obj=f"trial {trial} outbox")
    assert got["outbox"]["sent"].all(), trial  # every change mailed
    assert set(got["digests"]["state"]) == {"sent"}, trial
    # each change is in exactly one digest, and each digest arrived (duplicates only as the same Message-ID)
    new = set(got["digests"]["digest_id"]) - old
    assert new and {f"<{d}@amurwatch>" for d in new} == set(got["message_ids"]), trial
    pd.testing.assert_frame_equal(ref["stats"].sort_values(["landscape_id", "time", "variable"]).reset_index(drop=True),
                                  got["stats"].sort_values(["landscape_id", "time", "variable"]).reset_index(drop=True))


@pytest.mark.timeout(1800)
def test_sigkill_at_random_points_then_rerun_equals_the_uninterrupted_run(zygote, replay, reference, tmp_path):
    rng = random.Random(20261121)
    ref, timing = reference
    landed: Counter = Counter()
    killed = 0
    # the run's length the "anywhere" kills are timed by: the reference's, until a trial's run ends
    # sooner (the reference may have run while the other test worker loaded the machine)
    run_s = timing["run"]
    for trial in range(TRIALS):
        out = _snapshot(replay, tmp_path / f"t{trial}")
        mail = tmp_path / f"t{trial}-mail"
        with MailCatcher(mail) as mc:
            proc = _start(zygote, replay, out, mc.port)
            proc.wait_ready()  # "ready": holding the run lock
            if trial % 2 == 0:  # anywhere in the run
                t0 = time.perf_counter()
                if proc.exited_within(run_s * rng.uniform(0.0, 0.95)):
                    run_s = min(run_s, time.perf_counter() - t0)
            else:  # in its last phase (exports, report, digests, the outbox), timed from when it starts,
                # so these kills reach the mail however the machine's load stretches the earlier phases
                proc.wait_line("publish")
                time.sleep(timing["publish"] * rng.uniform(0.0, 0.8))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                killed += 1
                for what in _left_behind(out) or ["nothing to repair"]:
                    landed[what] += 1
            else:
                proc.communicate()
            _finish(_start(zygote, replay, out, mc.port))  # the rerun
        _assert_same(ref, _outputs(out, mail), trial, _old_digests(replay))
        shutil.rmtree(out)
    print(f"\n{TRIALS} trials, {killed} killed mid-run; what the kills left behind: {dict(landed)}; run length "
          f"the kills were timed by: {timing['run']:.1f} s (reference), {run_s:.1f} s at the end")
    assert killed >= TRIALS * 0.7  # a run faster than the reference may finish before its kill
    # the kills reached the writes, not only the start-up: half of them are timed inside the last
    # phase, where the outbox waits to be mailed. Kills inside cube writes are aimed at directly by
    # tests/outputs/test_cube.py (12 trials during writes)
    assert landed.get("outbox pending", 0) + landed.get("digest sending", 0) >= 3, landed


def test_the_snapshot_is_a_mid_season_state(replay):
    snap = replay["snapshot"]
    assert (snap / "state.db").exists() and (snap / "cubes").exists()
    con = sqlite3.connect(snap / "state.db")
    try:
        wm = [r[0] for r in con.execute("SELECT watermark FROM feed")]
        assert wm and all(str(w)[:10] == "2026-06-10" for w in wm)
        assert con.execute("SELECT count(*) FROM locks").fetchone()[0] == 0
    finally:
        con.close()


def test_two_runs_of_the_same_night_at_once_one_goes_through(zygote, replay, reference, tmp_path):
    ref, _ = reference
    out = _snapshot(replay, tmp_path / "race")
    with MailCatcher(tmp_path / "race-mail") as mc:
        a, b = _start(zygote, replay, out, mc.port), _start(zygote, replay, out, mc.port)
        res = [(p, *p.communicate(timeout=600)) for p in (a, b)]
    ok = [r for r in res if r[0].returncode == 0]
    refused = [r for r in res if r[0].returncode != 0]
    assert len(ok) == 1 and len(refused) == 1, [(r[0].returncode, r[2].decode()[-500:]) for r in res]
    err = refused[0][2].decode()
    assert "another amurwatch run holds this output folder" in err, err[-2000:]
    assert "RunLockedError" in err
    _assert_same(ref, _outputs(out, tmp_path / "race-mail"), -1, _old_digests(replay))  # the winner's outputs, nothing corrupted
