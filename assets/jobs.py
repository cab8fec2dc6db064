"""The nightly job, how a run is asked for a range of event days, and how a successful run clears
the days it rebuilt from the store's record of days to rebuild (`flywheel.ingest.changed_days`);
the `refresh_windows` job, and what the steps record in that same record so that a day whose
window tables were computed without data now there is known stale until it is refreshed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

import dagster as dg

from assets.partitions import FIRST_DAY, daily_partitions
from flywheel import tables
from flywheel.config import Settings
from flywheel.ingest import changed_days
from flywheel.ingest.manifest import load_manifests
from flywheel.signals.feed import decided_days
from flywheel.signals.policy import Policy
from flywheel.store import Layout

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
# Set by ingest/events after its landing sync: the version of the days-to-rebuild record that sync
# left. Every day of the run marked at or before it is rebuilt once the run succeeds.
REBUILD_VERSION = "flywheel/rebuild_version"
# Set by each window step as it starts (one tag per step): the record's version before it read
# anything. The smallest is the run's snapshot its window builds are checked against.
WINDOWS_READ = "flywheel/windows_read_"

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
    description="The window figures and decisions of the days recorded stale (after a rebuilt older day, "
                "a late review, or an earlier day that finished after them), in ascending order; the day "
                "partitions themselves are not rebuilt.",
)


def refresh_ranges(settings: Settings, today: date) -> list[tuple[date, date]]:
    """The days to refresh: the decided days before `today` from the first whose windows are
    recorded stale for a change ("changed") on, as ranges of consecutive days in ascending order.
    A refresh of a day rewrites its gates, which the days after it read, so all of them follow.
    Days stale only for a missing earlier day are left: their refresh would find it missing again
    (its own run marks them "changed" when it is written)."""
    stale = changed_days.pending(Layout(settings.store)).stale
    changed = [d for d, e in stale.items() if e.reason == "changed" and d < today]
    if not changed:
        return []
    return changed_days.contiguous(d for d in decided_days(settings) if min(changed) <= d < today)


def record_own_write(settings: Settings, run_id: str, days: Iterable[date]) -> list[date]:
    """After a step wrote the own tables of `days` (what window tables read): record it; the days
    whose windows were built from the earlier data are marked stale. Returns them."""
    return changed_days.own_written(Layout(settings.store), days, run_id, decided_days(settings))


def record_windows_read(instance, run_id: str, settings: Settings, step: str) -> int:
    """At the start of window step `step`, before it reads: the record's version, kept as a run tag."""
    version = changed_days.windows_read(Layout(settings.store))
    instance.add_run_tags(run_id, {f"{WINDOWS_READ}{step}": str(version)})
    return version


def windows_snapshot(tags: Mapping[str, str], own: int) -> int:
    """The run's snapshot: the smallest version its window steps took (`record_windows_read`),
    this step's `own` included."""
    return min([own, *(int(v) for k, v in tags.items() if k.startswith(WINDOWS_READ))])


def window_lookback(settings: Settings, policy: Policy) -> int:
    """How many days, up to and including its own, a day's window tables read: the 28-day rolling
    rates, the calibration window, drift's current and baseline windows."""
    return max(28, settings.calibration_window_days, policy.windows.current_days + policy.windows.baseline_days)


def due_days(settings: Settings) -> set[date]:
    """The event days with staged events from the first partition on: days a window may not be
    computed without."""
    first = date.fromisoformat(FIRST_DAY)
    return {d for m in load_manifests(Layout(settings.store)).values()
            for d in map(date.fromisoformat, m.get("event_days") or []) if d >= first}


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
