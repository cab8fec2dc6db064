"""The nightly job on several workers (docs/deploy.md): Dagster's instance on PostgreSQL, each step a
Celery task on a Redis broker, run by two `dagster-celery` workers that are separate processes
(deploy/definitions.py: the executor configured by deploy/celery.yaml, which the workers read
too). The servers are real (tests/servers.py); the store is one local folder shared by the
workers of this one machine.

- the demo's days through that setup equal, table by table, the plain in-process `flywheel run`
  (floats to 12 significant digits);
- four day partitions started at once are spread over both workers and each day is whole;
- a worker SIGKILLed in the middle of a step: its task, acknowledged only once done
  (task_acks_late), goes back to the broker after the visibility timeout and the other worker runs
  it again; the run succeeds and its tables equal the plain run's.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from unittest.mock import ANY

import pytest
import yaml

from assets.jobs import RANGE_END, RANGE_START
from flywheel.generate import generate
from flywheel.ingest import changed_days
from flywheel.store import Layout
from servers import Worker, celery_workers, postgres_server, redis_server  # noqa: F401
from test_faults import _tables

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
START = date(2026, 3, 1)
_redis_dbs = itertools.count(1)  # a Redis database per test: no test's tasks reach another's workers


@dataclass
class Deployment:
    base: Path  # landing, store, database and feed of the runs here
    home: Path  # DAGSTER_HOME: dagster.yaml with the instance on PostgreSQL
    celery_yaml: Path  # the workers' config (-y): deploy/celery.yaml, or a copy with other broker options
    env: dict[str, str]


def _deployment(tmp_path: Path, postgres, redis, name: str, **transport_options) -> Deployment:
    """A Dagster instance of its own on the PostgreSQL server, a Redis database of its own as the broker
    (FLYWHEEL_CELERY_BROKER, which deploy/celery.yaml reads), and the folders of its runs."""
    base, home = tmp_path / name, tmp_path / name / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump({
        "storage": {"postgres": {"postgres_db": postgres.create_database(f"dagster_{name}")}},
        "telemetry": {"enabled": False}}))
    celery_yaml = ROOT / "deploy" / "celery.yaml"
    if transport_options:
        config = yaml.safe_load(celery_yaml.read_text())
        config["execution"]["config"]["config_source"]["broker_transport_options"].update(transport_options)
        celery_yaml = base / "celery.yaml"
        celery_yaml.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "DAGSTER_", "AWS_"))}
    env.update(DAGSTER_HOME=str(home), FLYWHEEL_LANDING=str(base / "landing"), FLYWHEEL_STORE=str(base / "store"),
               FLYWHEEL_DB=str(base / "flywheel.duckdb"), FLYWHEEL_PUBLISH=str(base / "publish"),
               FLYWHEEL_HASH_KEY="deploy-test", FLYWHEEL_CELERY_BROKER=redis.url(next(_redis_dbs)), PYTHONPATH=str(ROOT))
    # The instance's tables once, before any worker starts, as deploy/local.sh does: two workers making
    # them at once on the empty database can collide in PostgreSQL's catalog, and the loser exits.
    made = subprocess.run([str(BIN / "dagster"), "instance", "migrate"], cwd=base, env=env, capture_output=True,
                          text=True, timeout=300)
    assert made.returncode == 0, (made.stdout + made.stderr)[-3000:]
    return Deployment(base, home, celery_yaml, env)


def _launch(dep: Deployment, first: date, last: date, job: str = "nightly") -> subprocess.Popen:
    """The nightly job (or another) for first..last through the celery executor, as `make deploy-local` runs it."""
    from assets.jobs import range_tags

    return subprocess.Popen([str(BIN / "dagster"), "job", "execute", "-m", "deploy.definitions", "-a", "defs",
                             "-j", job, "--tags", json.dumps(range_tags(first, last))],
                            cwd=dep.base, env=dep.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _plain_run(tmp_path: Path, landing: Path, first: date, last: date) -> dict[str, list]:
    """Every analyst table after the plain run on local folders: `flywheel run`, in-process, no server."""
    base = tmp_path / "plain"
    shutil.copytree(landing, base / "landing")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "DAGSTER_"))}
    env.update(FLYWHEEL_LANDING=str(base / "landing"), FLYWHEEL_STORE=str(base / "store"),
               FLYWHEEL_DB=str(base / "flywheel.duckdb"), FLYWHEEL_PUBLISH=str(base / "publish"),
               FLYWHEEL_HASH_KEY="deploy-test", PYTHONPATH=str(ROOT))
    run = subprocess.run([str(BIN / "flywheel"), "run", "--quiet", "--no-progress", "--from", first.isoformat(),
                          "--to", last.isoformat()], cwd=base, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return _tables(base / "flywheel.duckdb")


def _started_by(postgres, name: str, step: str) -> list[str]:
    """The workers that started `step` in the instance of deployment `name`, in order: the engine
    event a dagster-celery worker records as it takes a step names it ("Celery worker": name@host)."""
    con = postgres.connect(f"dagster_{name}")
    try:
        with con.cursor() as cur:
            cur.execute("SELECT event FROM event_logs WHERE step_key = %s AND dagster_event_type = 'ENGINE_EVENT' "
                        "AND event LIKE '%%in celery worker%%' ORDER BY id", (step,))
            return [m.group(1) for (event,) in cur.fetchall() for m in [re.search(r'"text": "([^@"]+)@[^"]*"}, "label": "Celery worker"', event)]
                    if m]
    finally:
        con.close()


def _steps_run_by(worker: Worker) -> int:
    """How many step tasks the worker finished, from its log."""
    return len(re.findall(r"Task execute_plan\[[^\]]+\] succeeded", worker.log.read_text(errors="replace")))


def test_the_demo_days_through_celery_and_postgres_equal_the_plain_run(postgres_server, redis_server, tmp_path):  # noqa: F811
    days = 5
    dep = _deployment(tmp_path, postgres_server, redis_server, "demo")
    generate(dep.base / "landing", days=days, events_per_day=300, seed=7, start=START, progress=False)
    last = START + timedelta(days=days - 1)
    with celery_workers(["w1", "w2"], dep.celery_yaml, dep.env, dep.base) as workers:
        proc = _launch(dep, START, last)
        out = proc.communicate(timeout=900)[0]
        assert proc.returncode == 0, out[-4000:]
        steps = [_steps_run_by(w) for w in workers]
    assert sum(steps) == 12, steps  # every step of the nightly job, each once, on the workers
    assert "RUN_SUCCESS" in out
    got = _tables(dep.base / "flywheel.duckdb")
    want = _plain_run(tmp_path, dep.base / "landing", START, last)
    assert got.keys() == want.keys() and len(got) >= 20
    assert len(got["ingest.events"]) >= days * 300 * 0.9
    for name in want:
        assert got[name] == want[name], f"{name} differs from the plain run"


# The analyst tables whose day figures read a window of earlier days (assets.jobs.WINDOW_ASSETS).
_WINDOWED = ("outcomes.rolling_rates", "outcomes.calibration", "outcomes.reliability_bins", "signals.drift",
             "signals.gate_evaluations", "signals.decisions", "signals.decision_log")


@pytest.fixture(scope="module")
def four_days(tmp_path_factory) -> tuple[Path, dict[str, list]]:
    """Four demo days in a landing folder, and every analyst table of the plain run over them."""
    base = tmp_path_factory.mktemp("four_days")
    generate(base / "landing", days=4, events_per_day=300, seed=9, start=START, progress=False)
    return base / "landing", _plain_run(base, base / "landing", START, START + timedelta(days=3))


def test_four_day_partitions_at_once_are_spread_over_both_workers(postgres_server, redis_server, tmp_path,  # noqa: F811
                                                                   four_days):
    landing, want = four_days
    dep = _deployment(tmp_path, postgres_server, redis_server, "four")
    shutil.copytree(landing, dep.base / "landing")
    days = [START + timedelta(days=i) for i in range(4)]
    with celery_workers(["w1", "w2"], dep.celery_yaml, dep.env, dep.base) as workers:
        procs = [_launch(dep, d, d) for d in days]
        outputs = [p.communicate(timeout=900)[0] for p in procs]
        steps = [_steps_run_by(w) for w in workers]
        for p, out in zip(procs, outputs):
            assert p.returncode == 0, out[-4000:]
        assert sum(steps) == 4 * 12 and min(steps) > 0, steps  # every step of the four runs, on both workers
        # Each day is whole: every table of one day's own events equals the plain run's.
        got = _tables(dep.base / "flywheel.duckdb")
        differ = sorted(name for name in want if got.get(name) != want[name])
        assert set(differ) <= set(_WINDOWED), differ
        # A window figure (rolling rates, calibration, drift, gates, decisions) reads the days before
        # its day: a later day that finished before an earlier one was computed without it (seen in CI:
        # all six windowed tables differed). The store's record holds such days stale, and one tick of
        # the daemon's late_data_sensor, on this deployment's instance, asks for refresh_windows over them.
        stale = changed_days.pending(Layout(dep.base / "store")).stale
        assert bool(stale) or not differ, differ  # windows that differ are recorded stale
        assert _feed(dep)["stale"] == (None if days[-1] not in stale else {
            "since": stale[days[-1]].since.isoformat(), "reason": stale[days[-1]].reason, "detail": ANY})
        requests = _sensor_tick(dep)
        assert [(r.job_name, r.tags[RANGE_START]) for r in requests] == ([("refresh_windows", min(stale).isoformat())]
                                                                      if stale else [])
        for request in requests:
            refresh = _launch(dep, date.fromisoformat(request.tags[RANGE_START]),
                              date.fromisoformat(request.tags[RANGE_END]), job=request.job_name)
            out = refresh.communicate(timeout=900)[0]
            assert refresh.returncode == 0, out[-4000:]
    got = _tables(dep.base / "flywheel.duckdb")
    differ = sorted(name for name in want if got.get(name) != want[name])
    assert differ == [], differ
    assert changed_days.pending(Layout(dep.base / "store")).stale == {} and _feed(dep)["stale"] is None


def _feed(dep: Deployment) -> dict:
    return json.loads((dep.base / "publish" / "feed" / "latest.json").read_text())


def _sensor_tick(dep: Deployment) -> list:
    """The run requests of one late_data_sensor tick against the deployment's instance (PostgreSQL)."""
    import dagster as dg

    from assets.resources import FlywheelResource
    from assets.sensors import late_data_sensor

    resources = {"flywheel": FlywheelResource(landing=dep.env["FLYWHEEL_LANDING"], store=dep.env["FLYWHEEL_STORE"],
                                              db=dep.env["FLYWHEEL_DB"])}
    with dg.DagsterInstance.from_config(str(dep.home)) as instance:
        result = late_data_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    return list(result.run_requests or []) if isinstance(result, dg.SensorResult) else []


