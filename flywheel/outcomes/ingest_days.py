"""Read the landing folder and build, day by day, everything failure clustering starts from: the
stored events and interventions and each event's resolved outcome (the nightly job's first steps,
without Dagster, for examples and measurements)."""

from __future__ import annotations

from datetime import date

from flywheel.config import Settings
from flywheel.ingest.partition import build_events, build_interventions
from flywheel.ingest.sync import sync_landing
from flywheel.outcomes.resolve import build_event_outcomes


def ingest_and_resolve(settings: Settings) -> list[date]:
    """Sync the landing folder, then build every event day it holds, in order; returns the days."""
    days = sorted(sync_landing(settings).event_days)
    for day in days:
        build_events(settings, day)
        build_interventions(settings, day)
        build_event_outcomes(settings, day)
    return days
