"""The nightly job on object storage and several workers (docs/deploy.md): the landing area, the store
and the published feed in a bucket of a real S3-compatible server (SeaweedFS), Dagster's instance on
PostgreSQL, each step a Celery task on a Redis broker run by two `dagster-celery` workers that are
separate processes, each in a folder of its own: they share nothing but the bucket, the instance and
the broker (tests/servers.py starts the servers on 127.0.0.1).

- the demo's 30 days (`make demo`'s generator: seed 7, 2,000 events a day) through that setup equal
  the plain in-process `flywheel run` on local folders: every analyst table (floats to 12
  significant digits), read through an analysts' database built afterwards on another "machine" (a
  fresh local file whose views read the bucket), and the feed;
- four day partitions started at once are spread over both workers, each day whole; the windows a
  later day computed before an earlier one was written are recorded stale, and one tick of the
  late_data_sensor on the deployment's instance refreshes them: then equal to the plain run;
- a worker SIGKILLed in the middle of a step: the step goes back to the broker (task_acks_late) and
  the other worker runs it again over what the dead one left in the bucket; the run succeeds and
  every table and the feed equal the plain run's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from unittest.mock import ANY

import pytest

from assets.jobs import RANGE_END, RANGE_START
from flywheel.generate import generate
from flywheel.ingest import changed_days
from flywheel.store import Layout
from servers import (  # noqa: F401
    S3,
    celery_workers,
    postgres_server,
    redis_server,
    seaweedfs_server,
)
from test_deploy_celery import (
    _WINDOWED,
    BIN,
    ROOT,
    Deployment,
    _deployment,
    _launch,
    _sensor_tick,
    _started_by,
    _steps_run_by,
)
from test_faults import _view_rows

START = date(2026, 3, 1)
DEMO_DAYS, DEMO_EVENTS, DEMO_SEED = 30, 2000, 7  # the Makefile's DAYS, EVENTS, SEED: what `make demo` runs
SHORT_DAYS, SHORT_EVENTS, SHORT_SEED = 4, 300, 9  # the four days run at once, and the run a worker dies in
HASH_KEY = "deploy-s3-test"
VOLATILE_FEED_KEYS = ("generated_at", "run_id")  # when and by which run the feed was written


@dataclass
class Result:
    tables: dict[str, list]
    feed: dict


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "DAGSTER_", "AWS_"))}


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """This process's FLYWHEEL_* and AWS_* variables set to those of `env` (a deployment's), meanwhile."""
    with pytest.MonkeyPatch.context() as m:
        for k in [k for k in os.environ if k.startswith(("FLYWHEEL_", "AWS_"))]:
            m.delenv(k)
        for k, v in env.items():
            if k.startswith(("FLYWHEEL_", "AWS_")):
                m.setenv(k, v)
        yield


def _analyst_tables(env: dict[str, str], db: Path) -> dict[str, list]:
    """Every analyst table, as an analyst on another machine sees it: a database file built at `db`
    (views over the store `env` names), then opened read-only through flywheel's analyst connection."""
    from flywheel.analyst import connect_read_only
    from flywheel.catalog import build_catalog
    from flywheel.config import Settings

    with _environment({**env, "FLYWHEEL_DB": str(db)}):
        settings = Settings.from_env()
        build_catalog(settings)
        con = connect_read_only(settings, fallback=False)
        try:
            return _view_rows(con)
        finally:
            con.close()


def _feed(raw: bytes) -> dict:
    feed = json.loads(raw)
    for key in VOLATILE_FEED_KEYS:
        assert feed.pop(key)  # present, then left out of the comparison
    return feed


