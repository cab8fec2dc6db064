"""Per scenario and failure cluster, each day: counts, shares, growth against a baseline, and flags.

For day D and each (scenario, cluster) seen on D or in the baseline window (the `baseline_days`
days before D): `events` on D, `share` of the scenario's failing events on D (unmatched ones
count in the denominator), the same share over the baseline window (`baseline_share`), and
`growth_ratio` = share / baseline_share. `is_new`: the cluster was born within the last
`new_days` days (default 1: born on D). `is_growing`: at least `min_events` events on D, the
baseline window has failures of this scenario, and the cluster either had none of them
(baseline share 0) or its share grew by at least `growth_factor`.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pyarrow as pa

from flywheel.config import Settings
from flywheel.engine import connect
from flywheel.failures.model import ASSIGNMENT_SCHEMA
from flywheel.sql import load_sql
from flywheel.store import Layout, write_parquet_atomic

ASSIGNMENTS = "failures/assignments"
CLUSTERS = "failures/clusters"
CLUSTER_DAILY = "failures/cluster_daily"


def cluster_daily(settings: Settings, day: date, baseline_days: int = 7, new_days: int = 1,
                  growth_factor: float = 2.0, min_events: int = 5) -> pl.DataFrame:
    """The per-scenario cluster figures of `day` (see the module docstring), not yet written.

    Assumes `failures/assignments` and `failures/clusters` of `day` are built; the baseline reads
    whichever assignment partitions of the window exist.
    """
    layout = Layout(settings.store)
    today = layout.table(ASSIGNMENTS, day)
    clusters = layout.table(CLUSTERS, day)
    for path in (today, clusters):
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: build the failures tables of {day} first")
    start = day - timedelta(days=baseline_days)
    baseline = [str(p) for p in (layout.table(ASSIGNMENTS, start + timedelta(days=i)) for i in range(baseline_days))
                if p.exists()] or [str(layout.empty_table(ASSIGNMENTS, pl.DataFrame(schema=ASSIGNMENT_SCHEMA).to_arrow().schema))]
    con = connect(settings)
    try:
        return con.sql(load_sql("failure_cluster_daily"), params={
            "today": str(today), "baseline": baseline, "clusters": str(clusters), "day": day, "base_start": start,
            "new_days": new_days, "min_events": min_events, "growth_factor": float(growth_factor),
        }).pl()
    finally:
        con.close()


def build_cluster_daily(settings: Settings, day: date, baseline_days: int = 7, new_days: int = 1,
                        growth_factor: float = 2.0, min_events: int = 5) -> pl.DataFrame:
    """Compute and store `failures/cluster_daily` of `day` (replacing the day's file); returns it.

    `baseline_days` (7): days before `day` the baseline share is taken over; `new_days` (1): a
    cluster is new when born within that many days up to `day`; `growth_factor` (2.0) and
    `min_events` (5): when a cluster counts as growing in a scenario.
    """
    frame = cluster_daily(settings, day, baseline_days, new_days, growth_factor, min_events)
    table: pa.Table = frame.to_arrow()
    write_parquet_atomic(table, Layout(settings.store).table(CLUSTER_DAILY, day))
    return frame
