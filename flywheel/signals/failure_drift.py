"""The failure-cluster growth signal: per scenario, the failure clusters (failures.cluster_daily)
that are new or growing on the day.

One `failure_cluster_growth` row per scenario with failing events that day (model and prompt
version `*`): `statistic` = the number of clusters flagged new or growing with at least
`drift.failure_min_events` events (and a baseline window with failures of the scenario: on
the first nights every cluster is new, which says nothing), `threshold` = 1; `current_value` / `baseline_value` = the
share of the scenario's failing events of the largest such cluster today / over the baseline
window, `effect` their difference; `current_n` / `baseline_n` = the scenario's failing events
today / over the baseline. Severity `warn` when any cluster is flagged (an emerging way of
failing is worth a look but not, alone, a demotion), else `info`. Which clusters: query
`failures.cluster_daily` for the day and scenario with is_new or is_growing.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from flywheel.failures.growth import CLUSTER_DAILY
from flywheel.signals.policy import Policy
from flywheel.store import Layout

SIGNAL = "failure_cluster_growth"


def failure_growth_rows(layout: Layout, policy: Policy, day: date) -> list[dict]:
    """The signal's rows for `day` (none when the failure tables of the day are not built)."""
    path = layout.table(CLUSTER_DAILY, day)
    if not path.exists():
        return []
    frame = pl.read_parquet(path)
    if frame.height == 0:
        return []
    need = policy.drift.failure_min_events
    rows = []
    for (scenario,), part in frame.sort("scenario").group_by("scenario", maintain_order=True):
        flagged = part.filter((pl.col("is_new") | pl.col("is_growing")) & (pl.col("events") >= need)
                              & (pl.col("baseline_failures") > 0))
        top = flagged.sort(["events", "cluster_id"], descending=[True, False]).head(1)
        first = part.row(0, named=True)
        current = top["share"][0] if top.height else None
        baseline = top["baseline_share"][0] if top.height else None
        rows.append({
            "scenario": scenario, "model": "*", "prompt_version": "*", "signal": SIGNAL,
            "statistic": float(flagged.height), "p_value": None, "threshold": 1.0,
            "baseline_value": baseline, "current_value": current,
            "baseline_n": int(first["baseline_failures"]), "current_n": int(first["scenario_failures"]),
            "effect": None if current is None else current - (baseline or 0.0),
            "direction": "worse" if flagged.height else None, "_kind": "failure",
        })
    return rows
