"""The nightly schedule: yesterday's event day. Older days whose inputs changed (late
interventions, late or corrected events files) are run by `late_data_sensor`, not a fixed window."""


from datetime import date, timedelta

import dagster as dg

from assets.jobs import nightly_job, range_tags


def nightly_day(today: date) -> date:
    """The event day the nightly run on `today` materialises: yesterday (UTC)."""
    return today - timedelta(days=1)


@dg.schedule(cron_schedule="30 2 * * *", job=nightly_job, execution_timezone="UTC",
             description="02:30 UTC: read new landing files and materialise yesterday. Older days whose "
                         "inputs the read changed are run by late_data_sensor.")
def nightly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """One run over yesterday."""
    today = context.scheduled_execution_time.date()
    day = nightly_day(today)
    return dg.RunRequest(run_key=f"nightly-{today.isoformat()}", tags=range_tags(day, day))
