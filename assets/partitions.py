"""Daily partitions by event date (UTC), and the backfill policy: one run per range of days."""

from __future__ import annotations

from datetime import date

import dagster as dg

# Data before this date cannot be addressed as a partition; the CLI says so clearly.
FIRST_DAY = "2024-01-01"

daily_partitions = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, timezone="UTC")

# A backfill of many days runs as one process that walks its days in order, instead of one
# Dagster run (and one Python start-up) per day.
one_run = dg.BackfillPolicy.single_run()


def partition_days(context: dg.AssetExecutionContext) -> list[date]:
    """The event days this run covers, in order."""
    return [date.fromisoformat(k) for k in context.partition_keys]
