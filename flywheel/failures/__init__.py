"""Failure modes: the recurring reasons the AI's work is rejected, rewritten, escalated, reverted
or fails outright, clustered night by night with stable ids, named, and followed per scenario.

Build a day in order with `build_failures(settings, day)` (or the four steps one by one:
`build_failure_assignments`, `build_clusters`, `build_cluster_history`, `build_cluster_daily`),
then `refresh_stale(settings)` to rebuild the later nights that continued from an earlier build
of it; `flywheel.tables` documents the analysts' views of them. See `model` for the method and its measurements.
"""

from flywheel.failures.growth import build_cluster_daily
from flywheel.failures.model import FailureConfig
from flywheel.failures.tables import (
    build_cluster_history,
    build_clusters,
    build_failure_assignments,
    build_failures,
    refresh_stale,
)

__all__ = ["FailureConfig", "build_cluster_daily", "build_cluster_history", "build_clusters",
           "build_failure_assignments", "build_failures", "refresh_stale"]
