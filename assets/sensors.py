"""Sensors: `landing_sensor` runs the days that new landing files hold; `late_data_sensor` runs
the older event days whose inputs a landing sync changed (late interventions, late or corrected
events), from the store's record of days to rebuild, and clears the days successful runs rebuilt;
once no nightly or refresh run is in flight, it runs `refresh_windows` over the days whose window
tables that record holds stale (computed before an earlier day's data was there or changed).

Both read the landing folder and the store through the `flywheel` resource (`FlywheelResource`),
the one the runs they ask for get: paths configured there in Dagster, not only in the
environment, are the ones a sensor watches."""


import hashlib
import json
from datetime import date, datetime, timedelta, timezone

import dagster as dg

from assets.jobs import (
    clear_rebuilt,
    nightly_job,
    range_tags,
    refresh_job,
    refresh_ranges,
    run_days_of,
)
from assets.partitions import FIRST_DAY
from assets.resources import FlywheelResource
from flywheel.ingest import changed_days
from flywheel.ingest.peek import is_regular_file, peek_days
from flywheel.ingest.readers import Limits
from flywheel.ingest.sync import discover
from flywheel.store import Layout

_IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED]
# Successful runs are looked at again for this long after the cursor: clearing is idempotent, and
# two runs can finish within the same instant.
_OVERLAP = timedelta(minutes=1)
# A range whose rebuild failed is asked for again, this many attempts in all.
_ATTEMPTS = 3
_RANGE_KEY = "flywheel/rebuild_range"
_REFRESH_KEY = "flywheel/refresh_range"


@dg.sensor(job=nightly_job, minimum_interval_seconds=60,
           description="Watches the landing folder; new or changed files start a run over the event "
                       "days they hold (the run's landing sync records older event days whose "
                       "interventions arrived; late_data_sensor runs those).")
def landing_sensor(context: dg.SensorEvaluationContext, flywheel: FlywheelResource) -> dg.SensorResult | dg.SkipReason:
    """Compare landing files (size, mtime) with the cursor; ask for a run over the days they touch.
    Anything that is not a regular file (a named pipe) is skipped with a warning, never opened:
    the run refuses it."""
    settings = flywheel.settings()
    seen: dict[str, list[int]] = json.loads(context.cursor) if context.cursor else {}
    current: dict[str, list[int]] = {}
    changed = []
    for kind, rel, path in discover(settings.landing):
        try:
            st = path.stat()
        except OSError:
            continue
        if not is_regular_file(path):
            context.log.warning(f"landing sensor: {rel} is not a regular file (a named pipe?); skipped, the run refuses it")
            continue
        current[rel] = [st.st_size, st.st_mtime_ns]
        if seen.get(rel) != current[rel]:
            changed.append((kind, path))
    if not changed:
        return dg.SkipReason("no new or changed landing files")
    days: set[date] = set()
    limits = Limits.of(settings)
    for kind, path in changed:
        days |= peek_days(path, kind, limits)
    first_allowed = date.fromisoformat(FIRST_DAY)
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    days = {d for d in days if first_allowed <= d <= yesterday}
    cursor = json.dumps(current, sort_keys=True)
    if not days:
        return dg.SensorResult(skip_reason=dg.SkipReason(f"{len(changed)} changed files hold no day to run"), cursor=cursor)
    key = hashlib.sha1(cursor.encode()).hexdigest()[:16]
    request = dg.RunRequest(run_key=f"landing-{key}", tags=range_tags(min(days), max(days)))
    return dg.SensorResult(run_requests=[request], cursor=cursor)


@dg.sensor(jobs=[nightly_job, refresh_job], minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Runs the event days whose inputs a landing sync changed and that no run has "
                       "rebuilt since (late interventions for old events, late or corrected events "
                       "files), one run per range of consecutive days; on by default, since without it "
                       "late reviews never count.")
