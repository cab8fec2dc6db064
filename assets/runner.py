"""The one way to run the pipeline outside the Dagster daemon: `run_days` reads new landing files,
then executes the Dagster `nightly` job in-process for a range of event days (or for the days whose
inputs changed), recording its runs in the instance at $DAGSTER_HOME.

`flywheel run` calls it, and so do the tests that drive the whole pipeline, the benchmarks and the
worked examples (examples/*): what they measure and show is what the nightly run does. The daemon
itself runs the same job from the schedule and sensors (assets/schedules.py, assets/sensors.py).
Dagster is imported inside the functions, so that `flywheel --help` starts without it.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

from flywheel.config import Settings


class Ran(NamedTuple):
    """What `run_days` ran: the first and last event day, and every day, ascending."""

    first: date
    last: date
    days: list[date]


def run_days(settings: Settings, first: date | None, last: date | None, quiet: bool = False,
             progress: bool = True, chunk_days: int = 7, groups: Sequence[str] | None = None) -> Ran | None:
    """Read new landing files, then materialise the nightly job for event days first..last (from
    the first to the last day with data in that range; one bound alone leaves the other open) or,
    with neither bound, for exactly the days whose inputs changed since they were last built (the
    store's record of days to rebuild, `flywheel.ingest.changed_days`; days from today on wait
    until they are over). Consecutive days run together in ascending order, in runs of
    `chunk_days` days each, with a progress bar over the days; each successful run clears the
    days it rebuilt from the record. Then the days whose window tables are recorded stale for a
    change (`flywheel.ingest.changed_days`: computed before an earlier day's data was there or
    changed, by this call's runs or by runs of other processes) are refreshed with the
    `refresh_windows` job, in day order, up to the newest decided day; each refresh clears them.

    `groups` runs only the nightly job's assets of those asset groups (e.g. ("ingest", "outcomes"):
    the first steps, for an example that builds the failure tables with a model configuration of
    its own); such a partial run leaves the record of days to rebuild as it is and refreshes no
    windows, since the later stages of its days were not rebuilt (a later full run does).

    Returns what was run, or None when there was nothing to run.
    """
    import dagster as dg
    from tqdm import tqdm

    from assets.definitions import defs
    from assets.jobs import clear_rebuilt, range_tags, refresh_ranges
    from assets.partitions import FIRST_DAY
    from flywheel.ingest import changed_days
    from flywheel.ingest.manifest import load_manifests
    from flywheel.ingest.sync import sync_landing
    from flywheel.store import Layout

    report = sync_landing(settings)
    warning = report.bad_files_warning()
    if warning:
        print(warning, file=sys.stderr)
    layout = Layout(settings.store)
    today = datetime.now(timezone.utc).date()
    if first is None and last is None:
        days = sorted(d for d in changed_days.pending(layout).days if d < today)
    else:
        days = sorted({date.fromisoformat(d) for m in load_manifests(layout).values() for d in m.get("event_days", [])})
        days = [d for d in days if (first is None or d >= first) and (last is None or d <= last)]
        days = [days[0] + timedelta(days=i) for i in range((days[-1] - days[0]).days + 1)] if days else []
    if not days:
        if report.changed:  # what was read shows in the analysts' views (quarantine, pending) all the same
            from flywheel.catalog import build_catalog

            build_catalog(settings)
        stale = refresh_ranges(settings, today) if groups is None else []  # left by runs elsewhere
        if stale:
            with dagster_instance() as instance:
                refresh_windows(stale, instance, _run_config(settings, quiet))
        return None
    if first is None and last is None:  # a stray old-dated record must not block every night
        early = [d for d in days if d < date.fromisoformat(FIRST_DAY)]
        if early:
            print(f"flywheel: {len(early)} event day(s) to rebuild are before the first partition {FIRST_DAY} "
                  f"({early[0]} .. {early[-1]}) and cannot be run; skipped", file=sys.stderr)
        days = [d for d in days if d >= date.fromisoformat(FIRST_DAY)]
        if not days:
            return None
    lo, hi = days[0], days[-1]
    if lo < date.fromisoformat(FIRST_DAY):
        raise ValueError(f"event day {lo} is before the first partition {FIRST_DAY}; use --from {FIRST_DAY} or later")
    if hi >= today:
        raise ValueError(f"event day {hi} is today or later; a day is run once it is over (use --to {today - timedelta(days=1)})")
    job = defs.resolve_job_def("nightly")
    selection = None if groups is None else sorted(dg.AssetSelection.groups(*groups).resolve(defs.resolve_asset_graph()))
    instance = dagster_instance()
    fail_dead_runs(instance)
    run_config = _run_config(settings, quiet)
    with instance, tqdm(total=len(days), unit="day", desc="nightly run", disable=not progress) as bar:
        for group_first, group_last in changed_days.contiguous(days):
            start = group_first
            while start <= group_last:
                end = min(group_last, start + timedelta(days=chunk_days - 1))
                result = job.execute_in_process(tags={**range_tags(start, end), **process_tags()}, instance=instance,
                                                asset_selection=selection,
                                                raise_on_error=False,
                                                run_config=run_config)
                if not result.success:
                    raise ValueError(f"the nightly run failed on days {start} .. {end}; see the log above "
                                     "(a blocking check may have failed)")
                if groups is None:
                    clear_rebuilt(settings, instance.get_run_by_id(result.run_id).tags)
                bar.update((end - start).days + 1)
                start = end + timedelta(days=1)
        if groups is None:
            refresh_windows(refresh_ranges(settings, today), instance, run_config)
    return Ran(lo, hi, days)


def _run_config(settings: Settings, quiet: bool) -> dict:
    """The run config of `run_days`' runs: the paths as the run's resource config (shown with the
    run in the UI; a resource object passed instead conflicts with the definitions' own when the
    run selects some assets) and the log level."""
    paths = {"landing": str(settings.landing), "store": str(settings.store), "db": str(settings.db)}
    return {"loggers": {"console": {"config": {"log_level": "WARNING" if quiet else "INFO"}}},
            "resources": {"flywheel": {"config": paths}}}


def refresh_windows(windows: list[tuple[date, date]], instance, run_config: dict) -> None:
    """Run `refresh_windows` over `windows`, the ranges of days whose window tables are recorded
    stale for a change (`assets.jobs.refresh_ranges`: computed without data now there: a rebuilt
    older day, late reviews, an earlier day run after a later one), in day order up to the newest
    decided day, so the newest day's decisions and the feed see every day; each refresh clears the
    days it finds fresh. A failed refresh is a ValueError."""
    from assets.definitions import defs
    from assets.jobs import range_tags

    refresh = defs.resolve_job_def("refresh_windows")
    for window in windows:
        result = refresh.execute_in_process(tags={**range_tags(*window), **process_tags()}, instance=instance,
                                            raise_on_error=False, run_config=run_config)
        if not result.success:
            raise ValueError(f"refreshing the windows of days {window[0]} .. {window[1]} failed; see the log above")


def process_tags() -> dict[str, str]:
    """Tags naming the process that runs a job in-process (`flywheel run`), so a later run can tell
    a run whose process was killed from one still going."""
    return {"flywheel/pid": str(os.getpid()), "flywheel/host": socket.gethostname()}


def fail_dead_runs(instance) -> list[str]:
    """Mark as failed the runs `flywheel run` started on this host whose process is gone (killed):
    without a daemon nothing else would, and they stayed STARTED in the run history for ever.
    Returns their run ids."""
    import dagster as dg

    host, dead = socket.gethostname(), []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED,
                                                                  dg.DagsterRunStatus.STARTING,
                                                                  dg.DagsterRunStatus.NOT_STARTED])):
        pid = run.tags.get("flywheel/pid")
        if not pid or run.tags.get("flywheel/host") != host or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # another user's live process
        instance.report_run_failed(run, f"the process of `flywheel run` that ran it (pid {pid}) is gone: it was killed")
        dead.append(run.run_id)
    return dead


def dagster_instance():
    """The Dagster instance runs are recorded in: $DAGSTER_HOME's when it is set (the folder is
    created when missing), else a throwaway one. $DAGSTER_HOME's is opened under a lock of its own:
    two first runs creating its storage at once left two alembic heads in it (every later run then
    failed); an instance that still cannot be opened is a ValueError naming the folder."""
    import dagster as dg

    from flywheel.store import exclusive

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return dg.DagsterInstance.ephemeral()
    Path(home).mkdir(parents=True, exist_ok=True)
    with exclusive(Path(home) / ".flywheel-instance.lock"):
        try:
            instance = dg.DagsterInstance.get()
            instance.get_runs(limit=1)  # creates the run storage's tables now, under the lock
        except Exception as exc:  # sqlite3, SQLAlchemy and alembic errors alike: say which folder
            raise ValueError(f"the Dagster instance at DAGSTER_HOME={home} cannot be opened "
                             f"({type(exc).__name__}: {exc}); if runs created it at the same time, move "
                             "the folder aside and run again (its run history is lost, the store is not)") from exc
    return instance
