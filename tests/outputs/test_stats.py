import duckdb
import pandas as pd
import pytest

from outputs.stats import STATS_COLUMNS, StatsError, append_stats, read_stats


def rows(times, value=1.0, variable="water_ha"):
    return pd.DataFrame({"landscape_id": "zhalong", "time": times, "variable": variable, "value": value,
                         "unit": "ha"})


def test_append_dedup_and_contract(tmp_path):
    p = tmp_path / "stats.parquet"
    assert append_stats(p, rows(["2026-06-01", "2026-06-06"])) == 2
    assert append_stats(p, rows(["2026-06-06", "2026-06-11"], value=2.0)) == 3  # the rerun's key is replaced
    assert append_stats(p, rows(["2026-06-01"], variable="clear_fraction")) == 4
    s = read_stats(p)
    assert list(s.columns) == STATS_COLUMNS
    assert s.loc[(s.variable == "water_ha") & (s.time == pd.Timestamp("2026-06-06", tz="UTC")), "value"].item() == 2.0
    n = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{p}') WHERE unit = 'ha'").fetchone()[0]
    assert n == 4


def test_bad_rows_leave_the_table_untouched(tmp_path):
    p = tmp_path / "stats.parquet"
    append_stats(p, rows(["2026-06-01"]))
    before = p.read_bytes()
    with pytest.raises(StatsError, match=r"lack the columns \['unit'\]"):
        append_stats(p, rows(["2026-06-02"]).drop(columns="unit"))
    with pytest.raises(StatsError, match="repeat a key"):
        append_stats(p, rows(["2026-06-02", "2026-06-02"]))
    with pytest.raises(ValueError):
        append_stats(p, rows(["2026-06-02"], value="lots"))
    assert p.read_bytes() == before
