"""Concurrency: four days materialised at the same time by separate Dagster runs (multiprocess
executor) while an analyst queries; two overlapping runs, one reaching the failure clusters before the
nights they continue exist, leaving every cluster id and assignment as one run in day order; and an
analyst holding a read-only connection open while the nightly run writes."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import threading
from datetime import date, timedelta
from pathlib import Path

import duckdb

from conftest import query, run_pipeline, write_jsonl
from test_ingest import event, intervention

ROOT = Path(__file__).resolve().parents[1]


def _write_days(settings, days: list[date], per_day: int) -> None:
    for d in days:
        records = [event(i, event_id=f"{d}-e{i}", occurred_at=f"{d}T{i % 24:02d}:00:00Z") for i in range(per_day)]
        write_jsonl(settings.landing / "events" / f"events-{d}.jsonl", records)
        write_jsonl(settings.landing / "interventions" / f"interventions-{d}.jsonl",
                    [intervention(i, f"{d}-e{i}", intervention_id=f"{d}-i{i}", occurred_at=f"{d}T23:59:00Z")
                     for i in range(0, per_day, 2)])


def _init_instance(home: Path) -> None:
    """Create the Dagster instance's storage once, as a deployment does before runs start."""
    home.mkdir()
    subprocess.run([sys.executable, "-c", "import dagster; dagster.DagsterInstance.get().get_runs(limit=1)"],
                   env={**os.environ, "DAGSTER_HOME": str(home)}, check=True, capture_output=True, timeout=300)


def _launch(settings, first: date, last: date, home: Path) -> subprocess.Popen:
    env = {**os.environ, "DAGSTER_HOME": str(home), "FLYWHEEL_LANDING": str(settings.landing),
           "FLYWHEEL_STORE": str(settings.store), "FLYWHEEL_DB": str(settings.db),
           "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    return subprocess.Popen([sys.executable, str(ROOT / "tests" / "run_nightly_job.py"), first.isoformat(), last.isoformat()],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_four_days_materialised_at_once_while_an_analyst_queries(settings, tmp_path):
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(4)]
    _write_days(settings, days, per_day=200)
    home = tmp_path / "dagster_home"
    _init_instance(home)
    run_pipeline(settings, [])  # the database exists before the analyst connects
    errors: list[BaseException] = []
    queries = [0]
    stop = threading.Event()

    def analyst_loop() -> None:
        while not stop.is_set():
            try:
                con = duckdb.connect(str(settings.db), read_only=True)
                con.execute("SET VARIABLE flywheel_store = ?", [str(settings.store)])
                con.sql("SELECT count(*) FROM ingest.events").fetchall()
                con.close()
                queries[0] += 1
            except BaseException as exc:  # noqa: BLE001 - the test reports whatever the analyst hit
                errors.append(exc)
                return

    thread = threading.Thread(target=analyst_loop)
    thread.start()
    try:
        procs = [_launch(settings, d, d, home) for d in days]
        outputs = [p.communicate(timeout=900)[0] for p in procs]
    finally:
        stop.set()
        thread.join()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-4000:]
    assert errors == [] and queries[0] > 0
    assert "lock" not in "".join(outputs).lower()
    assert query(settings, "SELECT event_date, count(*) FROM ingest.events GROUP BY 1 ORDER BY 1") == [(d, 200) for d in days]
    assert query(settings, "SELECT count(*) FROM ingest.interventions")[0][0] == 400
    assert query(settings, "SELECT count(DISTINCT event_date) FROM outcomes.daily_rates")[0][0] == 4
    assert query(settings, "SELECT bool_and(balanced) FROM ingest.file_reconciliation")[0][0] is True
    assert query(settings, "SELECT count(*) FROM ingest.quarantine")[0][0] == 0


def test_two_overlapping_runs_leave_the_failure_clusters_as_one_run_in_day_order(settings, tmp_path):
    # A run over days 1-4 and, started with it, one over days 3-4 (which reaches the failures step
    # first, before nights 1 and 2 exist): every failure cluster id and assignment as one run in order.
    from flywheel.failures import build_failures
    from flywheel.generate import generate
    from test_failures import failure_tables

    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(4)]
    generate(settings.landing, days=4, events_per_day=300, seed=9, start=days[0], progress=False)
    home = tmp_path / "dagster_home"
    _init_instance(home)
    procs = [_launch(settings, days[0], days[-1], home), _launch(settings, days[2], days[-1], home)]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-4000:]
    got = failure_tables(settings)
    assert got["failures/assignments"]["event_date"].n_unique() == 4
    assert got["failures/clusters"]["cluster_id"].n_unique() >= 3
    clean = dataclasses.replace(settings, store=tmp_path / "clean")
    shutil.copytree(settings.store, clean.store, ignore=shutil.ignore_patterns("failures"))
    for d in days:
        build_failures(clean, d, run_id=f"clean-{d}")
    want = failure_tables(clean)
    for name, frame in want.items():
        assert got[name].equals(frame), f"{name} differs from one run in day order"


def test_an_open_analyst_connection_neither_fails_the_run_nor_sees_half_a_day(settings, tmp_path):
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(4)]
    per_day = 3000
    _write_days(settings, days[:1], per_day)
    run_pipeline(settings)  # day one is there, and so is the database
    _write_days(settings, days, per_day)
    analyst = duckdb.connect(str(settings.db), read_only=True)
    analyst.execute("SET VARIABLE flywheel_store = ?", [str(settings.store)])
    seen: list[tuple[date, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def analyst_loop() -> None:
        while not stop.is_set():
            try:
                seen.extend(analyst.sql("SELECT event_date, count(*) FROM ingest.events GROUP BY 1").fetchall())
            except BaseException as exc:  # noqa: BLE001 - the test reports whatever the analyst hit
                errors.append(exc)
                return

    thread = threading.Thread(target=analyst_loop)
    thread.start()
    home = tmp_path / "dagster_home"
    _init_instance(home)
    try:
        proc = _launch(settings, days[0], days[-1], home)
        out = proc.communicate(timeout=600)[0]
    finally:
        stop.set()
        thread.join()
        analyst.close()
    assert proc.returncode == 0, out[-4000:]
    assert errors == []
    assert len(seen) > 0
    assert {n for _, n in seen} == {per_day}  # a day is absent or whole, never partial
    assert query(settings, "SELECT count(*) FROM ingest.events")[0][0] == per_day * len(days)
