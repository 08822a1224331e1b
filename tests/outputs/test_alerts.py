"""The alert store: lifecycle, history, idempotent reruns, expiry, feed health, exports (geopandas, DuckDB)."""

from __future__ import annotations

import datetime as dt

import duckdb
import geopandas as gpd
import pytest

from outputs.alerts import EXPORT_COLUMNS, AlertStore, AlertStoreError

from .conftest import make_alerts

A = ("fore-zhalong-aaaa", "forest_loss")
B = ("burn-zhalong-bbbb", "burn_scar")


def night(rows):
    return make_alerts(rows)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """The store on SQLite (the default) and on a real PostgreSQL server (``state_db``)."""
    s = AlertStore.at(tmp_path) if request.param == "sqlite" else AlertStore(request.getfixturevalue("postgres").database())
    yield s
    s.close()


def test_lifecycle_new_updated_confirmed(store):
    r = store.upsert(night([(*A, "probable", "2026-06-01", 1.0, None, 127.1, 47.2)]), landscape_id="zhalong",
                     run_date="2026-06-02")
    assert r["new"] == 1
    r = store.upsert(night([(*A, "probable", "2026-06-01", 1.5, None, 127.1, 47.2)]), landscape_id="zhalong",
                     run_date="2026-06-07")
    assert r["updated"] == 1
    r = store.upsert(night([(*A, "confirmed", "2026-06-01", 1.52, None, 127.1, 47.2)]), landscape_id="zhalong",
                     run_date="2026-06-12")
    assert r["confirmed"] == 1
    # a confirmed alert that grows stays confirmed; the growth is mailed as an update
    r = store.upsert(night([(*A, "confirmed", "2026-06-01", 3.0, None, 127.1, 47.2)]), landscape_id="zhalong",
                     run_date="2026-06-17")
    assert r["updated"] == 1
    f = store.frame()
    assert list(f["status"]) == ["confirmed"] and f["version"][0] == 4
    assert f["confirmed_on"][0] == dt.date(2026, 6, 12) and f["last_seen"][0] == dt.date(2026, 6, 17)
    h = store.history(A[0])
    assert list(h["status"]) == ["new", "updated", "confirmed", "confirmed"]
    assert list(h["area_ha"]) == [1.0, 1.5, 1.52, 3.0]
    assert list(store.pending()["event"]) == ["new", "updated", "confirmed", "updated"]


def test_a_rerun_of_the_same_night_adds_nothing(store):
    rows = [(*A, "confirmed", "2026-06-01", 1.0, None, 127.1, 47.2), (*B, "confirmed", "2026-06-03", 4.0,
                                                                      "moderate-high", 127.2, 47.3)]
    store.upsert(night(rows), landscape_id="zhalong", run_date="2026-06-05")
    f1, p1 = store.frame(), store.pending()
    r = store.upsert(night(rows), landscape_id="zhalong", run_date="2026-06-05")
    assert r["unchanged"] == 2 and r["new"] == r["updated"] == 0
    assert store.frame().equals(f1) and store.pending().equals(p1)
    assert len(store.history(B[0])) == 1


def test_a_severity_change_is_an_update(store):
    store.upsert(night([(*B, "confirmed", "2026-06-03", 4.0, "low", 127.2, 47.3)]), landscape_id="zhalong",
                 run_date="2026-06-05")
    r = store.upsert(night([(*B, "confirmed", "2026-06-03", 4.0, "moderate-high", 127.2, 47.3)]),
                     landscape_id="zhalong", run_date="2026-06-10")
    assert r["updated"] == 1 and store.frame()["severity"][0] == "moderate-high"


def test_unconfirmed_alerts_expire_after_180_days(store):
    store.upsert(night([(*A, "probable", "2026-01-10", 1.0, None, 127.1, 47.2),
                        (*B, "confirmed", "2026-01-10", 2.0, "low", 127.2, 47.3)]), landscape_id="zhalong",
                 run_date="2026-01-11")
    r = store.upsert(night([]), landscape_id="zhalong", run_date="2026-07-08")  # 179 days
    assert r["expired"] == 0
    r = store.upsert(night([]), landscape_id="zhalong", run_date="2026-07-09")  # 180 days
    assert r["expired"] == 1
    f = store.frame().set_index("alert_id")
    assert f.loc[A[0], "status"] == "expired" and f.loc[B[0], "status"] == "confirmed"
    assert "expired" not in set(store.pending()["event"])  # expiry is recorded, not mailed


