"""Ingestion assets: landing files -> ingest/events -> ingest/interventions, daily by event date.

Both run over the days of their run (one day from the schedule, a range in a backfill), write the
store's Parquet partitions atomically, republish the analysts' catalog, and validate what they wrote
with their Great Expectations suite and the accounting check. The landing sync in ingest/events
records the event days whose inputs changed (`flywheel.ingest.changed_days`) and tags the run with
the record's version, so a successful run clears the days it rebuilt and `late_data_sensor` runs
the others.
"""


from collections import Counter

import dagster as dg
import polars as pl

from assets.checks import accounting_result, accounting_spec, gx_result, gx_spec
from assets.jobs import REBUILD_VERSION, record_own_write
from assets.partitions import daily_partitions, one_run, partition_days
from assets.resources import FlywheelResource
from flywheel import tables
from flywheel.catalog import build_catalog
from flywheel.ingest import changed_days
from flywheel.ingest.manifest import file_id
from flywheel.ingest.partition import PartitionResult, build_events, build_interventions
from flywheel.ingest.sync import SyncReport, sync_landing
from flywheel.objectstore import polars_options, url
from flywheel.quality import read_for_suite
from flywheel.store import Layout

EVENTS = dg.AssetKey(tables.EVENTS.asset_key)
INTERVENTIONS = dg.AssetKey(tables.INTERVENTIONS.asset_key)
LANDING = dg.AssetKey(["landing", "files"])

landing_files = dg.AssetSpec(
    LANDING, group_name="ingest", kinds={"file"},
    description="Files producers drop into the landing folder: events/, interventions/ (JSON Lines, "
                "gzip, CSV, Parquet) and otlp/ (OpenTelemetry GenAI and OpenInference spans as OTLP JSON or protobuf).",
)


def _read_days(layout: Layout, table: str, days: list) -> pl.DataFrame:
    paths = [layout.table(table, d) for d in days]
    frames = [pl.read_parquet(url(p), storage_options=polars_options(p)) for p in paths if p.exists()]
    return pl.concat(frames) if frames else pl.DataFrame()


def _read_for_suite(layout: Layout, table: str, days: list) -> pl.DataFrame:
    """The run's days of `table`, only as much of them as its GX suite reads (`read_for_suite`)."""
    return read_for_suite([p for p in (layout.table(table, d) for d in days) if p.exists()], table)


def _summary(results: list[PartitionResult]) -> dict[str, dg.MetadataValue]:
    staged = sum(r.staged for r in results)
    stored = sum(r.stored for r in results)
    dups = sum(r.duplicates for r in results)
    quarantined = sum(r.quarantined for r in results)
    table = "| day | staged | stored | exact duplicates | quarantined |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {r.day} | {r.staged} | {r.stored} | {r.duplicates} | {r.quarantined} |" for r in results)
    return {
        "dagster/row_count": dg.MetadataValue.int(stored),
        "staged": dg.MetadataValue.int(staged),
        "exact_duplicates": dg.MetadataValue.int(dups),
        "quarantined": dg.MetadataValue.int(quarantined),
        "days": dg.MetadataValue.md(table),
    }


