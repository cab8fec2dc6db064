"""Outcome assets: ingest/interventions -> outcomes/event_outcomes -> daily and rolling marts,
recovery, and calibration with its reliability bins. Daily by event date, like ingestion. Their keys
are the table registry's (flywheel.tables); each step ends by republishing the analysts' catalog, as
every asset that writes a table does."""

from collections import Counter

import dagster as dg
import polars as pl

from assets.checks import mart_results, mart_specs
from assets.ingest import INTERVENTIONS
from assets.jobs import record_own_write, record_windows_read
from assets.partitions import daily_partitions, one_run, partition_days
from assets.resources import FlywheelResource
from flywheel import tables
from flywheel.catalog import build_catalog
from flywheel.outcomes.calibration import build_calibration
from flywheel.outcomes.rates import build_daily_rates, build_rolling_rates
from flywheel.outcomes.recovery import build_recovery_days
from flywheel.outcomes.resolve import build_event_outcomes

EVENT_OUTCOMES = dg.AssetKey(tables.EVENT_OUTCOMES.asset_key)
DAILY_RATES = dg.AssetKey(tables.DAILY_RATES.asset_key)
ROLLING_RATES = dg.AssetKey(tables.ROLLING_RATES.asset_key)
RECOVERY = dg.AssetKey(tables.RECOVERY.asset_key)
CALIBRATION = dg.AssetKey(tables.CALIBRATION.asset_key)
RELIABILITY_BINS = dg.AssetKey(tables.RELIABILITY_BINS.asset_key)

_COMMON = dict(partitions_def=daily_partitions, backfill_policy=one_run, group_name="outcomes",
               kinds={"duckdb", "parquet", "polars"}, owners=["team:flywheel"])


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def rates_markdown(frame: pl.DataFrame) -> str:
    """A Markdown table of one day's per-scenario rates, summed over models and versions."""
    if frame.height == 0:
        return "no events"
    by = frame.group_by("scenario").agg(pl.col("events", "reviewed", "accepted", "edited", "rejected", "errors").sum()).sort("scenario")
    lines = ["| scenario | events | reviewed | accepted as-is | edited | rejected | errors |", "|---|---|---|---|---|---|---|"]
    for r in by.iter_rows(named=True):
        rev = r["reviewed"] or None
        lines.append(f"| {r['scenario']} | {r['events']} | {r['reviewed']} | {_pct(r['accepted'] / rev if rev else None)} | "
                     f"{_pct(r['edited'] / rev if rev else None)} | {_pct(r['rejected'] / rev if rev else None)} | "
                     f"{_pct(r['errors'] / r['events'])} |")
    return "\n".join(lines)


@dg.asset(key=EVENT_OUTCOMES, deps=[INTERVENTIONS], **_COMMON)
def event_outcomes(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """Each event's resolved outcome: the latest intervention wins (ties: the more severe action);
    accepted with a changed text counts as edited; unreviewed events are awaiting review or acted
    alone; edit magnitude as normalised edit distances. Queried as `outcomes.event_outcomes`.
    Ends by republishing the analysts' catalog (`build_catalog`: a no-op unless a view changed)."""
    settings = flywheel.settings()
    counts: Counter[str] = Counter()
    for day in partition_days(context):
        counts.update(build_event_outcomes(settings, day))
    record_own_write(settings, context.run_id, partition_days(context))
    build_catalog(settings)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(sum(counts.values())),
        "outcomes": dg.MetadataValue.json(dict(sorted(counts.items()))),
    })


@dg.asset(key=DAILY_RATES, deps=[EVENT_OUTCOMES], **_COMMON, check_specs=mart_specs(DAILY_RATES))
def daily_rates(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """Per scenario x model x prompt version x autonomy level x day: outcome counts and rates with
    95% Wilson intervals, intervention frequency, edit magnitude, review time, error / timeout /
    fallback rates, latency and tokens. Queried as `outcomes.daily_rates`.
    Ends by republishing the analysts' catalog (`build_catalog`: a no-op unless a view changed)."""
    settings = flywheel.settings()
    days = partition_days(context)
    frames = [build_daily_rates(settings, d) for d in days]
    record_own_write(settings, context.run_id, days)
    build_catalog(settings)
    frame = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(frame.height),
            "last_day": dg.MetadataValue.text(days[-1].isoformat() if days else ""),
            "rates_last_day": dg.MetadataValue.md(rates_markdown(frames[-1]) if frames else "no days"),
        },
        check_results=mart_results(DAILY_RATES, settings, frame, days),
    )


