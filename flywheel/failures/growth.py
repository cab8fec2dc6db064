"""Per scenario and failure cluster, each day: counts, shares, an exact test of growth against a
baseline with the false-discovery rate controlled over the night, and the new / growing flags.

For day D and each (scenario, cluster) seen on D or in the baseline window (the `baseline_days`
days before D): `events` on D, `share` of the scenario's failing events on D (unmatched ones
count in the denominator), and the same over the baseline window's days since the cluster's birth
(`baseline_events`, `baseline_failures`, `baseline_share`; before its birth its events could not
join it). `growth_ratio` = share / baseline_share.

Growth test: one-sided Fisher exact test (hypergeometric) of "today's share is no larger than the
baseline's", i.e. of today's `events` among `scenario_failures` against `baseline_events` among
`baseline_failures`. Conditioning on both periods, it accounts for the baseline share being itself
an estimate: a cluster absent from a baseline of 50 failures with 5 of today's 100 has p = 0.13,
where a binomial test against the plug-in share 0 would call any event impossible. Day-to-day
shares of real data vary more than binomially; the counts are divided by the scenario's
`dispersion` (Pearson chi-square per degree of freedom of the baseline window's day x cluster
table, at least 1: the Rao-Scott correction; clusters born after the scenario's first night in the
window are pooled with the unmatched events) before the test. `p_value` is null where there is
nothing to test against (no failures today, or none in the baseline since the cluster's birth).
`q_value`: Benjamini-Hochberg adjusted over every tested (scenario, cluster) pair of the night.

Flags (`flags`): `is_growing` when q_value <= `fdr_q`, at least `min_events` events on D, share at
least `growth_factor` times the baseline share (or a baseline share of 0) and the cluster is not
within its `new_days` after birth (a young cluster is judged by the next rule). `is_new` when a
cluster that fitted no known one persists: born within the last `new_days` days before D, seen with
at least `min_events` events in the scenario on at least `new_nights` nights since its birth
(`nights_seen`, D included, and D one of them), and the scenario had failing events in the window
before its birth (on a store's first nights every cluster is born; that says nothing). A one-night
cluster founded by the clusterer never warns. The parameters are the configured policy's
(`drift.failure_*`, `growth_rules`), which the `failure_cluster_growth` signal applies too.

Measured (`python -m bench.failure_growth --seeds 12 --days 40`, BENCHMARKS.md): on simulated
cluster mixes with no change, 0.1% of scenario-nights flagged with multinomial shares and 1.5% with
over-dispersed ones (36% and 63% by the rule before); a new mode of 7.2% of the failures flagged the
night after its first at 400 and 2,000 failing events a day (never at 50: under 5 events a night).
On generated pipeline data with no change, 2 and 6 of 300 scenario-nights warned (36 and 39 before);
on MLQE-PE (examples/mlqe_pe, shuffled days), 0 of 14 (8 before).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pyarrow as pa
from scipy import stats

from flywheel.config import Settings
from flywheel.engine import connect
from flywheel.failures.model import ASSIGNMENT_SCHEMA
from flywheel.signals.policy import Policy, load_policy
from flywheel.signals.stattests import benjamini_hochberg
from flywheel.sql import load_sql
from flywheel.store import Layout, write_parquet_atomic
from flywheel.tables import ASSIGNMENTS, CLUSTER_DAILY, CLUSTERS

COLUMNS = ("event_date", "scenario", "cluster_id", "label", "events", "scenario_failures", "share",
           "baseline_events", "baseline_failures", "baseline_days", "baseline_share", "growth_ratio", "born_date",
           "failures_before_birth", "nights_seen", "dispersion", "p_value", "q_value", "is_new", "is_growing")


def growth_pvalues(events: np.ndarray, failures: np.ndarray, baseline_events: np.ndarray,
                   baseline_failures: np.ndarray, dispersion: np.ndarray | float = 1.0) -> np.ndarray:
    """One-sided Fisher exact p-values of "today's share events/failures is no larger than the
    baseline's baseline_events/baseline_failures", element-wise, on counts divided by `dispersion`
    (>= 1) and rounded; NaN where failures or baseline_failures is 0."""
    phi = np.maximum(np.broadcast_to(np.asarray(dispersion, float), np.shape(events)), 1.0)
    x, n = np.rint(np.asarray(events, float) / phi), np.rint(np.asarray(failures, float) / phi)
    b, m = np.rint(np.asarray(baseline_events, float) / phi), np.rint(np.asarray(baseline_failures, float) / phi)
    x, b = np.minimum(x, n), np.minimum(b, m)
    ok = (n > 0) & (m > 0)
    p = np.full(np.shape(x), np.nan)
    # P(X >= x), X ~ hypergeometric: n draws from n + m, of which x + b are the cluster's
    p[ok] = stats.hypergeom.sf(x[ok] - 1, (n + m)[ok], (x + b)[ok], n[ok])
    return np.minimum(p, 1.0)


def with_tests(counts: pl.DataFrame) -> pl.DataFrame:
    """`counts` (the columns of failure_cluster_daily.sql) with share, baseline_share, growth_ratio,
    p_value and q_value (Benjamini-Hochberg over every row with a p-value: all pairs of the night)."""
    frame = counts.with_columns(pl.col("events", "scenario_failures", "baseline_events", "baseline_failures")
                                .cast(pl.Int64))
    frame = frame.with_columns(
        share=pl.when(pl.col("scenario_failures") > 0).then(pl.col("events") / pl.col("scenario_failures")),
        baseline_share=pl.when(pl.col("baseline_failures") > 0)
        .then(pl.col("baseline_events") / pl.col("baseline_failures")))
    frame = frame.with_columns(growth_ratio=pl.when(pl.col("baseline_share") > 0)
                               .then(pl.col("share") / pl.col("baseline_share")))
    p = growth_pvalues(frame["events"].to_numpy(), frame["scenario_failures"].to_numpy(),
                       frame["baseline_events"].to_numpy(), frame["baseline_failures"].to_numpy(),
                       frame["dispersion"].to_numpy())
    q = np.full(len(p), np.nan)
    tested = ~np.isnan(p)
    q[tested] = benjamini_hochberg(p[tested])
    return frame.with_columns(pl.Series("p_value", p, pl.Float64).fill_nan(None),
                              pl.Series("q_value", q, pl.Float64).fill_nan(None))


def flags(frame: pl.DataFrame, day: date, fdr_q: float = 0.05, min_events: int = 5, growth_factor: float = 2.0,
          new_days: int = 1, new_nights: int = 2) -> pl.DataFrame:
    """`frame` (cluster_daily columns up to q_value) with `is_new` and `is_growing` of `day` (module docstring)."""
    young = pl.col("born_date").is_not_null() & (pl.col("born_date") >= day - timedelta(days=new_days))
    big = pl.col("events") >= min_events
    grew = (pl.col("baseline_share") == 0) | (pl.col("share") >= growth_factor * pl.col("baseline_share"))
    growing = pl.col("q_value").is_not_null() & (pl.col("q_value") <= fdr_q) & big & grew & ~young
    new = young & big & (pl.col("nights_seen") >= new_nights) & (pl.col("failures_before_birth") > 0)
    return frame.with_columns(is_new=new.fill_null(False), is_growing=growing.fill_null(False))


def growth_rules(policy: Policy) -> dict[str, float | int]:
    """The keyword arguments of `flags` that `policy.drift` sets: when a cluster is growing
    (`failure_fdr_q`, `failure_min_events`, `failure_min_ratio`) and when it is new
    (`failure_new_days`, `failure_new_nights`)."""
    d = policy.drift
    return {"fdr_q": d.failure_fdr_q, "min_events": d.failure_min_events, "growth_factor": d.failure_min_ratio,
            "new_days": d.failure_new_days, "new_nights": d.failure_new_nights}


def cluster_daily(settings: Settings, day: date, baseline_days: int = 7, policy: Policy | None = None,
                  **rules: float) -> pl.DataFrame:
    """The per-scenario cluster figures of `day` (see the module docstring), not yet written.

    `baseline_days`: days before `day` the baseline is taken over. The flags follow `policy`
    (default: the one `settings.policy` names; see `growth_rules`); `rules` (keywords of `flags`)
    override single values. Assumes `failures/assignments` and `failures/clusters` of `day` are
    built; the baseline reads whichever assignment partitions of the window exist.
    """
    rules = {**growth_rules(policy or load_policy(settings.policy)), **rules}
    layout = Layout(settings.store)
    today = layout.table(ASSIGNMENTS.path, day)
    clusters = layout.table(CLUSTERS.path, day)
    for path in (today, clusters):
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: build the failures tables of {day} first")
    start = day - timedelta(days=baseline_days)
    baseline = [str(p) for p in (layout.table(ASSIGNMENTS.path, start + timedelta(days=i)) for i in range(baseline_days))
                if p.exists()] or [str(layout.empty_table(ASSIGNMENTS.path, pl.DataFrame(schema=ASSIGNMENT_SCHEMA).to_arrow().schema))]
    with connect(settings) as con:
        counts = con.sql(load_sql("failure_cluster_daily"), params={
            "today": str(today), "baseline": baseline, "clusters": str(clusters), "day": day, "base_start": start,
            "min_events": rules["min_events"]}).pl()
    out = flags(with_tests(counts), day, **rules)  # type: ignore[arg-type]
    return out.select(COLUMNS)


def build_cluster_daily(settings: Settings, day: date, baseline_days: int = 7, policy: Policy | None = None,
                        **rules: float) -> pl.DataFrame:
    """Compute and store `failures/cluster_daily` of `day` (replacing the day's file); returns it.

    `baseline_days` (7): days before `day` the baseline is taken over. Whether a cluster is new or
    growing follows `policy`'s `drift.failure_*` (default: the policy `settings.policy` names), so
    the stored flags are the ones the `failure_cluster_growth` signal raises; `rules` (keywords of
    `flags`: `fdr_q`, `min_events`, `growth_factor`, `new_days`, `new_nights`) override single values.
    """
    frame = cluster_daily(settings, day, baseline_days, policy, **rules)
    table: pa.Table = frame.to_arrow()
    write_parquet_atomic(table, Layout(settings.store).table(CLUSTER_DAILY.path, day))
    return frame