def _plain(base: Path, days: int, events: int, seed: int) -> tuple[Path, Result]:
    """The generator's landing files for `days` days, and every analyst table and the feed after the
    plain run over them: `flywheel run` in-process on local folders, no server."""
    generate(base / "landing", days=days, events_per_day=events, seed=seed, start=START, progress=False)
    env = _clean_env()
    env.update(FLYWHEEL_LANDING=str(base / "landing"), FLYWHEEL_STORE=str(base / "store"),
               FLYWHEEL_DB=str(base / "flywheel.duckdb"), FLYWHEEL_PUBLISH=str(base / "publish"),
               FLYWHEEL_HASH_KEY=HASH_KEY, PYTHONPATH=str(ROOT))
    run = subprocess.run([str(BIN / "flywheel"), "run", "--quiet", "--no-progress", "--from", START.isoformat(),
                          "--to", (START + timedelta(days=days - 1)).isoformat()],
                         cwd=base, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return base / "landing", Result(_analyst_tables(env, base / "analyst.duckdb"),
                                    _feed((base / "publish" / "feed" / "latest.json").read_bytes()))


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, Result]:
    """The demo's 30 days, and the plain run over them."""
    return _plain(tmp_path_factory.mktemp("demo"), DEMO_DAYS, DEMO_EVENTS, DEMO_SEED)


@pytest.fixture(scope="module")
def short(tmp_path_factory) -> tuple[Path, Result]:
    """Four short days, and the plain run over them."""
    return _plain(tmp_path_factory.mktemp("short"), SHORT_DAYS, SHORT_EVENTS, SHORT_SEED)


def _s3_deployment(tmp_path: Path, postgres, redis, s3: S3, name: str, landing: Path,
                   **transport_options) -> tuple[Deployment, str]:
    """A bucket of its own holding the landing files (FLYWHEEL_LANDING, FLYWHEEL_STORE and
    FLYWHEEL_PUBLISH under it, credentials and endpoint in the standard AWS variables), a Dagster
    instance of its own on PostgreSQL and a Redis database of its own as the broker."""
    dep = _deployment(tmp_path, postgres, redis, name, **transport_options)
    bucket = s3.make_bucket(f"deploy-{name}")
    s3.upload(landing, f"{bucket}/landing")
    dep.env.update(s3.env())
    dep.env.update(FLYWHEEL_LANDING=f"{bucket}/landing", FLYWHEEL_STORE=f"{bucket}/store",
                   FLYWHEEL_PUBLISH=f"{bucket}/publish", FLYWHEEL_HASH_KEY=HASH_KEY)
    return dep, bucket


def _own_database(folder: Path) -> dict[str, str]:
    """A worker's own analysts' database, on its own disk (FLYWHEEL_DB is always a local file)."""
    return {"FLYWHEEL_DB": str(folder / "flywheel.duckdb")}


def _nightly_steps() -> int:
    from assets.definitions import defs

    return len(defs.resolve_job_def("nightly").graph.nodes)


def _differ(dep: Deployment, want: Result, events: int, name: str = "analyst.duckdb") -> list[str]:
    """The analyst tables that differ from the plain run's (none reached a local disk: the workers and
    the runs wrote Parquet only to the bucket)."""
    assert sorted(str(p) for p in dep.base.rglob("*.parquet")) == []
    got = _analyst_tables(dep.env, dep.base / name)
    assert got.keys() == want.tables.keys() and len(got) >= 20
    assert len(got["ingest.events"]) >= events * 0.9
    return sorted(table for table in want.tables if got[table] != want.tables[table])


def _check_equal(dep: Deployment, bucket: str, s3: S3, want: Result, events: int) -> None:
    differ = _differ(dep, want, events)
    assert differ == [], differ
    assert _feed(s3.read(f"{bucket}/publish/feed/latest.json")) == want.feed


def test_the_demo_days_on_object_storage_and_two_workers_equal_the_plain_run(  # noqa: F811
        postgres_server, redis_server, seaweedfs_server, tmp_path, demo):
    landing, want = demo
    dep, bucket = _s3_deployment(tmp_path, postgres_server, redis_server, seaweedfs_server, "s3demo", landing)
    with celery_workers(["w1", "w2"], dep.celery_yaml, dep.env, dep.base, private=_own_database) as workers:
        proc = _launch(dep, START, START + timedelta(days=DEMO_DAYS - 1))
        out = proc.communicate(timeout=1800)[0]
        assert proc.returncode == 0, out[-4000:]
        steps = [_steps_run_by(w) for w in workers]
    assert "RUN_SUCCESS" in out
    assert sum(steps) == _nightly_steps(), steps  # every step of the nightly job, each once, on the workers
    _check_equal(dep, bucket, seaweedfs_server, want, DEMO_DAYS * DEMO_EVENTS)


