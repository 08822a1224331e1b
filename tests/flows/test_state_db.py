"""``state_db`` on a real PostgreSQL server on loopback: a whole night (watermarks, feed health,
alerts, outbox, stats catch-up, the run lock) gives what it gives on the default SQLite file."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from flows.demo import demo_settings
from flows.nightly import RunLockedError, run_lock, run_night
from outputs.alerts import AlertStore

NIGHT = dt.date(2026, 7, 31)
WINDOW = (dt.date(2025, 5, 1), NIGHT)


def _night(settings):
    s = run_night(settings, NIGHT, window=WINDOW, inline=True, report=False)
    assert not s.failed, s.to_dict()
    store = AlertStore(settings.state_url())
    try:
        return store.frame(), store.pending(), store.watermark("greater-khingan-demo")
    finally:
        store.close()


def test_a_night_on_postgresql_equals_one_on_sqlite(small_archive, stac_api, postgres, tmp_path):
    url = postgres.database()
    base = demo_settings(small_archive, tmp_path / "sqlite", stac_api.url, None)
    lite = base.model_copy(update={"landscapes": ["greater-khingan-demo"]})
    pg = base.model_copy(update={"landscapes": ["greater-khingan-demo"], "out": str(tmp_path / "pg"), "state_db": url})
    f_lite, p_lite, w_lite = _night(lite)
    f_pg, p_pg, w_pg = _night(pg)
    assert len(f_lite) > 0 and not (tmp_path / "pg" / "state.db").exists()
    pd.testing.assert_frame_equal(f_pg.reset_index(drop=True), f_lite.reset_index(drop=True), check_dtype=False)
    drop = [c for c in p_lite.columns if c.endswith("_at")]  # wall-clock stamps
    pd.testing.assert_frame_equal(p_pg.drop(columns=drop).reset_index(drop=True),
                                  p_lite.drop(columns=drop).reset_index(drop=True), check_dtype=False)
    assert w_pg == w_lite
    # a rerun changes nothing, and one run at a time holds the database
    f_again, _, _ = _night(pg)
    pd.testing.assert_frame_equal(f_again, f_pg)
    a, b = AlertStore(url), AlertStore(url)
    try:
        with run_lock(a):
            with pytest.raises(RunLockedError, match="another amurwatch run holds"):
                with run_lock(b):
                    pass
    finally:
        a.close()
        b.close()
