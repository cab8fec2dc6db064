"""Flywheel's definitions with the steps of every job run by a distributed executor, for deployments
whose runs and steps land on several worker processes or machines (docs/deploy.md).

The assets, checks, jobs, schedules, sensors and resources are those of `assets.definitions`; only
the executor differs, chosen by FLYWHEEL_EXECUTOR:

- `celery` (the default): dagster-celery. Each step is a Celery task on the broker named in the run's
  `execution.config` (deploy/celery.yaml); any `dagster-celery worker` listening there runs it.
- `k8s`: dagster-k8s's `k8s_job_executor`, each step in its own Kubernetes Job: the production path
  with Dagster's Helm chart (deploy/helm-values.yaml). dagster-k8s is installed in the user-code
  image, not by this project's extras.

Workers and the process that runs the job share the Dagster instance (PostgreSQL, deploy/dagster.yaml)
and, for now, flywheel's store as a local folder: one machine, several processes.
"""

from __future__ import annotations

import os

import dagster as dg

from assets.definitions import defs as flywheel_defs

EXECUTORS = ("celery", "k8s")


def executor(name: str) -> dg.ExecutorDefinition:
    """The executor a deployment names (one of EXECUTORS)."""
    if name == "celery":
        from dagster_celery import celery_executor

        return celery_executor
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    raise ValueError(f"FLYWHEEL_EXECUTOR={name!r} is not one of {', '.join(EXECUTORS)}")


defs = dg.Definitions.merge(flywheel_defs,
                            dg.Definitions(executor=executor(os.environ.get("FLYWHEEL_EXECUTOR", "celery"))))


def nightly() -> dg.JobDefinition:
    """The nightly job with this executor, as `dagster.reconstructable` needs it (workers rebuild it)."""
    return defs.resolve_job_def("nightly")
