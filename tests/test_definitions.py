"""The Dagster definitions: they load and validate, and a snapshot of what they hold; the
schedule's day; the landing sensor; and the rule that flywheel/ never imports dagster."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import dagster as dg

from assets.definitions import defs
from assets.jobs import RANGE_END, RANGE_START
from assets.resources import FlywheelResource
from assets.schedules import nightly_day, nightly_schedule
from assets.sensors import landing_sensor, late_data_sensor
from conftest import write_jsonl
from flywheel.ingest import changed_days
from flywheel.store import Layout

ROOT = Path(__file__).resolve().parents[1]


def test_dagster_definitions_validate_passes():
    proc = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "All code locations passed validation" in proc.stderr + proc.stdout


def test_snapshot_of_assets_groups_and_checks():
    graph = defs.resolve_asset_graph()
    keys = sorted(k.to_user_string() for k in graph.get_all_asset_keys())
    assert keys == ["failures/assignments", "failures/cluster_daily", "failures/cluster_history", "failures/clusters",
                    "failures/edit_patterns",
                    "ingest/events", "ingest/interventions", "landing/files",
                    "outcomes/calibration", "outcomes/daily_rates", "outcomes/event_outcomes", "outcomes/recovery",
                    "outcomes/reliability_bins", "outcomes/rolling_rates", "publish/decision_feed", "publish/report",
                    "signals/decisions", "signals/drift", "signals/gate_evaluations"]
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert {k: g for k, g in groups.items() if g not in ("outcomes", "signals", "failures")} == {
        "landing/files": "ingest", "ingest/events": "ingest", "ingest/interventions": "ingest",
        "publish/decision_feed": "publish", "publish/report": "publish"}
    assert all(g == k.split("/")[0] for k, g in groups.items() if g in ("outcomes", "signals", "failures"))
    checks = sorted(f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys)
    assert checks == ["ingest/events:gx_events", "ingest/events:gx_quarantine",
                      "ingest/interventions:gx_interventions", "ingest/interventions:records_accounted_for",
                      "outcomes/daily_rates:counts_reconcile", "outcomes/daily_rates:rates_within_bounds"]
    for key in graph.get_all_asset_keys():
        assert graph.get(key).description, f"{key.to_user_string()} has no description"
    assert [s.name for s in defs.schedules] == ["nightly_schedule"]
    assert [s.name for s in defs.sensors] == ["landing_sensor", "late_data_sensor"]
    events = graph.get(dg.AssetKey(["ingest", "events"]))
    assert events.description and "quarantine" in events.description
    assert set(events.kinds) >= {"duckdb", "parquet"}
    drift = graph.get(dg.AssetKey(["signals", "drift"]))
    assert dg.AssetKey(["failures", "cluster_daily"]) in drift.parent_keys  # growth feeds the drift signals
    assert dg.AssetKey(["outcomes", "event_outcomes"]) in graph.get(dg.AssetKey(["failures", "assignments"])).parent_keys
    assert graph.get(dg.AssetKey(["failures", "edit_patterns"])).parent_keys == {dg.AssetKey(["outcomes", "event_outcomes"])}
    nightly = defs.resolve_job_def("nightly").asset_layer.executable_asset_keys
    assert dg.AssetKey(["failures", "edit_patterns"]) in nightly


def test_nightly_day_is_yesterday():
    assert nightly_day(date(2026, 3, 10)) == date(2026, 3, 9)
    assert nightly_day(date(2026, 3, 1)) == date(2026, 2, 28)


def test_schedule_asks_for_one_run_over_yesterday():
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 10, 2, 30, tzinfo=timezone.utc))
    request = nightly_schedule(context)
    assert request.tags[RANGE_START] == "2026-03-09" and request.tags[RANGE_END] == "2026-03-09"
    assert request.run_key == "nightly-2026-03-10"


def test_landing_sensor_runs_the_days_of_new_files_once(settings):
    write_jsonl(settings.landing / "events" / "a.jsonl", [
        {"event_id": "e1", "occurred_at": "2026-03-01T10:00:00Z"},
        {"event_id": "e2", "occurred_at": "2026-03-03T23:30:00-02:00"},  # UTC: 2026-03-04
    ])
    context = dg.build_sensor_context(cursor=None, resources={"flywheel": FlywheelResource()})
    result = landing_sensor(context)
    assert len(result.run_requests) == 1
    tags = result.run_requests[0].tags
    assert (tags[RANGE_START], tags[RANGE_END]) == ("2026-03-01", "2026-03-04")
    again = landing_sensor(dg.build_sensor_context(cursor=result.cursor, resources={"flywheel": FlywheelResource()}))
    assert isinstance(again, dg.SkipReason)


def test_sensors_read_the_paths_of_the_configured_resource(settings, tmp_path):
    """A FlywheelResource configured in Dagster with other paths than the environment's (which the
    `settings` fixture sets) is what the sensors read: the landing sensor its landing folder, the
    late-data sensor its store."""
    other = FlywheelResource(landing=str(tmp_path / "other" / "landing"), store=str(tmp_path / "other" / "store"))
    (tmp_path / "other" / "landing" / "events").mkdir(parents=True)
    write_jsonl(tmp_path / "other" / "landing" / "events" / "b.jsonl", [{"event_id": "e1", "occurred_at": "2026-03-05T10:00:00Z"}])
    result = landing_sensor(dg.build_sensor_context(cursor=None, resources={"flywheel": other}))
    assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in result.run_requests] == [("2026-03-05", "2026-03-05")]
    from_env = landing_sensor(dg.build_sensor_context(cursor=None, resources={"flywheel": FlywheelResource()}))
    assert isinstance(from_env, dg.SkipReason)  # the environment's landing folder is empty
    changed_days.mark(Layout(tmp_path / "other" / "store"), [date(2026, 3, 2)])
    with dg.DagsterInstance.ephemeral() as instance:
        late = late_data_sensor(dg.build_sensor_context(instance=instance, resources={"flywheel": other}))
        assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in late.run_requests] == [("2026-03-02", "2026-03-02")]
        from_env = late_data_sensor(dg.build_sensor_context(instance=instance, resources={"flywheel": FlywheelResource()}))
        assert not from_env.run_requests  # nothing waits in the environment's store


def test_flywheel_library_never_imports_dagster():
    code = ("import sys, pkgutil, importlib, flywheel\n"
            "for m in pkgutil.walk_packages(flywheel.__path__, 'flywheel.'):\n"
            "    importlib.import_module(m.name)\n"
            "print(json.dumps(sorted(k for k in sys.modules if k.split('.')[0] == 'dagster')))")
    proc = subprocess.run([sys.executable, "-c", "import json\n" + code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == []
    offenders = [p for p in (ROOT / "flywheel").rglob("*.py") if "import dagster" in p.read_text() or "from dagster" in p.read_text()]
    assert offenders == []


def test_pulled_sources_are_assets_only_when_the_sources_file_names_their_server(tmp_path):
    from assets.sources import configured, source_definitions
    from flywheel.sources import load_sources

    assert configured(load_sources(None)) == []  # the shipped default reaches for no server
    assert source_definitions(load_sources(None)) == ([], [], [])
    path = tmp_path / "sources.yaml"
    path.write_text("version: 1\npull:\n  phoenix:\n    url: http://127.0.0.1:6006\n")
    assets, jobs, schedules = source_definitions(load_sources(path))
    assert [a.key.to_user_string() for a in assets] == ["sources/phoenix"]
    assert [j.name for j in jobs] == ["pull_sources"] and [s.name for s in schedules] == ["pull_schedule"]
    with_sources = dg.Definitions(assets=[*defs.assets, *assets], jobs=[*defs.jobs, *jobs],
                                  schedules=[*defs.schedules, *schedules], sensors=defs.sensors,
                                  resources={"flywheel": FlywheelResource()})
    nightly = with_sources.resolve_job_def("nightly").asset_layer.executable_asset_keys
    assert dg.AssetKey(["sources", "phoenix"]) not in nightly and dg.AssetKey(["ingest", "events"]) in nightly
    assert with_sources.resolve_job_def("pull_sources").asset_layer.executable_asset_keys == {
        dg.AssetKey(["sources", "phoenix"])}
