"""Invariants of the outcome marts: rates within [0, 1] and within their intervals, and per day the
same event count in the stored events, the resolved outcomes and the daily mart. Plain functions;
the daily-rates asset reports them as its blocking checks (assets/checks.py)."""

from __future__ import annotations

from datetime import date

import polars as pl

from flywheel.config import Settings
from flywheel.engine import connect
from flywheel.outcomes.rates import RATES
from flywheel.store import Layout
from flywheel.tables import DAILY_RATES, EVENT_OUTCOMES, EVENTS


def rates_out_of_bounds(frame: pl.DataFrame) -> dict[str, int]:
    """Per rate column (and interval bound), rows outside [0, 1], or whose rate is not within its interval."""
    bad: dict[str, int] = {}
    if frame.height == 0:
        return bad
    for name in RATES:
        for col in (name, f"{name}_lo", f"{name}_hi"):
            n = frame.filter((pl.col(col) < 0) | (pl.col(col) > 1)).height
            if n:
                bad[col] = n
        lo, hi = pl.col(f"{name}_lo"), pl.col(f"{name}_hi")
        n = frame.filter((lo > pl.col(name) + 1e-12) | (pl.col(name) > hi + 1e-12)
                         | (pl.col(name).is_not_null() & (lo.is_null() | hi.is_null()))).height
        if n:
            bad[f"{name} outside its interval"] = n
    return bad


def count_mismatches(settings: Settings, days: list[date]) -> list[dict]:
    """Days where stored events, resolved outcomes and the daily mart's event counts disagree."""
    layout = Layout(settings.store)
    out = []
    with connect(settings) as con:
        for day in days:
            counts = {}
            for name, table, sql in (("stored_events", EVENTS.path, "SELECT count(*) FROM read_parquet(?)"),
                                     ("outcomes", EVENT_OUTCOMES.path, "SELECT count(*) FROM read_parquet(?)"),
                                     ("daily_rates_events", DAILY_RATES.path,
                                      "SELECT coalesce(sum(events), 0) FROM read_parquet(?)")):
                path = layout.table(table, day)
                counts[name] = int(con.sql(sql, params=[str(path)]).fetchall()[0][0]) if path.exists() else 0
            if len(set(counts.values())) != 1:
                out.append({"day": day.isoformat(), **counts})
    return out
