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


def test_the_grassland_trend_reads_this_year_s_autumn_only_once_the_snow_is_back():
    """Computed once the peak window is over (this year's looks up to its end) and once more at the
    season's end (all snow-free looks): autumn nights with a new look do not change its inputs."""
    import datetime as dt

    import pandas as pd

    from flows.pipeline import grassland_looks
    from processors.seasons import season_windows

    w = season_windows(49.0)  # snow-free days 101-299, peak window 177-250
    t = pd.DatetimeIndex([f"{y}-{md}" for y in (2024, 2025, 2026)
                          for md in ("02-10", "05-01", "07-15", "09-20", "10-20", "11-20")])
    sel = lambda night, final=False: list(t[grassland_looks(t, w, year=2026, night=night, final=final)].strftime("%Y-%m-%d"))  # noqa: E731
    earlier = [f"{y}-{md}" for y in (2024, 2025) for md in ("05-01", "07-15", "09-20", "10-20")]
    assert sel(dt.date(2026, 9, 21)) == earlier + ["2026-05-01", "2026-07-15"]
    assert sel(dt.date(2026, 10, 21)) == sel(dt.date(2026, 9, 21))  # a new autumn look: same inputs
    assert sel(dt.date(2026, 10, 26)) == earlier + ["2026-05-01", "2026-07-15", "2026-09-20", "2026-10-20"]
    assert sel(dt.date(2026, 9, 21), final=True) == sel(dt.date(2026, 10, 26))
