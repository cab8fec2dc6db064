"""Failure-mode assets: outcomes/event_outcomes -> failures/assignments -> clusters, cluster_history
and cluster_daily, built day by day in ascending order (each night continues the model of the
nights before it), as one step so the four tables of a day are always from the same night; then
the later nights that continued from an earlier build of these days are rebuilt
(`flywheel.failures.refresh_stale`). Beside them, outcomes/event_outcomes -> failures/edit_patterns:
what the humans changed in the drafts, per day and scenario. Their keys are the table registry's
(flywheel.tables); each step ends by republishing the analysts' catalog, as every asset that writes
a table does."""

import dagster as dg
import polars as pl

from assets.jobs import record_own_write
from assets.outcomes import EVENT_OUTCOMES
from assets.partitions import daily_partitions, one_run, partition_days
from assets.resources import FlywheelResource
from flywheel import tables
from flywheel.catalog import build_catalog
from flywheel.failures import build_failures, refresh_stale
from flywheel.failures.ahead import EditsAhead
from flywheel.failures.patterns import build_edit_patterns, top_substitutions_markdown

ASSIGNMENTS = dg.AssetKey(tables.ASSIGNMENTS.asset_key)
CLUSTERS = dg.AssetKey(tables.CLUSTERS.asset_key)
CLUSTER_HISTORY = dg.AssetKey(tables.CLUSTER_HISTORY.asset_key)
CLUSTER_DAILY = dg.AssetKey(tables.CLUSTER_DAILY.asset_key)
EDIT_PATTERNS = dg.AssetKey(tables.EDIT_PATTERNS.asset_key)

_SPEC = dict(group_name="failures", kinds={"duckdb", "parquet", "scikitlearn"}, owners=["team:flywheel"])
TOP_PER_SCENARIO = 3


# The Dagster UI shows Markdown metadata inline only below 1,000 characters (else behind a
# "[Show Markdown]" button): the table is fitted under it.
INLINE_MARKDOWN = 999


def top_clusters_markdown(frame: pl.DataFrame, top: int = TOP_PER_SCENARIO, limit: int = INLINE_MARKDOWN) -> str:
    """A Markdown table of each scenario's `top` failure clusters of one day, largest first, within
    `limit` characters: fewer clusters per scenario first, then labels shortened (to 48, then 24
    characters), so that the names stay readable."""
    if frame.height == 0:
        return "no failing events"
    text = ""
    for width in (None, 48, 24):
        for n in range(top, 0, -1):
            text = _clusters_table(frame, n, width)
            if len(text) <= limit:
                return text
    return text