def test_a_worker_killed_mid_step_leaves_the_run_to_the_other_equal_to_the_plain_run(  # noqa: F811
        postgres_server, redis_server, tmp_path, four_days):
    landing, want = four_days
    # deploy/celery.yaml acknowledges a task once its step is done; one whose worker died goes back to
    # the queue when it has been unacknowledged for the visibility timeout: 45 s here (above any step
    # of these small days), checked every second.
    dep = _deployment(tmp_path, postgres_server, redis_server, "kill", visibility_timeout=45,
                      unacked_restore_interval=1)
    shutil.copytree(landing, dep.base / "landing")
    with celery_workers(["w1", "w2"], dep.celery_yaml, dep.env, dep.base) as workers:
        proc = _launch(dep, START, START + timedelta(days=3))
        deadline = time.monotonic() + 600
        victim = None
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            victim = next((w for w in workers if w.name in _started_by(postgres_server, "kill", "failure_clusters")), None)
            time.sleep(0.05)
        assert victim is not None, "no worker started the failures step"
        victim.kill()
        out = proc.communicate(timeout=900)[0]
    assert proc.returncode == 0, out[-4000:]
    received = len(re.findall(r"Task execute_plan\[[^\]]+\] received", victim.log.read_text(errors="replace")))
    assert received == _steps_run_by(victim) + 1  # it died holding the failures step, unfinished
    survivor = next(w for w in workers if w is not victim)
    assert _started_by(postgres_server, "kill", "failure_clusters") == [victim.name, survivor.name]  # ran again
    got = _tables(dep.base / "flywheel.duckdb")
    differ = sorted(name for name in want if got.get(name) != want[name])
    assert differ == [], differ
