"""Daily partitions by event date (UTC), and the backfill policy: one run per range of days."""

from __future__ import annotations

from datetime import date

import dagster as dg

# Data before this date cannot be addressed as a partition; the CLI says so clearly.
FIRST_DAY = "2024-01-01"

daily = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, timezone="UTC")

# A backfill of many days runs as one process that walks its days in order, instead of one
# Dagster run (and one Python start-up) per day.
one_run = dg.BackfillPolicy.single_run()


def partition_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[date]:
    """The event days this run covers, in order."""
    keys = context.partition_keys if isinstance(context, dg.AssetExecutionContext) else _check_keys(context)
    return [date.fromisoformat(k) for k in keys]


def _check_keys(context: dg.AssetCheckExecutionContext) -> list[str]:
    run = context.run
    start = run.tags.get(dg.ASSET_PARTITION_RANGE_START_TAG) if hasattr(dg, "ASSET_PARTITION_RANGE_START_TAG") else None
    if start is None:
        start = run.tags.get("dagster/asset_partition_range_start")
    end = run.tags.get("dagster/asset_partition_range_end")
    if start and end:
        return daily.get_partition_keys_in_range(dg.PartitionKeyRange(start, end))
    key = run.tags.get("dagster/partition")
    return [key] if key else []