@dg.asset(
    key=EVENTS, deps=[LANDING], partitions_def=daily_partitions, backfill_policy=one_run, group_name="ingest",
    kinds={"duckdb", "parquet"}, owners=["team:flywheel"],
    check_specs=[gx_spec(EVENTS, "events"), gx_spec(EVENTS, "quarantine")],
)
def events(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """AI audit events, one row per invocation, deduplicated, stored as Parquet per event day
    (UTC) and queried as `ingest.events`. Reads new and changed landing files first (each file once);
    invalid records go to `ingest.quarantine` with their reason. Days whose inputs the read changed
    are recorded for rebuilding; those outside this run are run by `late_data_sensor`. Ends by
    republishing the analysts' catalog (`build_catalog`: a no-op unless a view changed)."""
    settings = flywheel.settings()
    layout = Layout(settings.store)
    report = sync_landing(settings)
    days = partition_days(context)
    # Read after the sync, before any day is built: every day marked so far is rebuilt from data
    # this run reads, so the run may clear them once it succeeds (assets.jobs.clear_rebuilt).
    rebuild = changed_days.pending(layout)
    context.instance.add_run_tags(context.run_id, {REBUILD_VERSION: str(rebuild.version)})
    results = [build_events(settings, d) for d in days]
    record_own_write(settings, context.run_id, days)  # later days' windows built without these are stale
    build_catalog(settings)
    for r in report.changed:
        context.log.info(f"read {r.path}: {r.read} records, {r.quarantined} quarantined ({r.status})")
    warning = report.bad_files_warning()
    if warning:
        context.log.warning(warning)
    quarantine = pl.concat([_read_days(layout, tables.QUARANTINE_EVENTS.path, days), _read_quarantine(layout, report)],
                           how="diagonal_relaxed")
    reasons = Counter(quarantine["reason_code"].to_list()) if quarantine.height else Counter()
    metadata = _summary(results)
    metadata["landing_files_read"] = dg.MetadataValue.int(len(report.changed))
    metadata["landing_records_read"] = dg.MetadataValue.int(sum(r.read for r in report.changed))
    metadata["landing_records_quarantined"] = dg.MetadataValue.int(sum(r.quarantined for r in report.changed))
    metadata["quarantined_by_reason"] = dg.MetadataValue.json(dict(sorted(reasons.items())))
    metadata["days_marked_to_rebuild"] = dg.MetadataValue.json(sorted(d.isoformat() for d in report.rebuild_days))
    metadata["days_to_rebuild_outside_run"] = dg.MetadataValue.json(
        sorted(d.isoformat() for d in rebuild.days if d not in set(days)))
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            gx_result(EVENTS, "events", _read_for_suite(layout, "events", days)),
            gx_result(EVENTS, "quarantine", quarantine),
        ],
    )


def _read_quarantine(layout: Layout, report: SyncReport) -> pl.DataFrame:
    """Quarantine rows of the landing files this run read."""
    paths = [layout.staged_quarantine(file_id(r.path)) for r in report.changed]
    frames = [pl.read_parquet(url(p), storage_options=polars_options(p)) for p in paths if p.exists()]
    return pl.concat(frames) if frames else pl.DataFrame()


@dg.asset(
    key=INTERVENTIONS, deps=[EVENTS], partitions_def=daily_partitions, backfill_policy=one_run, group_name="ingest",
    kinds={"duckdb", "parquet"}, owners=["team:flywheel"],
    check_specs=[gx_spec(INTERVENTIONS, "interventions"), accounting_spec(INTERVENTIONS)],
)
def interventions(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """Human interventions (accepted, edited, rejected, escalated, reverted), attached to their
    event's day and queried as `ingest.interventions`. Interventions whose event has not arrived
    wait in `ingest.pending_interventions` and join when it does.
    Ends by republishing the analysts' catalog (`build_catalog`: a no-op unless a view changed)."""
    settings = flywheel.settings()
    layout = Layout(settings.store)
    days = partition_days(context)
    results = [build_interventions(settings, d) for d in days]
    build_catalog(settings)
    sources = sorted({f for r in results for f in r.source_files}
                     | {f for d in days for f in _event_sources(layout, d)})
    return dg.MaterializeResult(
        metadata=_summary(results),
        check_results=[
            gx_result(INTERVENTIONS, "interventions", _read_for_suite(layout, "interventions", days)),
            accounting_result(INTERVENTIONS, settings, sources),
        ],
    )


def _event_sources(layout: Layout, day) -> list[str]:
    path = layout.table(tables.EVENTS.path, day)
    if not path.exists():
        return []
    return pl.read_parquet(url(path), columns=["source_file"],
                           storage_options=polars_options(path))["source_file"].unique().to_list()