def test_bad_candidates_are_refused_and_nothing_is_written(store):
    good = night([(*A, "probable", "2026-06-01", 1.0, None, 127.1, 47.2)])
    with pytest.raises(AlertStoreError, match="not EPSG:4326; use .to_crs"):
        store.upsert(good.to_crs(32651), landscape_id="zhalong", run_date="2026-06-02")
    bad = good.copy()
    bad["kind"] = "deforestation"
    with pytest.raises(AlertStoreError, match=r"unknown alert kind\(s\) \['deforestation'\]"):
        store.upsert(bad, landscape_id="zhalong", run_date="2026-06-02")
    with pytest.raises(AlertStoreError, match=r"lack the columns \['area_ha'\]"):
        store.upsert(good.drop(columns="area_ha"), landscape_id="zhalong", run_date="2026-06-02")
    with pytest.raises(AlertStoreError, match="repeat an alert_id"):
        store.upsert(gpd.pd.concat([good, good]), landscape_id="zhalong", run_date="2026-06-02")
    with pytest.raises(AlertStoreError, match=r"landscape\(s\) \['zhalong'\] passed for 'onon-balj'"):
        store.upsert(good, landscape_id="onon-balj", run_date="2026-06-02")
    assert len(store.frame()) == 0 and len(store.pending()) == 0


def test_a_failed_transaction_leaves_nothing_half_done(store, monkeypatch):
    store.upsert(night([(*A, "probable", "2026-06-01", 1.0, None, 127.1, 47.2)]), landscape_id="zhalong",
                 run_date="2026-06-02")
    before = (store.frame(), store.pending())
    import outputs.alerts as mod

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(mod.AlertStore, "_queue", staticmethod(boom))
    with pytest.raises(RuntimeError, match="disk full"):
        store.upsert(night([(*A, "confirmed", "2026-06-01", 1.0, None, 127.1, 47.2)]), landscape_id="zhalong",
                     run_date="2026-06-07")
    assert store.frame().equals(before[0]) and store.pending().equals(before[1])


def test_feed_health_notices_once_per_episode(store):
    assert store.record_feed(landscape_id="zhalong", run_date="2026-06-01", n_items=2, last_clear="2026-06-01") == []
    for d in range(2, 22):
        store.record_feed(landscape_id="zhalong", run_date=f"2026-06-{d:02d}", n_items=1, last_clear=None)
    assert store.record_feed(landscape_id="zhalong", run_date="2026-06-22", n_items=1, last_clear=None) == \
        ["feed_no_clear"]
    assert store.record_feed(landscape_id="zhalong", run_date="2026-06-23", n_items=1, last_clear=None) == []
    # the source returns nothing three nights in a row (a rerun of a night counts once)
    store.record_feed(landscape_id="onon-balj", run_date="2026-06-01", n_items=0, last_clear=None)
    store.record_feed(landscape_id="onon-balj", run_date="2026-06-02", n_items=0, last_clear=None)
    store.record_feed(landscape_id="onon-balj", run_date="2026-06-02", n_items=0, last_clear=None)
    assert store.record_feed(landscape_id="onon-balj", run_date="2026-06-03", n_items=0, last_clear=None) == \
        ["feed_no_items"]
    assert store.record_feed(landscape_id="onon-balj", run_date="2026-06-04", n_items=0, last_clear=None) == []
    ev = store.pending()
    assert sorted(ev["event"]) == ["feed_no_clear", "feed_no_items"]


def test_exports_open_in_geopandas_and_duckdb(store, tmp_path):
    store.upsert(night([(*A, "confirmed", "2026-06-01", 1.0, None, 127.1, 47.2),
                        (*B, "confirmed", "2026-06-03", 4.0, "moderate-high", 127.2, 47.3)]),
                 landscape_id="zhalong", run_date="2026-06-05")
    paths = store.export(tmp_path / "out")
    g = gpd.read_parquet(paths["parquet"])
    assert g.crs.to_epsg() == 4326 and list(g.columns) == EXPORT_COLUMNS
    assert list(g["alert_id"]) == sorted([A[0], B[0]])
    assert g.loc[g.kind == "burn_scar", "severity"].item() == "moderate-high"
    assert str(g["first_detected"].iloc[0]) == "2026-06-03"  # burn-... sorts first
    gj = gpd.read_file(paths["geojson"])
    assert gj.crs.to_epsg() == 4326 and len(gj) == 2 and set(gj["status"]) == {"confirmed"}
    con = duckdb.connect()
    rows = con.execute(f"SELECT kind, area_ha, first_detected FROM read_parquet('{paths['parquet']}') "
                       "ORDER BY alert_id").fetchall()
    assert rows == [("burn_scar", 4.0, dt.date(2026, 6, 3)), ("forest_loss", 1.0, dt.date(2026, 6, 1))]
    # DuckDB reads the GeoParquet metadata: a GEOMETRY column in EPSG:4326
    (typ,) = con.execute(f"SELECT DISTINCT typeof(geometry) FROM read_parquet('{paths['parquet']}')").fetchone()
    assert typ.startswith("GEOMETRY") and '"code":4326' in typ
    # ... and the GeoJSON export as rows with a GEOMETRY column
    rows = con.execute(f"SELECT alert_id, kind, area_ha, typeof(geometry) FROM '{paths['geojson']}' "
                       "ORDER BY alert_id").fetchall()
    assert [r[:3] for r in rows] == [(B[0], "burn_scar", 4.0), (A[0], "forest_loss", 1.0)]
    assert rows[0][3].startswith("GEOMETRY")
