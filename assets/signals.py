"""Signal and publish assets: drift, promotion gates and decisions per day (with the append-only
decision log and automatic fail-safe demotions), then the decision feed the AI product reads.
Their keys are the table registry's (flywheel.tables); the decisions step ends by republishing the
analysts' catalog, as every asset that writes a table does."""

import dagster as dg
import polars as pl

from assets.failures import CLUSTER_DAILY
from assets.jobs import due_days, record_windows_read, window_lookback, windows_snapshot
from assets.outcomes import CALIBRATION, DAILY_RATES, EVENT_OUTCOMES
from assets.partitions import daily_partitions, one_run, partition_days
from assets.resources import FlywheelResource
from flywheel import tables
from flywheel.catalog import build_catalog
from flywheel.ingest import changed_days
from flywheel.signals.decide import decide_day, policy_for
from flywheel.signals.feed import pending, publish_feed
from flywheel.store import Layout

DRIFT = dg.AssetKey(tables.DRIFT.asset_key)
GATE_EVALUATIONS = dg.AssetKey(tables.GATE_EVALUATIONS.asset_key)
DECISIONS = dg.AssetKey(tables.DECISIONS.asset_key)
FEED = dg.AssetKey(["publish", "decision_feed"])

_SPEC = dict(group_name="signals", kinds={"duckdb", "parquet"}, owners=["team:flywheel"])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(DRIFT, deps=[DAILY_RATES, EVENT_OUTCOMES, CLUSTER_DAILY], **_SPEC,
                     description="Drift of each scenario (and model, prompt version) against its baseline: rate tests "
                                 "with Benjamini-Hochberg control, CUSUM, PSI and KS of confidence, input length and mix, "
                                 "calibration change, failure-cluster growth, volume; each with a severity. Queried as `signals.drift`. "
                                 "The step ends by republishing the analysts' catalog (a no-op unless a view changed)."),
        dg.AssetSpec(GATE_EVALUATIONS, deps=[DRIFT, CALIBRATION], **_SPEC,
                     description="Each promotion gate per scenario and day, and whether all held. "
                                 "Queried as `signals.gate_evaluations`. "
                                 "The step ends by republishing the analysts' catalog (a no-op unless a view changed)."),
        dg.AssetSpec(DECISIONS, deps=[GATE_EVALUATIONS], **_SPEC,
                     description="Recommendations with their evidence, rule and policy version: autonomy level, "
                                 "confidence gate, audit share, prompt and model versions, tool boundaries. Appends to "
                                 "the decision log; fail-safe demotions take effect at once. Queried as `signals.decisions`. "
                                 "The step ends by republishing the analysts' catalog (a no-op unless a view changed)."),
    ],
    partitions_def=daily_partitions, backfill_policy=one_run,
)
def decisions(context: dg.AssetExecutionContext, flywheel: FlywheelResource):
    """Drift, gate evaluations and decisions for each day of the run, in order. Ends by
    republishing the analysts' catalog (`build_catalog`: a no-op unless a view changed)."""
    settings = flywheel.settings()
    own = record_windows_read(context.instance, context.run_id, settings, "decisions")  # before reading
    run = context.instance.get_run_by_id(context.run_id)
    since = windows_snapshot(run.tags if run else {}, own)
    policy = policy_for(settings)
    layout, due, lookback = Layout(settings.store), due_days(settings), window_lookback(settings, policy)
    frames, stale = [], {}
    for d in partition_days(context):
        frames.append(decide_day(settings, d, context.run_id, policy))
        # every window table of d is written: record it, and whether it was computed without data now there
        entry = changed_days.windows_built(layout, d, context.run_id, since, due, lookback)
        if entry is not None:
            stale[d.isoformat()] = f"{entry.reason} since {entry.since}"
    if stale:
        context.log.warning(f"window tables computed without earlier days' current data (refresh_windows "
                            f"follows once they are there): {stale}")
    build_catalog(settings)
    last = frames[-1] if frames else pl.DataFrame()
    autonomy = last.filter(pl.col("kind") == "autonomy") if last.height else last
    table = "| scenario | current | recommended | rule | effect |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {r['scenario']} | {r['current']} | {r['recommended']} | {r['rule']} | {r['effect']} |"
        for r in autonomy.iter_rows(named=True))
    counts = {a: n for a, n in last.group_by("action").len().iter_rows()} if last.height else {}
    yield dg.MaterializeResult(asset_key=DRIFT, metadata={"policy_version": dg.MetadataValue.text(policy.version)})
    yield dg.MaterializeResult(asset_key=GATE_EVALUATIONS, metadata={})
    yield dg.MaterializeResult(asset_key=DECISIONS, metadata={
        "dagster/row_count": dg.MetadataValue.int(sum(f.height for f in frames)),
        "autonomy_last_day": dg.MetadataValue.md(table), "actions_last_day": dg.MetadataValue.json(counts),
        "stale_windows": dg.MetadataValue.json(stale),
        "policy_version": dg.MetadataValue.text(policy.version)})


@dg.asset(key=FEED, deps=[DECISIONS], partitions_def=daily_partitions, backfill_policy=one_run, group_name="publish",
          kinds={"json"}, owners=["team:flywheel"])
def decision_feed(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """The feed the AI product reads: per scenario the approved and recommended autonomy level,
    confidence gate, audit share, prompt version and tool permissions; one JSON file per run and
    `latest.json`, each written atomically under FLYWHEEL_PUBLISH/feed/."""
    settings = flywheel.settings()
    path = publish_feed(settings, context.run_id)  # the newest decided day, whatever days this run covered
    waiting = pending(settings)
    return dg.MaterializeResult(metadata={
        "feed": dg.MetadataValue.path(str(path.resolve())),
        "latest": dg.MetadataValue.path(str((path.parent / "latest.json").resolve())),
        "pending_approvals": dg.MetadataValue.int(waiting.height),
    })