@dg.asset(key=ROLLING_RATES, deps=[DAILY_RATES], **_COMMON)
def rolling_rates(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """7- and 28-day windows per scenario ending at each day, summed from the daily marts (never
    from raw events), with Wilson intervals. Queried as `outcomes.rolling_rates`.
    Ends by republishing the analysts' catalog (`build_catalog`: a no-op unless a view changed)."""
    settings = flywheel.settings()
    record_windows_read(context.instance, context.run_id, settings, "rolling_rates")  # before reading
    frames = [build_rolling_rates(settings, d) for d in partition_days(context)]
    build_catalog(settings)
    return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(sum(f.height for f in frames))})


@dg.asset(key=RECOVERY, deps=[EVENT_OUTCOMES], **_COMMON)
def recovery(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """Per scenario and day: runs of failures (error, timeout, reverted) and the time until the
    next successful event, mean and max. Queried as `outcomes.recovery`. A day's figures read the
    day before and after it: the stored days next to the run's are rebuilt too (`build_recovery_days`).
    Ends by republishing the analysts' catalog (`build_catalog`: a no-op unless a view changed)."""
    settings = flywheel.settings()
    frames = build_recovery_days(settings, partition_days(context))
    build_catalog(settings)
    frame = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(frame.height),
        "failure_runs": dg.MetadataValue.int(int(frame["failure_runs"].sum()) if frame.height else 0),
    })


@dg.multi_asset(
    specs=[
        dg.AssetSpec(CALIBRATION, deps=[EVENT_OUTCOMES], group_name="outcomes", kinds={"duckdb", "parquet"},
                     owners=["team:flywheel"],
                     description="Per scenario x model over the calibration window: ECE, Brier, ROC AUC and the "
                                 "recommended confidence gate with its coverage. Queried as `outcomes.calibration`. "
                                 "The step ends by republishing the analysts' catalog (a no-op unless a view changed)."),
        dg.AssetSpec(RELIABILITY_BINS, deps=[EVENT_OUTCOMES], group_name="outcomes", kinds={"duckdb", "parquet"},
                     owners=["team:flywheel"],
                     description="Equal-count reliability bins behind the calibration. Queried as `outcomes.reliability_bins`. "
                                 "The step ends by republishing the analysts' catalog (a no-op unless a view changed)."),
    ],
    partitions_def=daily_partitions, backfill_policy=one_run,
)
def calibration(context: dg.AssetExecutionContext, flywheel: FlywheelResource):
    """Calibration and reliability bins for each day of the run. Ends by republishing the
    analysts' catalog (`build_catalog`: a no-op unless a view changed)."""
    settings = flywheel.settings()
    record_windows_read(context.instance, context.run_id, settings, "calibration")  # before reading
    results = [build_calibration(settings, d) for d in partition_days(context)]
    build_catalog(settings)
    last = results[-1][0] if results else pl.DataFrame()
    gates = last.filter(pl.col("model") == "*") if last.height else last
    table = "| scenario | reviewed | ECE | AUC | gate | coverage |\n|---|---|---|---|---|---|\n" + "\n".join(
        f"| {r['scenario']} | {r['reviewed_with_confidence']} | {r['ece'] or 0:.3f} | "
        f"{'' if r['roc_auc'] is None else format(r['roc_auc'], '.3f')} | "
        f"{'none' if r['gate_threshold'] is None else format(r['gate_threshold'], '.2f')} | {_pct(r['gate_coverage'])} |"
        for r in gates.iter_rows(named=True))
    yield dg.MaterializeResult(asset_key=CALIBRATION, metadata={
        "dagster/row_count": dg.MetadataValue.int(sum(c.height for c, _ in results)),
        "gates_last_day": dg.MetadataValue.md(table)})
    yield dg.MaterializeResult(asset_key=RELIABILITY_BINS, metadata={
        "dagster/row_count": dg.MetadataValue.int(sum(b.height for _, b in results))})
