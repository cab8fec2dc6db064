"""The landing sync and the day partitions on an S3-compatible object store (SeaweedFS, started by
tests/servers.py on 127.0.0.1) give the same store as on local folders: the demo's generated landing
(3 days x 300 events, with its malformed files), uploaded to the bucket and synced and partitioned into
an s3:// store, leaves every staged piece, partition, duplicate and quarantine table equal to the local
run's, the same manifests (but the change stamp: ETag there, mtime locally) and the same counts; a
second sync of the unchanged landing reads nothing; and a run SIGKILLed in the middle of a write (a
staged piece, a partition) then run again ends equal too, nothing half-written left behind."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flywheel.config import Settings
from flywheel.generate import generate
from flywheel.ingest.partition import build_events, build_interventions
from flywheel.ingest.sync import sync_landing
from flywheel.objectstore import is_remote, root_of, url
from servers import seaweedfs_server  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
HASH_KEY = "store-s3-test"  # the same pseudonyms in both stores (the store's own key is random)
STAMPS = {"mtime_ns", "etag"}  # how each kind of landing recognises an unchanged file
FOLDERS = ("events", "interventions")  # the generated landing folders (the generator writes no otlp/)


@pytest.fixture(scope="module")
def s3(seaweedfs_server):  # noqa: F811
    """The standard AWS variables for the test server, set for this module (and its subprocesses)."""
    env = {"AWS_ACCESS_KEY_ID": seaweedfs_server.access_key, "AWS_SECRET_ACCESS_KEY": seaweedfs_server.secret_key,
           "AWS_ENDPOINT_URL": f"http://{seaweedfs_server.endpoint}", "AWS_REGION": seaweedfs_server.region,
           "FLYWHEEL_HASH_KEY": HASH_KEY, "FLYWHEEL_LEASE_SECONDS": "10"}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    yield env
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _upload(folder: Path, prefix: str) -> Path:
    """Copy the local `folder` to s3://flywheel/<prefix>/ object by object; returns its root."""
    root = root_of(f"s3://flywheel/{prefix}")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        root.fs.put_file(str(path), f"{root.path}/{path.relative_to(folder).as_posix()}")
    return root


def _run(settings: Settings, days: list[date] | None = None):
    """One sync, then every given day (default: the days the sync touched) built; (sync report, counts)."""
    report = sync_landing(settings, workers=1)
    counts = {}
    for day in sorted(days if days is not None else report.event_days):
        for build in (build_events, build_interventions):
            r = build(settings, day)
            counts[(r.kind, day)] = (r.staged, r.stored, r.duplicates, r.quarantined, r.source_files)
    return report, counts


def _files(root) -> list[str]:
    """The store's files, relative to its root; lock files, the store's key and DuckDB's spill left out."""
    if is_remote(root):
        base = root.path.rstrip("/")
        names = [n[len(base) + 1:] for n in root.fs.find(base)]
    else:
        names = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    return sorted(n for n in names if not n.rsplit("/", 1)[-1].startswith(".") and not n.startswith("_tmp/"))


def _content(root, rel: str):
    data = (root / rel).read_bytes()
    if rel.endswith(".parquet"):
        table = pq.read_table(io.BytesIO(data))
        return table.schema, sorted(repr(row) for row in table.to_pylist())
    if rel.startswith("manifests/"):
        return {k: v for k, v in json.loads(data).items() if k not in STAMPS}
    return data


