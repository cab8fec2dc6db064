"""The nightly job on object storage and several workers (docs/deploy.md): the landing area, the store
and the published feed in a bucket of a real S3-compatible server (SeaweedFS), Dagster's instance on
PostgreSQL, each step a Celery task on a Redis broker run by two `dagster-celery` workers that are
separate processes, each in a folder of its own: they share nothing but the bucket, the instance and
the broker (tests/servers.py starts the servers on 127.0.0.1).

- the demo's days through that setup equal the plain in-process `flywheel run` on local folders:
  every analyst table (floats to 12 significant digits), read through an analysts' database built
  afterwards on another "machine" (a fresh local file whose views read the bucket), and the feed;
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
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from flywheel.generate import generate
from servers import (  # noqa: F401
    S3,
    celery_workers,
    postgres_server,
    redis_server,
    seaweedfs_server,
)
from test_deploy_celery import BIN, ROOT, Deployment, _launch, _started_by, _steps_run_by
from test_faults import SKIP_VIEWS, _norm, _select

START = date(2026, 3, 1)
# The demo's generator (`make demo`: seed 7) over 5 days of 100 events. The issue asks for its 30 days:
# on the object store a range run costs far more per day than on a local folder (every step's views
# and window reads go through s3fs: 3 days took 145 s in-process at load ~19, against 35 s on local
# folders; 30 days had not finished after 22 min), too long for `make test`.
DAYS, EVENTS, SEED = 5, 100, 7
HASH_KEY = "deploy-s3-test"
VOLATILE_FEED_KEYS = ("generated_at", "run_id")  # when and by which run the feed was written
_redis_dbs = iter(range(8, 14))  # Redis databases of their own (test_deploy_celery takes 1.., test_deploy_servers 14, 15)


@dataclass
class Result:
    tables: dict[str, list]
    feed: dict


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "DAGSTER_", "AWS_"))}


def _analyst_tables(env: dict[str, str], db: Path) -> dict[str, list]:
    """Every analyst table, as an analyst on another machine sees it: a database file built at `db`
    (views over the store `env` names), then opened read-only through flywheel's analyst connection."""
    from flywheel.analyst import connect_read_only
    from flywheel.catalog import build_catalog
    from flywheel.config import Settings

    with pytest.MonkeyPatch.context() as m:
        for k in [k for k in os.environ if k.startswith(("FLYWHEEL_", "AWS_"))]:
            m.delenv(k)
        for k, v in env.items():
            if k.startswith(("FLYWHEEL_", "AWS_")):
                m.setenv(k, v)
        m.setenv("FLYWHEEL_DB", str(db))
        settings = Settings.from_env()
        build_catalog(settings)
        con = connect_read_only(settings, fallback=False)
        try:
            views = [(s, v) for s, v in con.sql("SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal "
                                                "AND schema_name IN ('ingest', 'outcomes', 'failures', 'signals')").fetchall()
                     if (s, v) not in SKIP_VIEWS]
            return {f"{s}.{v}": sorted(_norm(con.sql(_select(con, s, v)).fetchall()), key=repr) for s, v in views}
        finally:
            con.close()


def _feed(raw: bytes) -> dict:
    feed = json.loads(raw)
    for key in VOLATILE_FEED_KEYS:
        assert feed.pop(key)  # present, then left out of the comparison
    return feed


def _plain(base: Path, days: int) -> tuple[Path, Result]:
    """The demo's landing files for `days` days, and every analyst table and the feed after the plain
    run over them: `flywheel run` in-process on local folders, no server."""
    generate(base / "landing", days=days, events_per_day=EVENTS, seed=SEED, start=START, progress=False)
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
    """The demo's days, and the plain run over them."""
    return _plain(tmp_path_factory.mktemp("demo"), DAYS)


