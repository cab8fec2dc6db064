"""Configuration that used to pass silently or end in a traceback (issue 16, item 8): each is refused
at once with a message naming the variable. Each test failed on the code before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.config import Settings


@pytest.mark.parametrize("value", ["0B", "0.5MB", "1KB", "15MiB"])
def test_a_duckdb_memory_limit_too_small_to_work_is_refused_naming_the_variable(
        value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_DUCKDB_MEMORY", value)
    with pytest.raises(ValueError, match=r"FLYWHEEL_DUCKDB_MEMORY must be (at least 16MiB|more than 0 bytes)"):
        Settings.from_env()


@pytest.mark.parametrize("value, expected", [("16MiB", "16MiB"), ("48MB", "48MB"), ("4GB", "4GB"), (" 2 GiB ", "2 GiB")])
def test_a_workable_duckdb_memory_limit_is_kept(value: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_DUCKDB_MEMORY", value)
    assert Settings.from_env().duckdb_memory == expected


def test_flywheel_db_naming_a_directory_is_a_clear_error(settings: Settings, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_DB", str(tmp_path))
    with pytest.raises(ValueError, match=rf"FLYWHEEL_DB names a directory \({tmp_path}\)"):
        Settings.from_env()
    with pytest.raises(ValueError, match="names a directory"):
        Settings.from_env(db=str(tmp_path))


def _three_events(settings: Settings) -> None:
    from conftest import write_jsonl

    write_jsonl(settings.landing / "events" / "e.jsonl",
                [{"event_id": f"e{i}", "occurred_at": "2026-03-01T10:00:00Z", "scenario": "s", "model": "m",
                  "prompt_version": "v1", "autonomy_level": "assist", "status": "ok", "confidence": 0.9,
                  "output_text": "draft", "input_text": "question"} for i in range(3)])


def test_a_bad_policy_fails_the_nightly_jobs_first_step_before_any_work(settings: Settings, tmp_path: Path) -> None:
    from datetime import date

    import dagster as dg

    from assets.definitions import defs
    from assets.jobs import range_tags
    from assets.resources import FlywheelResource

    _three_events(settings)
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: x\npromotion:\n  min_reviewd: 10\n")
    job = defs.resolve_job_def("nightly")
    result = job.execute_in_process(
        tags=range_tags(date(2026, 3, 1), date(2026, 3, 1)), instance=dg.DagsterInstance.ephemeral(),
        resources={"flywheel": FlywheelResource(landing=str(settings.landing), store=str(settings.store),
                                                db=str(settings.db), policy=str(policy))},
        raise_on_error=False)
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_SUCCESS"]  # no step ran
    errors = [e for e in result.all_events if e.is_failure or e.event_type_value == "RESOURCE_INIT_FAILURE"]
    assert errors and "promotion.min_reviewd" in str(errors[0].event_specific_data.error)
    assert not list(settings.store.glob("events/**/*.parquet"))  # nothing was built
