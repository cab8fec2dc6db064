"""The nightly job, and how a run is asked for a range of event days."""

from __future__ import annotations

from datetime import date

import dagster as dg

from assets.partitions import daily

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"

nightly_job = dg.define_asset_job(
    "nightly",
    selection=dg.AssetSelection.all() - dg.AssetSelection.keys(dg.AssetKey(["landing", "files"])),
    partitions_def=daily,
    description="Everything the nightly run materialises, for one event day or a range of days.",
)


def range_tags(first: date, last: date) -> dict[str, str]:
    """Run tags that make one run cover the event days first..last (inclusive)."""
    return {RANGE_START: first.isoformat(), RANGE_END: last.isoformat()}
