"""The modules after ingest and the analysts' database on a store in an S3-compatible object store
(SeaweedFS, started by the tests on 127.0.0.1): the same generated nights built into
`s3://bucket/prefix` (outcomes, failures, signals, decisions, catalog) and into a local folder give
every view the same rows; the database file (always local) names no bucket and reads
the bucket through the `flywheel_store` variable and a registered filesystem, also when copied to
another folder; and the approvals ledger, which cannot be appended to on S3, keeps every verdict of
two processes approving at once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from datetime import date

import duckdb
import pytest

from conftest import nightly_sample, run_outcomes
from flywheel.analyst import connect_read_only, run_query
from flywheel.catalog import build_catalog
from flywheel.config import Settings
from flywheel.generate import generate
from flywheel.ingest.partition import build_events, build_interventions
from flywheel.ingest.sync import sync_landing
from flywheel.objectstore import is_remote, root_of
from flywheel.signals.ledger import append_ledger, read_ledger
from servers import S3, seaweedfs_server  # noqa: F401
from test_faults import _norm

DAYS, EVENTS = 3, 150
LOG_VOLATILE = {"decided_at"}  # when a run decided: the decision log's only column that differs by run time


@pytest.fixture(scope="module")
def s3_env(seaweedfs_server: S3):  # noqa: F811 - the fixture imported above
    """The AWS variables pointing at the test server, set for the module; a bucket of its own. The
    reviewer-id key is configured (FLYWHEEL_HASH_KEY), so both runs pseudonymise alike (each store
    would otherwise make a random key of its own)."""
    env = {**seaweedfs_server.env(), "FLYWHEEL_HASH_KEY": "catalog-s3-test"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield seaweedfs_server.make_bucket("catalog-s3")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _nights(settings: Settings, days: list) -> None:
    """What conftest's nightly_sample runs after ingest: outcomes, then night after night the
    failure clusters, edit patterns, signals and decisions, then the catalog."""
    from flywheel.failures import build_failures
    from flywheel.failures.patterns import build_edit_patterns
    from flywheel.signals.decide import decide_day
    from flywheel.signals.policy import load_policy

    run_outcomes(settings, days)
    policy = load_policy()
    for d in days:
        build_failures(settings, d, run_id=f"night-{d}")
        build_edit_patterns(settings, d)
        decide_day(settings, d, f"night-{d}", policy)
    build_catalog(settings)


@pytest.fixture(scope="module")
def runs(s3_env, seaweedfs_server: S3, tmp_path_factory):  # noqa: F811
    """The same generated nights run in a local folder, and with every stage after ingest on the
    bucket. Ingest itself (flywheel/ingest, tested on S3 by its own tests) runs locally; its store
    is uploaded, so what runs on the bucket is exactly the modules after it: outcomes, failures,
    signals, the ledger and the catalog."""
    local, _, _ = nightly_sample(tmp_path_factory.mktemp("local"), days=DAYS, events_per_day=EVENTS, seed=7)
    base = tmp_path_factory.mktemp("remote")
    generate(base / "landing", days=DAYS, events_per_day=EVENTS, seed=7, start=date(2026, 3, 1), progress=False)
    ingested = Settings(landing=base / "landing", store=base / "ingested", db=base / "ingested.duckdb")
    days = sorted(sync_landing(ingested).event_days)
    for d in days:
        build_events(ingested, d)
        build_interventions(ingested, d)
    upload = base / "upload"
    shutil.copytree(ingested.store, upload, ignore=shutil.ignore_patterns(".*.lock", "_tmp"))
    store = f"{s3_env}/store-{uuid.uuid4().hex[:8]}"
    seaweedfs_server.upload(upload, store)
    remote = Settings(landing=base / "landing", store=root_of(store), db=base / "flywheel.duckdb",
                      publish=base / "publish")
    _nights(remote, days)
    assert is_remote(remote.store) and not is_remote(local.store)
    assert root_of(store).joinpath("failures", "state").exists()  # the nights really were written to the bucket
    return local, remote


def _select(con, name: str) -> str:
    columns = con.sql(f"SELECT * FROM {name} LIMIT 0").columns
    keep = ", ".join(f'"{c}"' for c in columns if not (name == "signals.decision_log" and c in LOG_VOLATILE))
    return f"SELECT {keep} FROM {name}"


def _all_rows(con) -> dict[str, list]:
    names = [f"{s}.{v}" for s, v in con.sql("SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal "
                                            "AND schema_name NOT IN ('information_schema', 'pg_catalog') "
                                            "ORDER BY ALL").fetchall()]
    return {name: sorted(_norm(con.sql(_select(con, name)).fetchall()), key=repr) for name in names}


def test_every_view_over_the_bucket_equals_the_local_run(runs, tmp_path):
    local, remote = runs
    tables = {}
    for settings in (local, remote):
        con = connect_read_only(settings, fallback=False)
        try:
            tables[settings is remote] = _all_rows(con)
        finally:
            con.close()
    here, there = tables[False], tables[True]
    assert len(here) >= 24 and here["ingest.events"] and here["signals.decisions"] and here["failures.assignments"]
    assert there.keys() == here.keys()
    for name, rows in here.items():
        assert there[name] == rows, f"{name} differs between the bucket and the local folder"

    # the database file names no bucket; on another machine it reads the bucket through the variable
    # and s3fs registered on the connection (what flywheel's connections do)
    copy = tmp_path / "flywheel.duckdb"
    shutil.copy(remote.db, copy)
    con = duckdb.connect(str(copy), read_only=True)
    try:
        definitions = "\n".join(s for (s,) in con.sql("SELECT sql FROM duckdb_views() WHERE NOT internal").fetchall())
        assert "catalog-s3" not in definitions  # no bucket, no prefix
        con.register_filesystem(root_of(str(remote.store)).fs)
        con.execute("SET VARIABLE flywheel_store = ?", [str(remote.store)])
        con.execute("SET TimeZone = 'UTC'")
        assert sorted(_norm(con.sql("SELECT * FROM outcomes.daily_rates").fetchall()), key=repr) == \
            here["outcomes.daily_rates"]
    finally:
        con.close()

    # `flywheel sql` over the bucket: the sandbox allows the store's prefix, nothing else
    columns, rows, _ = run_query(remote, "SELECT count(*) AS n FROM ingest.events")
    assert rows == [(len(here["ingest.events"]),)]
    with pytest.raises(duckdb.Error):
        run_query(remote, f"SELECT * FROM read_parquet('{local.store.resolve()}/events/*/data.parquet')")


_APPROVER = """
import sys
from flywheel.config import Settings
from flywheel.objectstore import root_of
from flywheel.signals.ledger import append_ledger
settings = Settings(landing=root_of(sys.argv[1]), store=root_of(sys.argv[2]), db=root_of(sys.argv[3]))
for i in range(int(sys.argv[5])):
    append_ledger(settings, {"decision_id": f"{sys.argv[4]}-{i}", "verdict": "approved", "by": sys.argv[4],
                             "note": "", "kind": "autonomy", "scenario": "s", "level": "gated",
                             "previous_level": "assist", "day": "2026-03-01", "run_id": "r"})