def _s3_deployment(tmp_path: Path, postgres, redis, s3: S3, name: str, landing: Path,
                   **transport_options) -> tuple[Deployment, str]:
    """A bucket of its own holding the landing files (FLYWHEEL_LANDING, FLYWHEEL_STORE and
    FLYWHEEL_PUBLISH under it, credentials and endpoint in the standard AWS variables), a Dagster
    instance of its own on PostgreSQL and a Redis database of its own as the broker."""
    bucket = s3.make_bucket(f"deploy-{name}")
    s3.upload(landing, f"{bucket}/landing")
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
    env = _clean_env()
    env.update(s3.env())
    env.update(DAGSTER_HOME=str(home), FLYWHEEL_LANDING=f"{bucket}/landing", FLYWHEEL_STORE=f"{bucket}/store",
               FLYWHEEL_PUBLISH=f"{bucket}/publish", FLYWHEEL_DB=str(base / "flywheel.duckdb"),
               FLYWHEEL_HASH_KEY=HASH_KEY, FLYWHEEL_CELERY_BROKER=redis.url(next(_redis_dbs)), PYTHONPATH=str(ROOT))
    return Deployment(base, home, celery_yaml, env), bucket


def _own_database(folder: Path) -> dict[str, str]:
    """A worker's own analysts' database, on its own disk (FLYWHEEL_DB is always a local file)."""
    return {"FLYWHEEL_DB": str(folder / "flywheel.duckdb")}


def _nightly_steps() -> int:
    from assets.definitions import defs

    return len(defs.resolve_job_def("nightly").graph.nodes)


def _check_equal(dep: Deployment, bucket: str, s3: S3, want: Result, days: int) -> None:
    # Nothing of the store reached a local disk: the workers and the run wrote Parquet only to the bucket.
    assert sorted(str(p) for p in dep.base.rglob("*.parquet")) == []
    got = _analyst_tables(dep.env, dep.base / "analyst.duckdb")
    assert got.keys() == want.tables.keys() and len(got) >= 20
    assert len(got["ingest.events"]) >= days * EVENTS * 0.9
    differ = sorted(name for name in want.tables if got[name] != want.tables[name])
    assert differ == [], differ
    assert _feed(s3.read(f"{bucket}/publish/feed/latest.json")) == want.feed


def test_the_demo_days_on_object_storage_and_two_workers_equal_the_plain_run(  # noqa: F811
        postgres_server, redis_server, seaweedfs_server, tmp_path, demo):
    landing, want = demo
    dep, bucket = _s3_deployment(tmp_path, postgres_server, redis_server, seaweedfs_server, "s3demo", landing)
    with celery_workers(["w1", "w2"], dep.celery_yaml, dep.env, dep.base, private=_own_database) as workers:
        proc = _launch(dep, START, START + timedelta(days=DAYS - 1))
        out = proc.communicate(timeout=900)[0]
        assert proc.returncode == 0, out[-4000:]
        steps = [_steps_run_by(w) for w in workers]
    assert "RUN_SUCCESS" in out
    assert sum(steps) == _nightly_steps(), steps  # every step of the nightly job, each once, on the workers
    _check_equal(dep, bucket, seaweedfs_server, want, DAYS)


def test_a_worker_killed_mid_step_on_object_storage_leaves_the_run_to_the_other_equal_to_the_plain_run(  # noqa: F811
        postgres_server, redis_server, seaweedfs_server, tmp_path, demo):
    landing, want = demo
    # The dead worker's task goes back to the queue once unacknowledged for the visibility timeout:
    # 45 s here (above any step of these small days), checked every second.
    dep, bucket = _s3_deployment(tmp_path, postgres_server, redis_server, seaweedfs_server, "s3kill", landing,
                                 visibility_timeout=45, unacked_restore_interval=1)
    with celery_workers(["w1", "w2"], dep.celery_yaml, dep.env, dep.base, private=_own_database) as workers:
        proc = _launch(dep, START, START + timedelta(days=DAYS - 1))
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
    _check_equal(dep, bucket, seaweedfs_server, want, DAYS)
