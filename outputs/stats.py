"""``stats.parquet``: one long table of per-landscape statistics, appended per run, deduplicated by key.

Columns (the public contract): ``landscape_id``, ``time`` (UTC timestamp of the observation or
period start), ``variable``, ``value`` (float64), ``unit``. The key is (landscape_id, time,
variable): a rerun replaces its own rows instead of adding copies.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from aoi.errors import AmurwatchError

__all__ = ["append_stats", "read_stats", "STATS_COLUMNS", "STATS_KEY", "StatsError"]

STATS_COLUMNS = ["landscape_id", "time", "variable", "value", "unit"]
STATS_KEY = ["landscape_id", "time", "variable"]


class StatsError(AmurwatchError):
    """Rows that do not fit the stats table."""


def _normalise(rows: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in STATS_COLUMNS if c not in rows.columns]
    if missing:
        raise StatsError(f"stats rows lack the columns {missing}; expected {STATS_COLUMNS}")
    out = rows[STATS_COLUMNS].copy()
    out["landscape_id"] = out["landscape_id"].astype(str)
    out["variable"] = out["variable"].astype(str)
    out["unit"] = out["unit"].astype(str)
    out["time"] = pd.to_datetime(out["time"], utc=True).dt.tz_convert("UTC").astype("datetime64[ms, UTC]")
    out["value"] = pd.to_numeric(out["value"], errors="raise").astype("float64")
    dup = out.duplicated(STATS_KEY, keep=False)
    if dup.any():
        raise StatsError(f"stats rows repeat a key {STATS_KEY}: {out.loc[dup, STATS_KEY].head(3).to_dict('records')}")
    return out


def read_stats(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    if not p.exists():
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                             zip(STATS_COLUMNS, ["str", "datetime64[ms, UTC]", "str", "float64", "str"])})
    return pd.read_parquet(p)


def append_stats(path: str | Path, rows: pd.DataFrame) -> int:
    """Merge ``rows`` into the table at ``path`` (new keys appended, existing keys replaced), atomically.

    Returns the number of rows in the table afterwards.
    """
    p = Path(path)
    new = _normalise(rows)
    old = read_stats(p)
    merged = pd.concat([old, new], ignore_index=True) if len(old) else new
    merged = merged.drop_duplicates(STATS_KEY, keep="last").sort_values(STATS_KEY).reset_index(drop=True)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    merged.to_parquet(tmp, index=False)
    os.replace(tmp, p)
    return len(merged)
