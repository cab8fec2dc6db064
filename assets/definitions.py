"""The one registry: every asset, check, job, schedule, sensor and resource of flywheel."""

from __future__ import annotations

import dagster as dg

from assets.failures import edit_patterns, failure_clusters
from assets.ingest import events, interventions, landing_files
from assets.jobs import nightly_job, refresh_job
from assets.outcomes import calibration, daily_rates, event_outcomes, recovery, rolling_rates
from assets.report import report
from assets.resources import FlywheelResource
from assets.schedules import nightly_schedule
from assets.sensors import landing_sensor, late_data_sensor
from assets.signals import decision_feed, decisions
from assets.sources import source_definitions

# Pulled sources whose server the sources file names (none by default): assets sources/<name>.
source_assets, source_jobs, source_schedules = source_definitions()

defs = dg.Definitions(
    assets=[landing_files, events, interventions, event_outcomes, daily_rates, rolling_rates, recovery, calibration,
            failure_clusters, edit_patterns, decisions, decision_feed, report, *source_assets],
    jobs=[nightly_job, refresh_job, *source_jobs],
    schedules=[nightly_schedule, *source_schedules],
    sensors=[landing_sensor, late_data_sensor],
    resources={"flywheel": FlywheelResource()},
)