def late_data_sensor(context: dg.SensorEvaluationContext, flywheel: FlywheelResource) -> dg.SensorResult | dg.SkipReason:
    """Clear the days successful nightly runs rebuilt; while no nightly or refresh run is queued or
    running, ask for `refresh_windows` over the days whose window tables are recorded stale for a
    change, from the first of them up to the newest decided day (their window figures and
    decisions, so the feed sees late reviews and days that finished out of order); ask for a run
    over each range of consecutive days still to rebuild (up to yesterday) that no queued or
    running nightly run covers. The run key holds the range, the newest version it was marked at
    and the failed attempts so far: a range is asked for once per change of its inputs, and again
    after a failure, up to `_ATTEMPTS` times (then it waits for an operator or a new change)."""
    settings = flywheel.settings()
    layout = Layout(settings.store)
    instance = context.instance
    since = float(context.cursor) if context.cursor else 0.0
    done = instance.get_run_records(filters=dg.RunsFilter(
        job_name=nightly_job.name, statuses=[dg.DagsterRunStatus.SUCCESS],
        updated_after=datetime.fromtimestamp(since, tz=timezone.utc) - _OVERLAP))
    newest = since
    requests = []
    for record in done:
        clear_rebuilt(settings, record.dagster_run.tags)
        newest = max(newest, record.update_timestamp.timestamp())
    cursor = str(newest)
    in_flight = instance.get_runs(filters=dg.RunsFilter(statuses=_IN_FLIGHT))
    busy = {d for run in in_flight if run.job_name == nightly_job.name for d in run_days_of(run.tags)}
    first_allowed = date.fromisoformat(FIRST_DAY)
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    record = changed_days.pending(layout)
    todo = {d: v for d, v in record.days.items() if first_allowed <= d <= yesterday and d not in busy}
    given_up = []
    for first, last in changed_days.contiguous(todo):
        version = max(v for d, v in todo.items() if first <= d <= last)
        failed = len(instance.get_run_ids(filters=dg.RunsFilter(
            job_name=nightly_job.name, statuses=[dg.DagsterRunStatus.FAILURE],
            tags={_RANGE_KEY: f"{first.isoformat()}-{last.isoformat()}-v{version}"})))
        if failed >= _ATTEMPTS:
            given_up.append(f"{first} .. {last}")
            continue
        requests.append(dg.RunRequest(run_key=f"rebuild-{first.isoformat()}-{last.isoformat()}-v{version}-a{failed}",
                                      tags={**range_tags(first, last),
                                            _RANGE_KEY: f"{first.isoformat()}-{last.isoformat()}-v{version}"}))
    if given_up:
        context.log.warning(f"event days {', '.join(given_up)} failed to rebuild {_ATTEMPTS} times: re-execute the failed "
                            "run once its cause is fixed (a new change to their inputs also asks again)")
    # windows are refreshed after the runs that made them stale: a refresh while a nightly or refresh
    # run still writes (or before a rebuild asked for now) would be marked stale again by it
    if not requests and not any(run.job_name in (nightly_job.name, refresh_job.name) for run in in_flight):
        version = max((max(e.marks.values()) for e in record.stale.values() if e.reason == "changed"), default=0)
        for first, last in refresh_ranges(settings, yesterday + timedelta(days=1)):
            key = f"{first.isoformat()}-{last.isoformat()}-v{version}"
            failed = len(instance.get_run_ids(filters=dg.RunsFilter(
                job_name=refresh_job.name, statuses=[dg.DagsterRunStatus.FAILURE], tags={_REFRESH_KEY: key})))
            if failed >= _ATTEMPTS:
                context.log.warning(f"refreshing the windows of {first} .. {last} failed {_ATTEMPTS} times: re-execute "
                                    "the failed run once its cause is fixed")
                continue
            requests.append(dg.RunRequest(run_key=f"refresh-{key}-a{failed}", job_name=refresh_job.name,
                                          tags={**range_tags(first, last), _REFRESH_KEY: key}))
    if not requests:
        reason = (f"rebuilds of {', '.join(given_up)} failed {_ATTEMPTS} times" if given_up
                  else "no event day waits to be rebuilt and no window to refresh")
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)
