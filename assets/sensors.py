"""Sensors: `landing_sensor` runs the days that new landing files hold; `late_data_sensor` runs
the older event days whose inputs a landing sync changed (late interventions, late or corrected
events), from the store's record of days to rebuild, and clears the days successful runs rebuilt."""


import hashlib
import json
from datetime import date, datetime, timedelta, timezone

import dagster as dg

from assets.jobs import clear_rebuilt, nightly_job, range_tags, run_days_of
from assets.partitions import FIRST_DAY
from flywheel.config import Settings
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


@dg.sensor(job=nightly_job, minimum_interval_seconds=60,
           description="Watches the landing folder; new or changed files start a run over the event "
                       "days they hold (the run's landing sync records older event days whose "
                       "interventions arrived; late_data_sensor runs those).")
def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Compare landing files (size, mtime) with the cursor; ask for a run over the days they touch.
    Anything that is not a regular file (a named pipe) is skipped with a warning, never opened:
    the run refuses it."""
    settings = Settings.from_env()
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


@dg.sensor(job=nightly_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Runs the event days whose inputs a landing sync changed and that no run has "
                       "rebuilt since (late interventions for old events, late or corrected events "
                       "files), one run per range of consecutive days; on by default, since without it "
                       "late reviews never count.")
def late_data_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Clear the days successful nightly runs rebuilt; ask for a run over each range of consecutive
    days still to rebuild (up to yesterday) that no queued or running nightly run covers. The run
    key holds the range and the newest version it was marked at: a range is asked for once per
    change of its inputs."""
    settings = Settings.from_env()
    layout = Layout(settings.store)
    instance = context.instance
    since = float(context.cursor) if context.cursor else 0.0
    done = instance.get_run_records(filters=dg.RunsFilter(
        job_name=nightly_job.name, statuses=[dg.DagsterRunStatus.SUCCESS],
        updated_after=datetime.fromtimestamp(since, tz=timezone.utc) - _OVERLAP))
    newest = since
    for record in done:
        clear_rebuilt(settings, record.dagster_run.tags)
        newest = max(newest, record.update_timestamp.timestamp())
    cursor = str(newest)
    busy = {d for run in instance.get_runs(filters=dg.RunsFilter(job_name=nightly_job.name, statuses=_IN_FLIGHT))
            for d in run_days_of(run.tags)}
    first_allowed = date.fromisoformat(FIRST_DAY)
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    record = changed_days.pending(layout)
    todo = {d: v for d, v in record.days.items() if first_allowed <= d <= yesterday and d not in busy}
    if not todo:
        return dg.SensorResult(skip_reason=dg.SkipReason("no event day waits to be rebuilt"), cursor=cursor)
    requests = []
    for first, last in changed_days.contiguous(todo):
        version = max(v for d, v in todo.items() if first <= d <= last)
        requests.append(dg.RunRequest(run_key=f"rebuild-{first.isoformat()}-{last.isoformat()}-v{version}",
                                      tags=range_tags(first, last)))
    return dg.SensorResult(run_requests=requests, cursor=cursor)
