"""Pipeline helpers that need no archive."""

import datetime as dt

from flows.nightly import month_chunks
from flows.pipeline import carry_ids
from tests.outputs.conftest import make_alerts


def test_a_probable_alert_that_grows_into_a_confirmed_patch_keeps_its_id():
    existing = make_alerts([("fore-x-old", "forest_loss", "new", "2026-05-29", 0.9, None, 124.20, 47.20),
                            ("burn-x-b", "burn_scar", "confirmed", "2026-06-01", 5.0, "low", 124.30, 47.30)])
    existing["status"] = ["new", "confirmed"]
    cand = make_alerts([("fore-x-new", "forest_loss", "confirmed", "2026-05-29", 1.5, None, 124.2001, 47.2001),
                        ("fore-x-far", "forest_loss", "probable", "2026-06-10", 0.6, None, 124.50, 47.50),
                        ("burn-x-c", "burn_scar", "confirmed", "2026-06-20", 2.0, "low", 124.2001, 47.2001)])
    out = carry_ids(cand, existing)
    assert list(out["alert_id"]) == ["fore-x-old", "fore-x-far", "burn-x-c"]  # same kind only
    assert list(cand["alert_id"]) == ["fore-x-new", "fore-x-far", "burn-x-c"]  # the input is untouched


def test_month_chunks_cover_the_range_exactly():
    ch = month_chunks(dt.date(2025, 12, 15), dt.date(2026, 2, 3))
    assert ch == [(dt.date(2025, 12, 15), dt.date(2025, 12, 31)), (dt.date(2026, 1, 1), dt.date(2026, 1, 31)),
                  (dt.date(2026, 2, 1), dt.date(2026, 2, 3))]