def _clusters_table(frame: pl.DataFrame, top: int, width: int | None) -> str:
    ranked = (frame.filter(pl.col("events") > 0)
              .sort(["scenario", "events", "cluster_id"], descending=[False, True, False])
              .group_by("scenario", maintain_order=True).head(top))
    lines = ["| scenario | cluster | label | events | share | growth | flag |", "|---|---|---|---|---|---|---|"]
    for r in ranked.iter_rows(named=True):
        growth = "" if r["growth_ratio"] is None else f"{r['growth_ratio']:.1f}x"
        flag = "new" if r["is_new"] else "growing" if r["is_growing"] else ""
        label = (r["label"] or "").replace("|", "/")
        if width is not None and len(label) > width:
            label = label[:width - 1].rstrip() + "…"
        lines.append(f"| {r['scenario']} | {r['cluster_id']} | {label} | {r['events']} | {100 * r['share']:.1f}% | "
                     f"{growth} | {flag} |")
    return "\n".join(lines)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(ASSIGNMENTS, deps=[EVENT_OUTCOMES], **_SPEC,
                     description="Each failing event (rejected, escalated, reverted, heavily edited; error, timeout, "
                                 "fallback) with the failure cluster it joined and how; personal data redacted from "
                                 "the text before it is featurised. Queried as `failures.assignments`. "
                                 "The step ends by republishing the analysts' catalog (a no-op unless a view changed)."),
        dg.AssetSpec(CLUSTERS, deps=[ASSIGNMENTS], **_SPEC,
                     description="Every failure cluster known after the night: stable id, label of distinctive terms, "
                                 "exemplar events, birth, size. Queried as `failures.clusters` (latest) and "
                                 "`failures.cluster_snapshots`. "
                                 "The step ends by republishing the analysts' catalog (a no-op unless a view changed)."),
        dg.AssetSpec(CLUSTER_HISTORY, deps=[ASSIGNMENTS], **_SPEC,
                     description="Per night and cluster: born or matched, and how its events were matched; the events "
                                 "that fit no cluster. Queried as `failures.cluster_history`. "
                                 "The step ends by republishing the analysts' catalog (a no-op unless a view changed)."),
        dg.AssetSpec(CLUSTER_DAILY, deps=[ASSIGNMENTS, CLUSTERS], **_SPEC,
                     description="Per day, scenario and cluster: events, share, growth against the baseline window, "
                                 "new and growing flags. Queried as `failures.cluster_daily`. The step ends by republishing "
                                 "the analysts' catalog (a no-op unless a view changed)."),
    ],
    partitions_def=daily_partitions, backfill_policy=one_run,
)
def failure_clusters(context: dg.AssetExecutionContext, flywheel: FlywheelResource):
    """Assign each day's failing events to failure clusters, in day order, and derive the tables.
    Ends by republishing the analysts' catalog (`build_catalog`: a no-op unless a view changed)."""
    settings = flywheel.settings()
    built = []
    days = partition_days(context)
    with EditsAhead(settings, days) as ahead:  # the later days' edits diffed in a helper meanwhile
        for day in days:
            built.append(build_failures(settings, day, run_id=context.run_id, ahead=ahead))
            context.log.info(f"failures {day}: {built[-1][tables.ASSIGNMENTS.path].height} failing events")
    refreshed = refresh_stale(settings, run_id=context.run_id)
    if refreshed:
        context.log.info(f"failures: rebuilt {len(refreshed)} later night(s) that continued from an earlier build: "
                         f"{refreshed[0]} .. {refreshed[-1]}")
    record_own_write(settings, context.run_id, [*partition_days(context), *refreshed])
    build_catalog(settings)
    last = built[-1] if built else {}
    assigned = sum(b[tables.ASSIGNMENTS.path].height for b in built)
    matched = (pl.concat([b[tables.ASSIGNMENTS.path].select("matched_as") for b in built]).group_by("matched_as").len()
               if built else pl.DataFrame({"matched_as": [], "len": []}))
    yield dg.MaterializeResult(asset_key=ASSIGNMENTS, metadata={
        "dagster/row_count": dg.MetadataValue.int(assigned),
        "later_nights_rebuilt": dg.MetadataValue.int(len(refreshed)),
        "matched_as": dg.MetadataValue.json({r["matched_as"]: r["len"] for r in matched.iter_rows(named=True)})})
    clusters = last.get(tables.CLUSTERS.path, pl.DataFrame())
    yield dg.MaterializeResult(asset_key=CLUSTERS, metadata={
        "dagster/row_count": dg.MetadataValue.int(clusters.height),
        "new_last_day": dg.MetadataValue.int(int(clusters["is_new"].sum()) if clusters.height else 0)})
    history = last.get(tables.CLUSTER_HISTORY.path, pl.DataFrame())
    yield dg.MaterializeResult(asset_key=CLUSTER_HISTORY, metadata={
        "dagster/row_count": dg.MetadataValue.int(sum(b[tables.CLUSTER_HISTORY.path].height for b in built)),
        "born_last_day": dg.MetadataValue.int(int(history["born"].sum()) if history.height else 0)})
    cd = last.get(tables.CLUSTER_DAILY.path, pl.DataFrame())
    flagged = cd.filter(pl.col("is_new") | pl.col("is_growing")).height if cd.height else 0
    yield dg.MaterializeResult(asset_key=CLUSTER_DAILY, metadata={
        "dagster/row_count": dg.MetadataValue.int(sum(b[tables.CLUSTER_DAILY.path].height for b in built)),
        "flagged_last_day": dg.MetadataValue.int(flagged),
        "top_clusters_last_day": dg.MetadataValue.md(top_clusters_markdown(cd))})


@dg.asset(key=EDIT_PATTERNS, deps=[EVENT_OUTCOMES], group_name="failures", kinds={"duckdb", "parquet", "polars"},
          owners=["team:flywheel"], partitions_def=daily_partitions, backfill_policy=one_run)
def edit_patterns(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """Per day and scenario, what the humans changed in the AI's drafts (substitutions, insertions,
    deletions, moves, flags, length changes) and in how many of the edited events; every event whose
    final text differs from its draft counts, text redacted first. Queried as `failures.edit_patterns`.
    Ends by republishing the analysts' catalog (`build_catalog`: a no-op unless a view changed)."""
    settings = flywheel.settings()
    frames = [build_edit_patterns(settings, day) for day in partition_days(context)]
    build_catalog(settings)
    last = frames[-1] if frames else pl.DataFrame()
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(sum(f.height for f in frames)),
        "top_substitutions_last_day": dg.MetadataValue.md(top_substitutions_markdown(last) if last.height
                                                          else "no edited events")})
