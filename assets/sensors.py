"""The landing sensor: when files appear or change in the landing folder, run the days they touch."""


import hashlib
import json
from datetime import date, datetime, timedelta, timezone

import dagster as dg

from assets.jobs import nightly_job, range_tags
from assets.partitions import FIRST_DAY
from flywheel.config import Settings
from flywheel.ingest.sync import discover
from flywheel.ingest.peek import peek_days


@dg.sensor(job=nightly_job, minimum_interval_seconds=60,
           description="Watches the landing folder; new or changed files start a run over the event "
                       "days they hold (and, for interventions, the FLYWHEEL_LATE_DAYS days before).")
def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Compare landing files (size, mtime) with the cursor; ask for a run over the days they touch."""
    settings = Settings.from_env()
    seen: dict[str, list[int]] = json.loads(context.cursor) if context.cursor else {}
    current: dict[str, list[int]] = {}
    changed = []
    for kind, rel, path in discover(settings.landing):
        try:
            st = path.stat()
        except OSError:
            continue
        current[rel] = [st.st_size, st.st_mtime_ns]
        if seen.get(rel) != current[rel]:
            changed.append((kind, path))
    if not changed:
        return dg.SkipReason("no new or changed landing files")
    days: set[date] = set()
    for kind, path in changed:
        found = peek_days(path, kind)
        if kind != "events":
            found |= {d - timedelta(days=i) for d in found for i in range(1, settings.late_days + 1)}
        days |= found
    first_allowed = date.fromisoformat(FIRST_DAY)
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    days = {d for d in days if first_allowed <= d <= yesterday}
    cursor = json.dumps(current, sort_keys=True)
    if not days:
        return dg.SensorResult(skip_reason=dg.SkipReason(f"{len(changed)} changed files hold no day to run"), cursor=cursor)
    key = hashlib.sha1(cursor.encode()).hexdigest()[:16]
    request = dg.RunRequest(run_key=f"landing-{key}", tags=range_tags(min(days), max(days)))
    return dg.SensorResult(run_requests=[request], cursor=cursor)