def test_four_day_partitions_at_once_on_object_storage_are_spread_over_both_workers(  # noqa: F811
        postgres_server, redis_server, seaweedfs_server, tmp_path, short):
    landing, want = short
    dep, bucket = _s3_deployment(tmp_path, postgres_server, redis_server, seaweedfs_server, "s3four", landing)
    days = [START + timedelta(days=i) for i in range(SHORT_DAYS)]
    feed = f"{bucket}/publish/feed/latest.json"
    with celery_workers(["w1", "w2"], dep.celery_yaml, dep.env, dep.base, private=_own_database) as workers:
        procs = [_launch(dep, d, d) for d in days]
        outputs = [p.communicate(timeout=900)[0] for p in procs]
        steps = [_steps_run_by(w) for w in workers]
        for p, out in zip(procs, outputs):
            assert p.returncode == 0, out[-4000:]
        assert sum(steps) == SHORT_DAYS * _nightly_steps() and min(steps) > 0, steps  # all four runs, both workers
        # Each day is whole: every table of one day's own events equals the plain run's. A window figure
        # reads the days before its day: a later day that finished before an earlier one was written was
        # computed without it; the store's record holds it stale and the feed says so.
        differ = _differ(dep, want, SHORT_DAYS * SHORT_EVENTS, "analyst-before.duckdb")
        assert set(differ) <= set(_WINDOWED), differ
        with _environment(dep.env):
            stale = changed_days.pending(Layout(dep.env["FLYWHEEL_STORE"])).stale
            assert bool(stale) or not differ, differ  # windows that differ are recorded stale
            assert json.loads(seaweedfs_server.read(feed))["stale"] == (None if days[-1] not in stale else {
                "since": stale[days[-1]].since.isoformat(), "reason": stale[days[-1]].reason, "detail": ANY})
            requests = _sensor_tick(dep)  # one tick of the daemon's late_data_sensor, on the instance
        assert [(r.job_name, r.tags[RANGE_START]) for r in requests] == ([("refresh_windows", min(stale).isoformat())]
                                                                      if stale else [])
        for request in requests:
            refresh = _launch(dep, date.fromisoformat(request.tags[RANGE_START]),
                              date.fromisoformat(request.tags[RANGE_END]), job=request.job_name)
            out = refresh.communicate(timeout=900)[0]
            assert refresh.returncode == 0, out[-4000:]
    with _environment(dep.env):
        assert changed_days.pending(Layout(dep.env["FLYWHEEL_STORE"])).stale == {}
    _check_equal(dep, bucket, seaweedfs_server, want, SHORT_DAYS * SHORT_EVENTS)


def test_a_worker_killed_mid_step_on_object_storage_leaves_the_run_to_the_other_equal_to_the_plain_run(  # noqa: F811
        postgres_server, redis_server, seaweedfs_server, tmp_path, short):
    landing, want = short
    # The dead worker's task goes back to the queue once unacknowledged for the visibility timeout:
    # 45 s here (above any step of these small days), checked every second.
    dep, bucket = _s3_deployment(tmp_path, postgres_server, redis_server, seaweedfs_server, "s3kill", landing,
                                 visibility_timeout=45, unacked_restore_interval=1)
    with celery_workers(["w1", "w2"], dep.celery_yaml, dep.env, dep.base, private=_own_database) as workers:
        proc = _launch(dep, START, START + timedelta(days=SHORT_DAYS - 1))
        deadline = time.monotonic() + 600
        victim = None
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            victim = next((w for w in workers if w.name in _started_by(postgres_server, "s3kill", "failure_clusters")),
                          None)
            time.sleep(0.05)
        assert victim is not None, "no worker started the failures step"
        time.sleep(0.5)  # into the step: its first nights' tables are being written to the bucket
        victim.kill()
        out = proc.communicate(timeout=900)[0]
    assert proc.returncode == 0, out[-4000:]
    survivor = next(w for w in workers if w is not victim)
    assert _started_by(postgres_server, "s3kill", "failure_clusters") == [victim.name, survivor.name]  # ran again
    shutil.rmtree(dep.base / victim.name)  # the dead machine's disk is gone with it
    _check_equal(dep, bucket, seaweedfs_server, want, SHORT_DAYS * SHORT_EVENTS)