"""


def test_two_processes_approving_at_once_on_s3_keep_every_verdict(runs, tmp_path):
    _, remote = runs
    before = read_ledger(remote)
    procs = [subprocess.Popen([sys.executable, "-c", _APPROVER, str(tmp_path / "landing"), str(remote.store),
                               str(tmp_path / "x.duckdb"), who, "6"], stderr=subprocess.PIPE, text=True)
             for who in ("ana", "ben")]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()[-3000:]
    entries = read_ledger(remote)
    added = {e["decision_id"] for e in entries[len(before):]}
    assert entries[:len(before)] == before
    assert added == {f"{who}-{i}" for who in ("ana", "ben") for i in range(6)}
    assert len(entries) == len(before) + 12
    # each writer's own verdicts stay in the order it recorded them
    for who in ("ana", "ben"):
        mine = [e["decision_id"] for e in entries if e["by"] == who]
        assert mine == [f"{who}-{i}" for i in range(6)]

    append_ledger(remote, {"decision_id": "carl-0", "verdict": "rejected", "by": "carl", "note": "no",
                           "kind": "autonomy", "scenario": "s", "level": "gated", "previous_level": "assist",
                           "day": "2026-03-01", "run_id": "r"})
    build_catalog(remote)
    con = connect_read_only(remote, fallback=False)
    try:
        seen = con.sql("SELECT decision_id, verdict FROM signals.approvals").fetchall()
    finally:
        con.close()
    assert sorted(seen) == sorted([(e["decision_id"], e["verdict"]) for e in entries] + [("carl-0", "rejected")])


def test_the_ledger_on_s3_is_one_object_that_only_grows(runs):
    _, remote = runs
    path = root_of(str(remote.store)) / "decisions" / "approvals.jsonl"
    size = path.stat().st_size if path.exists() else 0
    entry = append_ledger(remote, {"decision_id": "dora-0", "verdict": "approved", "by": "dora", "note": "",
                                   "kind": "autonomy", "scenario": "s", "level": "gated", "previous_level": "assist",
                                   "day": "2026-03-02", "run_id": "r"})
    data = path.read_bytes()
    assert len(data) > size and data.endswith(b"\n")
    assert read_ledger(remote)[-1] == entry


def test_a_pull_into_a_bucket_lands_once_and_keeps_its_state_there(s3_env, tmp_path):
    from flywheel.sources.pull import load_state, pull, source_dir
    from test_sources_pull import T0, FakeSource, _config, _event, _review

    prefix = f"{s3_env}/pull-{uuid.uuid4().hex[:8]}"
    s = Settings(landing=root_of(f"{prefix}/landing"), store=root_of(f"{prefix}/store"), db=tmp_path / "db.duckdb")
    source = FakeSource([_event(1, T0), _event(2, T0), _review(1, T0, "accepted")])
    first = pull(s, source, _config())
    assert (first.landed["events"], first.landed["interventions"]) == (2, 1) and first.reconciles()
    assert [p.name for p in first.files] and all(is_remote(p) and p.exists() for p in first.files)
    landed = [p for p in (s.landing / "events" / "fake").glob("*.jsonl")]
    assert len(landed) == 1 and landed[0].read_text().count("\n") == 2
    assert load_state(s, "fake")["hwm"] == "2026-11-20T09:00:00Z"
    assert is_remote(source_dir(s, "fake")) and (source_dir(s, "fake") / "state.json").exists()
    second = pull(s, source, _config())
    assert second.files == [] and second.duplicates["events"] == 2
    assert [p.name for p in (s.landing / "events" / "fake").glob("*.jsonl")] == [landed[0].name]


def test_the_report_of_nights_in_the_bucket_is_published_to_the_bucket(runs, s3_env, tmp_path):
    from dataclasses import replace

    from flywheel.report import publish_report, report_summary

    local, remote = runs
    published = replace(remote, publish=root_of(f"{s3_env}/publish-{uuid.uuid4().hex[:8]}"))
    path = publish_report(published, "night-r1")
    assert is_remote(path) and path.name == "night-r1.html"
    assert (path.parent / "latest.html").read_bytes() == path.read_bytes()
    here = publish_report(replace(local, publish=tmp_path / "publish"), "night-r1")
    assert report_summary(path) == report_summary(here) and report_summary(path)["plots"] > 0
    assert path.read_bytes() == here.read_bytes()  # the same report, byte for byte


def test_the_store_makes_its_own_reviewer_key_once_in_the_bucket(s3_env, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from flywheel.privacy import hash_key

    monkeypatch.delenv("FLYWHEEL_HASH_KEY")
    store = root_of(f"{s3_env}/key-{uuid.uuid4().hex[:8]}")
    with ThreadPoolExecutor(4) as pool:  # four processes' worth of first nights at once
        keys = list(pool.map(lambda _: hash_key(store), range(4)))
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    assert (store / ".hash_key").read_bytes() == keys[0] and hash_key(store) == keys[0]


def test_the_local_database_of_a_bucket_is_rebuilt_only_when_its_views_change(runs):
    _, remote = runs
    build_catalog(remote)
    first = (remote.db.stat().st_ino, remote.db.stat().st_mtime_ns)
    assert build_catalog(remote) == remote.db
    assert (remote.db.stat().st_ino, remote.db.stat().st_mtime_ns) == first  # nothing changed: no rebuild
    # the stamp and the lock are this machine's, beside its file: none in the bucket
    assert (remote.db.parent / f".{remote.db.name}.stamp").exists()
    assert not (remote.store / "_schema" / "catalog.stamp").exists() and not (remote.store / ".catalog.lock").exists()
    build_catalog(remote, force=True)
    assert (remote.db.stat().st_ino, remote.db.stat().st_mtime_ns) != first
