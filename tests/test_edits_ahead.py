"""The edit frames of a run's later days computed in a helper process (`flywheel.failures.ahead`):
the nights built with it equal the nights built without it, the calling process then diffs only the
first day, and a frame the helper computed from other rows, or a helper that dies, leaves the day to
the calling process. Also: a spawned pool's workers die with the process that started them."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from conftest import run_outcomes, run_pipeline
from flywheel.config import Settings
from flywheel.failures import build_failures, edits
from flywheel.failures.ahead import EditsAhead
from flywheel.failures.documents import EDITS, _fingerprint, day_edits, day_events
from flywheel.generate import generate
from flywheel.store import Layout

START = date(2026, 3, 1)
DAYS = [START + timedelta(days=i) for i in range(4)]
TABLES = ("failures/assignments", "failures/clusters", "failures/cluster_history", "failures/cluster_daily")


@pytest.fixture(scope="module")
def outcomes_store(tmp_path_factory) -> Settings:
    """Four generated days (400 events each) ingested and resolved, no failure night built yet."""
    root = tmp_path_factory.mktemp("ahead")
    settings = Settings(landing=root / "landing", store=root / "store", db=root / "flywheel.duckdb",
                        publish=root / "publish")
    generate(settings.landing, days=len(DAYS), events_per_day=400, seed=11, start=START, progress=False)
    run_pipeline(settings)
    run_outcomes(settings, DAYS)
    return settings


def _copy(settings: Settings, to: Path) -> Settings:
    shutil.copytree(settings.store, to / "store")
    return dataclasses.replace(settings, store=to / "store", db=to / "flywheel.duckdb")


def _count_diffs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each `edits.diff` call of this process (a spawned helper is another process: not counted)."""
    calls: list[str] = []
    real = edits.diff
    monkeypatch.setattr(edits, "diff", lambda d, f, s=None: calls.append(f or "") or real(d, f, s))
    return calls


def _distinct_changes(settings: Settings, day: date) -> int:
    frame = day_events(settings, day)
    if settings.redact:
        from flywheel.failures.documents import _redact

        frame = _redact(frame)
    return len(edits.distinct_changes(frame)[1])


def _assert_same_nights(got: Settings, want: Settings) -> None:
    for day in DAYS:
        for name in TABLES:
            a, b = (pl.read_parquet(Layout(s.store).table(name, day)) for s in (got, want))
            keep = [c for c in a.columns if c not in ("run_id", "born_run")]
            assert a.select(keep).equals(b.select(keep)), (name, day)
        kept = [pq.read_table(Layout(s.store).table(EDITS, day)) for s in (got, want)]
        assert kept[0].equals(kept[1]) and kept[0].schema.metadata == kept[1].schema.metadata, day


def test_nights_built_with_edits_ahead_equal_nights_built_alone(outcomes_store, tmp_path, monkeypatch):
    alone, with_ahead = _copy(outcomes_store, tmp_path / "alone"), _copy(outcomes_store, tmp_path / "ahead")
    for day in DAYS:
        build_failures(alone, day, run_id="alone")
    calls = _count_diffs(monkeypatch)
    with EditsAhead(with_ahead, DAYS, workers=1) as ahead:
        assert ahead._pool is not None
        for day in DAYS:
            build_failures(with_ahead, day, run_id="ahead", ahead=ahead)
    # this process diffed the first day's edits only: the helper diffed the other three days'
    first = _distinct_changes(with_ahead, DAYS[0])
    assert first > 0 and len(calls) == first, (len(calls), first)
    assert sum(_distinct_changes(with_ahead, d) for d in DAYS[1:]) > 0
    _assert_same_nights(with_ahead, alone)


def test_no_helper_for_a_single_day_and_none_needed_for_kept_frames(outcomes_store, tmp_path, monkeypatch):
    settings = _copy(outcomes_store, tmp_path / "s")
    with EditsAhead(settings, DAYS[:1]) as ahead:
        assert ahead._pool is None and ahead.take(DAYS[0], "any") is None
    for day in DAYS:
        day_edits(settings, day)  # every frame kept
    calls = _count_diffs(monkeypatch)
    with EditsAhead(settings, DAYS, workers=1) as ahead:
        # the helper found each frame current: nothing to take, nothing diffed here either
        key = _fingerprint(day_events(settings, DAYS[1]), settings.redact)
        assert ahead.take(DAYS[1], key) is None
        for day in DAYS:
            build_failures(settings, day, run_id="rerun", ahead=ahead)
    assert calls == []


def test_a_frame_computed_from_other_rows_is_not_taken(outcomes_store, tmp_path):
    settings = _copy(outcomes_store, tmp_path / "s")
    with EditsAhead(settings, DAYS[:3], workers=1) as ahead:
        assert ahead.take(DAYS[1], "the fingerprint of other rows") is None
        key = _fingerprint(day_events(settings, DAYS[2]), settings.redact)
        frame = ahead.take(DAYS[2], key)
    assert frame is not None and frame.equals(day_edits(settings, DAYS[2]))


def test_a_helper_that_dies_leaves_its_days_to_the_caller(outcomes_store, tmp_path, caplog):
    alone, settings = _copy(outcomes_store, tmp_path / "alone"), _copy(outcomes_store, tmp_path / "s")
    for day in DAYS:
        build_failures(alone, day, run_id="alone")
    with caplog.at_level(logging.WARNING, logger="flywheel.failures.ahead"):
        with EditsAhead(settings, DAYS, workers=1) as ahead:
            helper = next(iter(ahead._pool._processes.values()))  # type: ignore[union-attr]
            os.kill(helper.pid, signal.SIGKILL)
            helper.join(30)
            for day in DAYS:
                build_failures(settings, day, run_id="s", ahead=ahead)
    assert any("computing it here" in r.getMessage() for r in caplog.records)
    _assert_same_nights(settings, alone)


def test_a_spawned_pools_worker_dies_with_its_parent(tmp_path):
    """SIGKILL the process that started a pool while its worker runs a task: the kernel kills the
    worker too (Linux), so no worker outlives a killed run (holding a lock, or the run's pipes)."""
    if sys.platform != "linux":
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    pid_file = tmp_path / "worker.pid"
    script = textwrap.dedent(f"""
        import os, time
        from flywheel.processes import spawned_pool

        def task(path):
            open(path, "w").write(str(os.getpid()))
            time.sleep(600)

        if __name__ == "__main__":
            pool = spawned_pool(1)
            pool.submit(task, {str(pid_file)!r})
            time.sleep(600)
        """)
    (tmp_path / "parent.py").write_text(script)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), str(tmp_path)])}
    log = tmp_path / "parent.log"  # also what the killed parent's resource tracker says of its pool
    with open(log, "wb") as out:
        parent = subprocess.Popen([sys.executable, str(tmp_path / "parent.py")], env=env, cwd=tmp_path,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.1)
        assert pid_file.exists(), log.read_text(errors="replace")[-2000:]
        worker = int(pid_file.read_text())
        assert _alive(worker)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 30
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped by init, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
