"""The nightly report asset: a static HTML page per run with plots, linked from its materialisation."""

import dagster as dg

from assets.failures import CLUSTER_DAILY, CLUSTERS
from assets.outcomes import CALIBRATION, DAILY_RATES, RELIABILITY_BINS
from assets.partitions import daily_partitions, one_run
from assets.resources import FlywheelResource
from assets.signals import DECISIONS
from flywheel.report import publish_report, report_summary

REPORT = dg.AssetKey(["publish", "report"])


@dg.asset(key=REPORT, deps=[DECISIONS, DAILY_RATES, CALIBRATION, RELIABILITY_BINS, CLUSTERS, CLUSTER_DAILY], partitions_def=daily_partitions,
          backfill_policy=one_run, group_name="publish", kinds={"html"}, owners=["team:flywheel"])
def report(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
    """The nightly report people read instead of querying: every scenario's state, outcome rates
    over time with intervals and rollouts marked, reliability diagrams, failure clusters, drift
    alerts and decisions awaiting approval; FLYWHEEL_PUBLISH/report/<run_id>.html and latest.html."""
    settings = flywheel.settings()
    path = publish_report(settings, context.run_id).resolve()
    summary = report_summary(path)
    return dg.MaterializeResult(metadata={
        "report": dg.MetadataValue.url(path.as_uri()),
        "report_path": dg.MetadataValue.path(str(path)),
        "latest": dg.MetadataValue.path(str(path.parent / "latest.html")),
        "plots": dg.MetadataValue.int(summary["plots"]),
    })
