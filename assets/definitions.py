"""The one registry: every asset, check, job, schedule, sensor and resource of flywheel."""

from __future__ import annotations

import dagster as dg

from assets.ingest import events, interventions, landing_files
from assets.jobs import nightly_job
from assets.resources import FlywheelResource
from assets.schedules import nightly_schedule
from assets.sensors import landing_sensor

defs = dg.Definitions(
    assets=[landing_files, events, interventions],
    jobs=[nightly_job],
    schedules=[nightly_schedule],
    sensors=[landing_sensor],
    resources={"flywheel": FlywheelResource()},
)