def _snapshot(root, skip: tuple[str, ...] = ()) -> dict[str, object]:
    return {rel: _content(root, rel) for rel in _files(root) if rel not in skip}


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    generated = tmp_path_factory.mktemp("generated")
    generate(generated, days=3, events_per_day=300, seed=11, start=date(2026, 3, 1), progress=False)
    folder = tmp_path_factory.mktemp("landing")
    for name in FOLDERS:
        shutil.copytree(generated / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def local_run(landing, tmp_path_factory, s3):
    base = tmp_path_factory.mktemp("local")
    settings = Settings(landing=landing, store=base / "store", db=base / "flywheel.duckdb", publish=base / "publish")
    report, counts = _run(settings)
    return settings, report, counts, _snapshot(settings.store)


@pytest.fixture(scope="module")
def s3_landing(landing, s3):
    return _upload(landing, f"store-s3-{uuid.uuid4().hex[:8]}/landing")


def _s3_settings(tmp_path: Path, landing) -> Settings:
    store = root_of(f"s3://flywheel/store-s3-{uuid.uuid4().hex[:8]}/store")
    return Settings(landing=landing, store=store, db=tmp_path / "flywheel.duckdb", publish=tmp_path / "publish")


def test_sync_and_partitions_on_s3_equal_the_local_run_and_an_unchanged_rerun_reads_nothing(
        local_run, s3_landing, tmp_path):
    local, local_report, local_counts, local_files = local_run
    settings = _s3_settings(tmp_path, s3_landing)
    report, counts = _run(settings)
    assert [(f.path, f.status, f.read, f.staged, f.quarantined) for f in report.files] == \
        [(f.path, f.status, f.read, f.staged, f.quarantined) for f in local_report.files]
    assert (report.event_days, report.intervention_days, report.rebuild_days) == \
        (local_report.event_days, local_report.intervention_days, local_report.rebuild_days)
    assert counts == local_counts and counts
    snapshot = _snapshot(settings.store)
    assert sorted(snapshot) == sorted(local_files)
    assert [rel for rel in snapshot if snapshot[rel] != local_files[rel]] == []
    kinds = {rel.split("/")[0] + "/" + rel.split("/")[1] if rel.startswith(("staging", "quarantine", "duplicates"))
             else rel.split("/")[0] for rel in snapshot}
    assert {"staging/events", "staging/interventions", "staging/quarantine", "events", "interventions",
            "quarantine/events", "duplicates/events", "manifests"} <= kinds
    manifests = [json.loads((settings.store / rel).read_bytes()) for rel in snapshot if rel.startswith("manifests/")]
    assert manifests and all(m["etag"] and m["size"] and m.get("mtime_ns") is None for m in manifests)
    # the quarantine holds the malformed records, as locally
    assert sum(f.quarantined for f in report.files) == sum(f.quarantined for f in local_report.files) > 0

    again = sync_landing(settings, workers=1)
    assert again.changed == [] and again.rebuild_days == set()
    assert _snapshot(settings.store) == snapshot
    assert url(settings.store).startswith("s3://flywheel/")


_RUN = """
import sys
from datetime import date
from flywheel.config import Settings
from flywheel.ingest.partition import build_events, build_interventions
from flywheel.ingest.sync import sync_landing

settings = Settings.from_env()
sync_landing(settings, workers=1)
for text in sys.argv[1:]:
    build_events(settings, date.fromisoformat(text))
    build_interventions(settings, date.fromisoformat(text))
"""


@pytest.mark.parametrize("kill_at", ["staging:3", "table:4"])
def test_a_run_killed_mid_write_then_run_again_equals_the_local_run(local_run, s3_landing, tmp_path, s3, kill_at):
    """SIGKILLed at its 3rd staged piece (mid-sync, holding the staging lease) or its 4th partition
    write, before the upload completed; the rerun (which takes over the dead run's lease once it
    expires) ends with the local run's files. The record of days to rebuild is left out: the
    killed run's marks carry their own versions."""
    _, _, local_counts, local_files = local_run
    settings = _s3_settings(tmp_path, s3_landing)
    days = sorted({day.isoformat() for _, day in local_counts})
    env = {**os.environ, "FLYWHEEL_STORE": url(settings.store), "FLYWHEEL_LANDING": url(s3_landing),
           "FLYWHEEL_DB": str(settings.db), "FLYWHEEL_PUBLISH": str(settings.publish),
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    killed = subprocess.run([sys.executable, "-c", _RUN, *days], env={**env, "FLYWHEEL_KILL_AT": kill_at},
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    partial = _files(settings.store)
    assert len([r for r in partial if not r.startswith("rebuild")]) < len(local_files)  # it did stop part-way
    bucket, _, prefix = settings.store.path.partition("/")
    rerun = subprocess.run([sys.executable, "-c", _RUN, *days], env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    snapshot = _snapshot(settings.store, skip=("rebuild.json",))
    expected = {rel: v for rel, v in local_files.items() if rel != "rebuild.json"}
    assert sorted(snapshot) == sorted(expected)
    assert [rel for rel in snapshot if snapshot[rel] != expected[rel]] == []
    assert not (settings.store / ".staging.lock").exists()
    uploads = settings.store.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix).get("Uploads", [])
    assert len(uploads) <= 1  # at most the killed write's own, never completed (a lifecycle rule aborts it)
