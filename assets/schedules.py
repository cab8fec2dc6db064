"""The nightly schedule: yesterday, plus the K days before it again so late interventions count."""


from datetime import date, timedelta

import dagster as dg

from assets.jobs import nightly_job, range_tags
from assets.partitions import FIRST_DAY
from flywheel.config import Settings


def nightly_window(today: date, late_days: int) -> tuple[date, date]:
    """(first, last) event day of the nightly run on `today`: yesterday and `late_days` before it."""
    last = today - timedelta(days=1)
    first = max(last - timedelta(days=late_days), date.fromisoformat(FIRST_DAY))
    return first, last


@dg.schedule(cron_schedule="30 2 * * *", job=nightly_job, execution_timezone="UTC",
             description="02:30 UTC: materialise yesterday and re-materialise the FLYWHEEL_LATE_DAYS "
                         "(default 7) days before it, in one run.")
def nightly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """One run over the nightly window; K comes from FLYWHEEL_LATE_DAYS at tick time."""
    today = context.scheduled_execution_time.date()
    first, last = nightly_window(today, Settings.from_env().late_days)
    return dg.RunRequest(run_key=f"nightly-{today.isoformat()}", tags=range_tags(first, last))
