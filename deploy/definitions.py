"""Flywheel's definitions with the steps of every job run by a distributed executor, for deployments
whose runs and steps land on several worker processes or machines (docs/deploy.md).

The assets, checks, jobs, schedules, sensors and resources are those of `assets.definitions`; only
the executor differs:

- `defs`: dagster-celery's executor. Each step is a Celery task on the broker named in the run's
  `execution.config` (deploy/celery.yaml); any `dagster-celery worker` listening there runs it.
  `make deploy-local` and tests/test_deploy_celery.py use it.
- `k8s_defs`: dagster-k8s's `k8s_job_executor`, each step in its own Kubernetes Job: the production
  path with Dagster's Helm chart (deploy/helm-values.yaml loads `--attribute k8s_defs`). dagster-k8s
  is installed in the user-code image, not by this project's extras.

Workers and the process that runs the job share the Dagster instance (PostgreSQL, deploy/dagster.yaml)
and, for now, flywheel's store as a folder every worker sees.
"""

from __future__ import annotations

import dagster as dg
from dagster_celery import celery_executor

from assets.definitions import defs as flywheel_defs

defs = dg.Definitions.merge(flywheel_defs, dg.Definitions(executor=celery_executor))


@dg.definitions
def k8s_defs() -> dg.Definitions:
    """The same definitions with each step in its own Kubernetes Job (loaded only when named)."""
    from dagster_k8s import k8s_job_executor

    return dg.Definitions.merge(flywheel_defs, dg.Definitions(executor=k8s_job_executor))
