"""The failure-cluster growth signal: per scenario, the failure clusters (failures.cluster_daily)
that are new or growing on the day, by the policy's rules.

The flags are `growth.flags` applied to the stored statistics with the policy's values
(`drift.failure_fdr_q`, `failure_min_events`, `failure_min_ratio`, `failure_new_days`,
`failure_new_nights`): growing = the share's exact test against the baseline has a BH q-value
(over every scenario and cluster of the night) at or below failure_fdr_q, with at least
failure_min_events events and the share at least failure_min_ratio times the baseline's; new = born
within failure_new_days before the day and seen with failure_min_events events on
failure_new_nights nights, in a scenario that had failures before its birth.

One `failure_cluster_growth` row per scenario with failing events that day (model and prompt
version `*`): `statistic` = the number of clusters flagged new or growing, `threshold` = 1;
`p_value` = the smallest q-value of the clusters flagged growing (already adjusted over the night's
clusters; null when none grows: a new cluster has no baseline to test against), so the row's own
`q_value` in signals.drift is that adjusted once more with the night's other drift tests;
`current_value` / `baseline_value` = the share of the scenario's failing events of the largest
flagged cluster today / over its baseline, `effect` their difference; `current_n` / `baseline_n` =
the scenario's failing events today / its largest baseline (the window). Severity `warn` when any
cluster is flagged (an emerging way of failing is worth a look but not, alone, a demotion), else
`info`. Which clusters: query `failures.cluster_daily` for the day and scenario with is_new or
is_growing. A day whose cluster_daily was built before these tests existed (no q_value) flags
nothing until its failure tables are rebuilt.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from flywheel.failures.growth import flags, growth_rules
from flywheel.objectstore import polars_options, url
from flywheel.signals.policy import Policy
from flywheel.store import Layout
from flywheel.tables import CLUSTER_DAILY

SIGNAL = "failure_cluster_growth"
_TESTS = {"q_value": pl.Float64, "nights_seen": pl.Int64, "failures_before_birth": pl.Int64}


def failure_growth_rows(layout: Layout, policy: Policy, day: date) -> list[dict]:
    """The signal's rows for `day` (none when the failure tables of the day are not built)."""
    path = layout.table(CLUSTER_DAILY.path, day)
    if not path.exists():
        return []
    frame = pl.read_parquet(url(path), storage_options=polars_options(path))
    if frame.height == 0:
        return []
    # a day built before issue 15 has no tests: nothing on it is flagged until its failures are rebuilt
    frame = frame.with_columns([pl.lit(None, dtype=t).alias(c) for c, t in _TESTS.items() if c not in frame.columns])
    frame = flags(frame, day, **growth_rules(policy))  # type: ignore[arg-type]
    rows = []
    for (scenario,), part in frame.sort("scenario").group_by("scenario", maintain_order=True):
        flagged = part.filter(pl.col("is_new") | pl.col("is_growing"))
        top = flagged.sort(["events", "cluster_id"], descending=[True, False]).head(1)
        current = top["share"][0] if top.height else None
        baseline = top["baseline_share"][0] if top.height else None
        growing_q = flagged.filter(pl.col("is_growing"))["q_value"]
        rows.append({
            "scenario": scenario, "model": "*", "prompt_version": "*", "signal": SIGNAL,
            "statistic": float(flagged.height), "p_value": growing_q.min() if growing_q.len() else None,
            "threshold": 1.0, "baseline_value": baseline, "current_value": current,
            "baseline_n": int(part["baseline_failures"].max() or 0), "current_n": int(part["scenario_failures"].max()),
            "effect": None if current is None else current - (baseline or 0.0),
            "direction": "worse" if flagged.height else None, "_kind": "failure",
        })
    return rows
