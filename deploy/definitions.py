"""Flywheel's definitions with the steps of every job run by a distributed executor, for deployments
whose runs and steps land on several worker processes or machines (docs/deploy.md).

The assets, checks, jobs, schedules, sensors and resources are those of `assets.definitions`; only
the executor differs:

- `defs`: dagster-celery's executor, configured by deploy/celery.yaml (the file the workers read
  too), its broker the URL in FLYWHEEL_CELERY_BROKER, resolved as each run starts. Each step is a
  Celery task there; any `dagster-celery worker` listening on that broker runs it. A run needs no
  run config of its own, so the daemon's schedule and sensors launch runs on the workers as they
  are. `make deploy-local` and tests/test_deploy_celery.py use it.
- `k8s_defs`: dagster-k8s's `k8s_job_executor`, each step in its own Kubernetes Job: the production
  path with Dagster's Helm chart (deploy/helm-values.yaml loads `--attribute k8s_defs`). dagster-k8s
  is installed in the user-code image, not by this project's extras.

Workers and the process that runs the job share the Dagster instance (PostgreSQL, deploy/dagster.yaml)
and flywheel's landing area, store and feed: a bucket of an S3-compatible object store
(FLYWHEEL_LANDING / FLYWHEEL_STORE / FLYWHEEL_PUBLISH = s3://bucket/prefix, credentials in the
standard AWS variables), or a folder every worker sees.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml
from dagster_celery import celery_executor

from assets.definitions import defs as flywheel_defs

CELERY_YAML = Path(__file__).with_name("celery.yaml")


def celery_config() -> dict:
    """The celery executor's settings in deploy/celery.yaml (its `execution.config`)."""
    return yaml.safe_load(CELERY_YAML.read_text())["execution"]["config"]


defs = dg.Definitions.merge(flywheel_defs, dg.Definitions(
    executor=celery_executor.configured(celery_config(), name="flywheel_celery")))


@dg.definitions
def k8s_defs() -> dg.Definitions:
    """The same definitions with each step in its own Kubernetes Job (loaded only when named)."""
    from dagster_k8s import k8s_job_executor

    return dg.Definitions.merge(flywheel_defs, dg.Definitions(executor=k8s_job_executor))
