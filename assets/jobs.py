"""The nightly job, how a run is asked for a range of event days, and how a successful run clears
the days it rebuilt from the store's record of days to rebuild (`flywheel.ingest.changed_days`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import dagster as dg

from assets.partitions import daily_partitions
from flywheel import tables
from flywheel.config import Settings
from flywheel.ingest import changed_days
from flywheel.signals.feed import decided_days
from flywheel.store import Layout

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
# Set by ingest/events after its landing sync: the version of the days-to-rebuild record that sync
# left. Every day of the run marked at or before it is rebuilt once the run succeeds.
REBUILD_VERSION = "flywheel/rebuild_version"

nightly_job = dg.define_asset_job(
    "nightly",
    selection=dg.AssetSelection.all() - dg.AssetSelection.keys(dg.AssetKey(["landing", "files"]))
    - dg.AssetSelection.groups("sources"),  # pulled sources run on their own (assets/sources.py)
    partitions_def=daily_partitions,
    description="Everything the nightly run materialises, for one event day or a range of days.",
)


# What a day's figures over a window are built from: when an older day was rebuilt (late reviews),
# the later days whose windows hold it are refreshed with this job, in ascending order, so their
# rolling rates, calibration, drift, gates and decisions (and the feed of the newest day) see it.
WINDOW_ASSETS = [*(dg.AssetKey(t.asset_key) for t in (tables.ROLLING_RATES, tables.CALIBRATION, tables.RELIABILITY_BINS,
                                                       tables.DRIFT, tables.GATE_EVALUATIONS, tables.DECISIONS)),
                 dg.AssetKey(["publish", "decision_feed"]), dg.AssetKey(["publish", "report"])]

refresh_job = dg.define_asset_job(
    "refresh_windows",
    selection=dg.AssetSelection.keys(*WINDOW_ASSETS),
    partitions_def=daily_partitions,
    description="The window figures and decisions of the days after a rebuilt older day (late reviews), "
                "in ascending order; the day partitions themselves are not rebuilt.",
)


def refresh_ranges(settings: Settings, rebuilt_last: date) -> list[tuple[date, date]]:
    """The days to refresh after days up to `rebuilt_last` were rebuilt: the decided days after it
    (their windows may hold a rebuilt day), as ranges of consecutive days in ascending order."""
    later = [d for d in decided_days(settings) if d > rebuilt_last]
    return changed_days.contiguous(later)


def range_tags(first: date, last: date) -> dict[str, str]:
    """Run tags that make one run cover the event days first..last (inclusive)."""
    return {RANGE_START: first.isoformat(), RANGE_END: last.isoformat()}


def run_days_of(tags: Mapping[str, str]) -> list[date]:
    """The event days a nightly run covers, from its tags (a range, or one partition)."""
    if tags.get(RANGE_START) and tags.get(RANGE_END):
        keys = daily_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(tags[RANGE_START], tags[RANGE_END]))
    else:
        keys = [tags["dagster/partition"]] if tags.get("dagster/partition") else []
    return [date.fromisoformat(k) for k in keys]


def clear_rebuilt(settings: Settings, tags: Mapping[str, str]) -> list[date]:
    """Drop from the days to rebuild those a successful run with `tags` rebuilt; returns them
    (none when the run's sync left no version: it did not run ingest/events)."""
    version = tags.get(REBUILD_VERSION)
    if version is None:
        return []
    return changed_days.clear(Layout(settings.store), run_days_of(tags), int(version))
