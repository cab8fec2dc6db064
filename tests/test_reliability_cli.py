"""`flywheel run` under the operator's mistakes (issue 16, item 8): a bad policy is refused before any
work, a landing folder that does not exist and an unset DAGSTER_HOME are said, two first runs on a
new DAGSTER_HOME do not break its run history, and an analyst holding the database read-write does
not turn a successful night into an error. Each test failed on the code before its fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flywheel.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_a_bad_policy_stops_flywheel_run_before_it_reads_anything(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from assets.cli import main
    from conftest import write_jsonl

    write_jsonl(settings.landing / "events" / "e.jsonl", [{"event_id": "e1"}])
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: x\npromotion:\n  min_reviewd: 10\n")
    monkeypatch.setenv("FLYWHEEL_POLICY", str(policy))
    assert main(["run", "--quiet", "--no-progress"]) == 2
    assert "promotion.min_reviewd" in capsys.readouterr().err
    assert not (settings.store / "manifests").exists()  # not even the landing folder was read


def test_a_landing_folder_that_does_not_exist_is_an_error(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from assets.cli import main

    monkeypatch.setenv("FLYWHEEL_LANDING", str(tmp_path / "typo"))
    assert main(["run", "--quiet", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"landing folder {tmp_path / 'typo'} does not exist" in err and "FLYWHEEL_LANDING" in err


def test_an_unset_dagster_home_is_said(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture) -> None:
    from assets.cli import main

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["run", "--quiet", "--no-progress"]) == 0
    assert "DAGSTER_HOME is not set" in capsys.readouterr().err


_OPEN = """
import sys
sys.path.insert(0, sys.argv[1])
from assets.runner import dagster_instance as _instance
with _instance() as instance:
    instance.get_runs(limit=1)
print("opened")
"""


def test_three_first_runs_at_once_on_a_new_dagster_home_all_open_it_and_leave_it_readable(tmp_path: Path) -> None:
    # without a lock, 3 of 3 such trials left the home with two alembic heads: every later run failed
    home = tmp_path / "dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN, str(ROOT)], env=env, cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(3)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    after = subprocess.run([sys.executable, "-c", _OPEN, str(ROOT)], env=env, cwd=ROOT, text=True,
                           capture_output=True, timeout=300)
    assert after.stdout.strip() == "opened", after.stderr[-2000:]


_HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])  # read-write, as the DuckDB CLI opens a file by default
print("holding", flush=True)
sys.stdin.read()
"""


def test_flywheel_run_succeeds_while_an_analyst_holds_the_database_read_write(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from assets.cli import main
    from conftest import write_jsonl

    monkeypatch.setenv("FLYWHEEL_PUBLISH", str(tmp_path / "publish"))
    write_jsonl(settings.landing / "events" / "e.jsonl",
                [{"event_id": f"e{i}", "occurred_at": f"2026-03-0{1 + i % 2}T10:00:00Z", "scenario": "s", "model": "m",
                  "prompt_version": "v1", "autonomy_level": "assist", "status": "ok", "confidence": 0.9,
                  "output_text": "draft", "input_text": "question"} for i in range(6)])
    assert main(["run", "--quiet", "--no-progress", "--to", "2026-03-01"]) == 0  # every view has its files now
    capsys.readouterr()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(settings.db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert main(["run", "--quiet", "--no-progress"]) == 0
    finally:
        holder.communicate("", timeout=60)
    out = capsys.readouterr()
    assert "ran event days 2026-03-02" in out.out
    assert (tmp_path / "publish" / "report" / "latest.html").exists()


def test_status_and_sql_answer_while_an_analyst_holds_the_database_read_write(
        settings: Settings, capsys: pytest.CaptureFixture) -> None:
    import json

    from assets.cli import main
    from conftest import run_pipeline, write_jsonl

    write_jsonl(settings.landing / "events" / "e.jsonl",
                [{"event_id": f"e{i}", "occurred_at": "2026-03-01T10:00:00Z", "scenario": "s", "model": "m",
                  "prompt_version": "v1", "autonomy_level": "assist", "status": "ok", "confidence": 0.9,
                  "output_text": "draft", "input_text": "question"} for i in range(3)])
    run_pipeline(settings)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(settings.db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert main(["status", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["last_event_day"] == "2026-03-01"
        assert main(["sql", "SELECT count(*) FROM ingest.events", "--format", "csv"]) == 0
        assert capsys.readouterr().out.split() == ["count_star()", "3"]
        assert main(["sql", "SELECT content FROM read_text('/etc/hostname')"]) == 2  # still sandboxed
    finally:
        holder.communicate("", timeout=60)


def test_a_killed_flywheel_run_does_not_stay_started_in_the_run_history(tmp_path):
    """A `flywheel run` SIGKILLed mid-run left its Dagster run STARTED for ever (no daemon watches an
    in-process run): the next `flywheel run` marks it failed, naming the dead process."""
    import os
    import subprocess
    import sys
    from datetime import date
    from pathlib import Path

    import dagster as dg

    from flywheel.generate import generate

    root = Path(__file__).resolve().parents[1]
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    generate(tmp_path / "landing", days=2, events_per_day=50, seed=3, start=date(2026, 3, 1), progress=False)
    env = {**{k: v for k, v in os.environ.items() if k != "FLYWHEEL_KILL_AT"},
           "DAGSTER_HOME": str(home), "FLYWHEEL_LANDING": str(tmp_path / "landing"),
           "FLYWHEEL_STORE": str(tmp_path / "store"), "FLYWHEEL_DB": str(tmp_path / "flywheel.duckdb"),
           "FLYWHEEL_PUBLISH": str(tmp_path / "publish"), "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "assets.cli", "run", "--quiet", "--no-progress"]
    killed = subprocess.run(cmd, cwd=root, env={**env, "FLYWHEEL_KILL_AT": "table:8"}, capture_output=True,
                            text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    with _instance_at(home) as instance:
        started = [r.run_id for r in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))]
    assert len(started) == 1
    again = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    with _instance_at(home) as instance:
        assert instance.get_run_by_id(started[0]).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])) == []


def _instance_at(home):
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
