"""Recovery time: for each run of failures (error, timeout, or a reverted action) in a scenario,
the time from its first failure until the scenario's next successful event (status ok, not
reverted). Runs are counted on the day they start; the next day's events are looked at to find
their end, and a run with no success by then is `open`. The day before tells whether a run was
already going at midnight (then it is that day's run, not a new one). Events are taken in
`occurred_at` order, ties in `event_id` order, so equal timestamps give the same runs every night.

A day's recovery thus reads its neighbours' outcomes: a build of some days (`build_recovery_days`)
also rebuilds the stored day just before and just after each of them, whose figures may change
with it (a backfill in runs of a week: the first day of the next run; day partitions run at once
in any order; an old day re-run). Each day is read and written under the store's recovery lock,
so of two runs rebuilding one day the one that writes last read last: it saw every outcome the
other saw."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from flywheel.config import Settings
from flywheel.objectstore import polars_options, url
from flywheel.store import Layout, exclusive, write_parquet_atomic
from flywheel.tables import EVENT_OUTCOMES, RECOVERY

_COLUMNS = ["scenario", "occurred_at", "event_id", "event_date", "status", "outcome"]


def _in_order(events: pl.DataFrame) -> bool:
    """Whether `events` are in (occurred_at, event_id) order, as the stored outcomes are."""
    at, event_id = pl.col("occurred_at"), pl.col("event_id")
    after = (at > at.shift(1)) | ((at == at.shift(1)) & (event_id > event_id.shift(1)))
    return bool(events.select(after.slice(1).all()).item()) if events.height > 1 else True


def failure_runs(events: pl.DataFrame, day: date) -> pl.DataFrame:
    """Per scenario: the runs of failures starting on `day` among `events` (scenario, occurred_at,
    event_id, event_date, status, outcome of the day before, the day and the day after)."""
    failed = pl.col("failed")
    if not _in_order(events):  # the stored outcomes are; a scenario's events are then in order too
        events = events.sort("occurred_at", "event_id")
    runs = (
        events.lazy()
        .with_columns(failed=pl.col("status").is_in(["error", "timeout"]) | (pl.col("outcome") == "reverted"))
        .filter(failed | (pl.col("status") == "ok"))  # other events (fallbacks, ...) neither start nor end a run
        .with_columns(
            run_start=failed & ~failed.shift(1).fill_null(False).over("scenario"),
            # the first success after each event: the success times, shifted back one and filled backwards
            next_success_at=pl.when(~failed).then(pl.col("occurred_at")).shift(-1).backward_fill().over("scenario"),
        )
        .filter(pl.col("run_start") & (pl.col("event_date") == day))
        .with_columns(recovery_seconds=(pl.col("next_success_at") - pl.col("occurred_at")).dt.total_microseconds() / 1e6)
    )
    return (
        runs.group_by("scenario")
        .agg(failure_runs=pl.len(), recovered_runs=pl.col("recovery_seconds").count(),
             recovery_seconds_mean=pl.col("recovery_seconds").mean(),
             recovery_seconds_max=pl.col("recovery_seconds").max())
        .with_columns(event_date=pl.lit(day), open_runs=pl.col("failure_runs") - pl.col("recovered_runs"))
        .sort("scenario")
        .collect()
        .select(pl.col(name).cast(dtype) for name, dtype in RECOVERY.polars_schema().items())
    )


def build_recovery(settings: Settings, day: date) -> pl.DataFrame:
    """Write and return the failure runs starting on `day`, per scenario."""
    layout = Layout(settings.store)
    with exclusive(layout.lock("recovery")):
        days = layout.days(EVENT_OUTCOMES.path, day - timedelta(days=1), day + timedelta(days=1))
        if day not in days:
            raise ValueError(f"the outcomes of {day} must be built before its recovery")
        # the day before, the day and the day after, each in (occurred_at, event_id) order: together in order
        files = [layout.table(EVENT_OUTCOMES.path, d) for d in days]
        events = pl.concat([pl.read_parquet(url(f), columns=_COLUMNS, storage_options=polars_options(f)) for f in files],
                           how="vertical_relaxed")
        frame = failure_runs(events, day)
        write_parquet_atomic(frame.to_arrow(), layout.table(RECOVERY.path, day))
    return frame


def build_recovery_days(settings: Settings, days: list[date]) -> list[pl.DataFrame]:
    """`build_recovery` of each of `days` (returned, in order), then of each stored day next to one of
    them that is not one of them (its figures read theirs; not returned)."""
    frames = [build_recovery(settings, d) for d in days]
    if days:
        own = set(days)
        stored = Layout(settings.store).days(EVENT_OUTCOMES.path, min(days) - timedelta(days=1),
                                             max(days) + timedelta(days=1))
        for d in stored:
            if d not in own and (d + timedelta(days=1) in own or d - timedelta(days=1) in own):
                build_recovery(settings, d)
    return frames
