"""Faults: the nightly run SIGKILLed mid-ingest, mid-write of a partition, mid-night of the failure
clusters and mid-publish, then run again, leaves every analyst table (failure clusters included:
every id and assignment) equal to a clean run's, with no duplicate or missing row; and no
reader can see a partial file (every file is renamed into place whole)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from flywheel.generate import generate

ROOT = Path(__file__).resolve().parents[1]
SKIP_VIEWS = {("signals", "decision_log"), ("signals", "approvals")}  # append-only logs: one entry per run
RUN_COLUMNS = {"run_id", "born_run"}  # failures: the run that built a night, which a rerun is by design
# Kill points inside the failures step, and the file each leaves absent (counted when written: the
# 62nd table write is night 2's model snapshot, after its four tables and the edit frames of nights
# 1 and 2 kept by documents.day_edits; renumber if writes are added).
KILLS_IN_FAILURES = {"table:62": "failures/state/event_date=2026-03-02/snapshot.npz"}


def _run(base: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(FLYWHEEL_LANDING=str(base / "landing"), FLYWHEEL_STORE=str(base / "store"),
               FLYWHEEL_DB=str(base / "flywheel.duckdb"), FLYWHEEL_PUBLISH=str(base / "publish"),
               FLYWHEEL_HASH_KEY="fault-test", PYTHONPATH=str(ROOT))
    env.pop("FLYWHEEL_KILL_AT", None)
    if kill_at:
        env["FLYWHEEL_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "assets.cli", "run", "--quiet"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def _norm(value):
    """Floats to 12 significant digits: parallel aggregation may sum in another order."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, (list, tuple)):
        return type(value)(_norm(v) for v in value)
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


def _tables(db: Path) -> dict[str, list]:
    con = duckdb.connect(str(db), read_only=True)
    con.execute("SET VARIABLE flywheel_store = ?", [str(db.parent / "store")])
    try:
        return _view_rows(con)
    finally:
        con.close()


def _view_rows(con: duckdb.DuckDBPyConnection) -> dict[str, list]:
    """Every analyst view of `con` but `SKIP_VIEWS`: its rows, normalised and sorted."""
    views = [(s, v) for s, v in con.sql("SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal "
                                        "AND schema_name IN ('ingest', 'outcomes', 'failures', 'signals')").fetchall()
             if (s, v) not in SKIP_VIEWS]
    return {f"{s}.{v}": sorted(_norm(con.sql(_select(con, s, v)).fetchall()), key=repr) for s, v in views}


def _select(con: duckdb.DuckDBPyConnection, schema: str, view: str) -> str:
    """Every column of the view but, in `failures`, those naming the run."""
    cols = con.sql(f'SELECT * FROM "{schema}"."{view}" LIMIT 0').columns
    keep = [c for c in cols if schema != "failures" or c not in RUN_COLUMNS]
    columns = ", ".join(f'"{c}"' for c in keep)
    return f'SELECT {columns} FROM "{schema}"."{view}"'


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    base = tmp_path_factory.mktemp("clean")
    generate(base / "landing", days=4, events_per_day=300, seed=9, start=date(2026, 3, 1), progress=False)
    result = _run(base)
    assert result.returncode == 0, result.stderr[-3000:]
    return base, _tables(base / "flywheel.duckdb")


@pytest.mark.parametrize("kill_at", ["staging:3", "manifest:2", "table:40", *KILLS_IN_FAILURES, "feed:1"])
def test_a_killed_run_then_a_rerun_equals_a_clean_run(clean, tmp_path, kill_at):
    clean_base, clean_tables = clean
    shutil.copytree(clean_base / "landing", tmp_path / "landing")
    killed = _run(tmp_path, kill_at)
    assert killed.returncode == -signal.SIGKILL, (kill_at, killed.returncode, killed.stderr[-2000:])
    # whatever the kill left behind: every file in place is whole (temporary files are never read)
    for path in (tmp_path / "store").rglob("*.parquet"):
        if not path.name.startswith("."):
            duckdb.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()
    if kill_at in KILLS_IN_FAILURES:  # the kill hit the night it is meant to: its tables written, no snapshot
        assert (tmp_path / "store" / "failures" / "assignments" / "event_date=2026-03-02" / "data.parquet").exists()
        assert not (tmp_path / "store" / KILLS_IN_FAILURES[kill_at]).exists(), f"{kill_at} hit another write"
    latest = tmp_path / "publish" / "feed" / "latest.json"
    if latest.exists():
        json.loads(latest.read_text())
    in_sync = kill_at.startswith(("staging", "manifest"))
    if in_sync:  # the killed write's temporary file is left behind...
        assert _temporaries(tmp_path / "store"), kill_at
    again = _run(tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    if in_sync:  # ...and the next sync removes it
        assert _temporaries(tmp_path / "store") == [], kill_at
    tables = _tables(tmp_path / "flywheel.duckdb")
    assert tables.keys() == clean_tables.keys()
    assert {"failures.assignments", "failures.clusters", "failures.cluster_daily"} <= tables.keys()
    for name, rows in clean_tables.items():
        assert tables[name] == rows, f"{name} differs after a kill at {kill_at}"
    feed = json.loads((tmp_path / "publish" / "feed" / "latest.json").read_text())
    clean_feed = json.loads((clean_base / "publish" / "feed" / "latest.json").read_text())
    for doc in (feed, clean_feed):
        doc.pop("run_id"), doc.pop("generated_at")
    assert feed == clean_feed


def _temporaries(store: Path) -> list[Path]:
    """The temporary files of unfinished writes in the store's staging and manifest folders."""
    return sorted(p for folder in ("staging", "manifests") for p in (store / folder).rglob(".*.tmp"))
