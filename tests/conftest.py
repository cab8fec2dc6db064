"""Shared fixtures: a private landing folder, store and database per test, and small writers."""

from __future__ import annotations

import gzip
import json
import os
from datetime import date
from pathlib import Path

import duckdb
import pytest

# Tests make their own Dagster instances; a DAGSTER_HOME from the shell (e.g. the demo's) must not leak in.
os.environ.pop("DAGSTER_HOME", None)

from flywheel.catalog import build_catalog
from flywheel.config import Settings
from flywheel.ingest.partition import build_events, build_interventions
from flywheel.ingest.sync import SyncReport, sync_landing


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing at a fresh tmp landing/store/db; also exported to the environment."""
    s = Settings(landing=tmp_path / "landing", store=tmp_path / "store", db=tmp_path / "flywheel.duckdb")
    for kind in ("events", "interventions", "otlp"):
        (s.landing / kind).mkdir(parents=True)
    monkeypatch.setenv("FLYWHEEL_LANDING", str(s.landing))
    monkeypatch.setenv("FLYWHEEL_STORE", str(s.store))
    monkeypatch.setenv("FLYWHEEL_DB", str(s.db))
    return s


def write_jsonl(path: Path, records: list, gz: bool = False) -> Path:
    """Write records (dicts, or raw str/bytes lines) as JSON Lines."""
    lines = []
    for r in records:
        if isinstance(r, bytes):
            lines.append(r)
        elif isinstance(r, str):
            lines.append(r.encode())
        else:
            lines.append(json.dumps(r).encode())
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def run_pipeline(settings: Settings, days: list[date] | None = None) -> SyncReport:
    """Sync the landing folder and build the given days (default: every day synced), then the catalog."""
    report = sync_landing(settings)
    todo = sorted(days if days is not None else report.event_days)
    for day in todo:
        build_events(settings, day)
        build_interventions(settings, day)
    build_catalog(settings)
    return report


def query(settings: Settings, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of a read-only query against the analysts' database (its views read the store named by
    the `flywheel_store` variable, as README's The database says)."""
    con = duckdb.connect(str(settings.db), read_only=True)
    con.execute("SET VARIABLE flywheel_store = ?", [str(settings.store)])
    try:
        return con.sql(sql, params=params).fetchall()
    finally:
        con.close()


def run_outcomes(settings: Settings, days: list[date]) -> None:
    """Build every outcome table for the given (already ingested) days, in order, then the catalog."""
    from flywheel.outcomes.calibration import build_calibration
    from flywheel.outcomes.rates import build_daily_rates, build_rolling_rates
    from flywheel.outcomes.recovery import build_recovery
    from flywheel.outcomes.resolve import build_event_outcomes

    for day in sorted(days):
        build_event_outcomes(settings, day)
    for day in sorted(days):
        build_daily_rates(settings, day)
        build_rolling_rates(settings, day)
        build_recovery(settings, day)
        build_calibration(settings, day)
    build_catalog(settings)


def nightly_sample(root: Path, days: int = 30, changes: bool = True, events_per_day: int = 1500,
                   seed: int = 5) -> tuple[Settings, dict, dict]:
    """Generate sample data and run every stage night after night (failure clusters included), as
    the schedule would; returns
    (settings, truth, {day: that night's decisions}).

    It calls the library's stages itself, not `assets.runner.run_days` (the one runner of the
    Dagster pipeline, which the tests that drive the pipeline, the benchmarks and the examples use):
    the decision and failure tests that share it test `flywheel/` as an analyst or notebook imports
    it, with no Dagster, and they need each night's decisions as returned values."""
    from flywheel.failures import build_failures
    from flywheel.failures.patterns import build_edit_patterns
    from flywheel.generate import generate
    from flywheel.signals.decide import decide_day
    from flywheel.signals.policy import load_policy

    settings = Settings(landing=root / "landing", store=root / "store", db=root / "flywheel.duckdb",
                        publish=root / "publish")
    truth = generate(settings.landing, days=days, events_per_day=events_per_day, seed=seed,
                     start=date(2026, 3, 1), progress=False, changes=changes)
    report = run_pipeline(settings)
    all_days = sorted(report.event_days)
    run_outcomes(settings, all_days)
    policy = load_policy()
    decisions = {}
    for d in all_days:  # as the nightly job: the day's failure clusters, then its signals and decisions
        build_failures(settings, d, run_id=f"night-{d}")
        build_edit_patterns(settings, d)
        decisions[d] = decide_day(settings, d, f"night-{d}", policy)
    build_catalog(settings)
    return settings, truth, decisions


@pytest.fixture(scope="session")
def sample_with_changes(tmp_path_factory):
    """30 generated days with the injected regression and emerging failure mode, run nightly."""
    return nightly_sample(tmp_path_factory.mktemp("with_changes"), changes=True)


@pytest.fixture(scope="session")
def sample_without_changes(tmp_path_factory):
    """30 generated days with no injected change, run nightly."""
    return nightly_sample(tmp_path_factory.mktemp("without_changes"), changes=False)
