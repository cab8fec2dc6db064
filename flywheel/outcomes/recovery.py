"""Recovery time: for each run of failures (error, timeout, or a reverted action) in a scenario,
the time from its first failure until the scenario's next successful event (status ok, not
reverted). Runs are counted on the day they start; the next day's events are looked at to find
their end, and a run with no success by then is `open`. The day before tells whether a run was
already going at midnight (then it is that day's run, not a new one)."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import polars as pl

from flywheel.config import Settings
from flywheel.outcomes.resolve import TABLE as OUTCOMES_TABLE
from flywheel.sql import load_sql
from flywheel.store import Layout, write_parquet_atomic

TABLE = "outcomes/recovery"


def build_recovery(settings: Settings, day: date) -> pl.DataFrame:
    """Write and return the failure runs starting on `day`, per scenario."""
    layout = Layout(settings.store)
    files = [str(p) for p in (layout.table(OUTCOMES_TABLE, day + timedelta(days=i)) for i in (-1, 0, 1)) if p.exists()]
    if not layout.table(OUTCOMES_TABLE, day).exists():
        raise ValueError(f"the outcomes of {day} must be built before its recovery")
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    frame = con.sql(load_sql("recovery"), params={"outcomes": files, "day": day}).pl()
    write_parquet_atomic(frame.to_arrow(), layout.table(TABLE, day))
    return frame
