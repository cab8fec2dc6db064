"""Late reviews: an intervention that arrives weeks after its event (within
FLYWHEEL_MAX_REVIEW_LAG_DAYS) changes the event's outcome after the next nightly run, and the
nightly run rebuilds exactly the event days whose inputs changed: no fixed window, nothing for an
unchanged landing folder, nothing for an intervention whose event never arrives."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import dagster as dg
import pytest

from assets.jobs import RANGE_END, RANGE_START
from assets.resources import FlywheelResource
from conftest import query, write_jsonl

# what Definitions gives the sensors: the resource resolved from the environment the fixtures set
SENSOR_RESOURCES = {"flywheel": FlywheelResource()}

D = date(2026, 10, 1)  # an event day well in the past: `flywheel run` refuses today and later
LATE = D + timedelta(days=26)  # inside FLYWHEEL_MAX_REVIEW_LAG_DAYS = 28


def event(i: int, day: date = D, **kw) -> dict:
    base = {"event_id": f"e{i}", "occurred_at": f"{day.isoformat()}T{10 + i % 10:02d}:00:00Z",
            "scenario": "refund_request", "model": "m1", "prompt_version": "v1", "autonomy_level": "assist",
            "status": "ok", "confidence": 0.9, "output_text": f"draft {i}", "latency_ms": 100.0}
    base.update(kw)
    return base


def intervention(i: int, event_id: str, at: date, action: str = "accepted") -> dict:
    return {"intervention_id": f"i{i}", "event_id": event_id, "occurred_at": f"{at.isoformat()}T21:00:00Z",
            "action": action, "reviewer_id": "r1", "review_seconds": 12.0}


@pytest.fixture
def late_settings(settings, tmp_path, monkeypatch):
    """The `settings` fixture with the feed published inside the test's folder."""
    monkeypatch.setenv("FLYWHEEL_PUBLISH", str(tmp_path / "publish"))
    return settings


def outcome_of(settings, event_id: str) -> str:
    rows = query(settings, "SELECT outcome FROM outcomes.event_outcomes WHERE event_id = ?", [event_id])
    assert len(rows) == 1, rows
    return rows[0][0]


def _requests(result) -> list[dg.RunRequest]:
    if result is None or isinstance(result, dg.SkipReason):
        return []
    if isinstance(result, dg.RunRequest):
        return [result]
    if isinstance(result, dg.SensorResult):
        return list(result.run_requests or [])
    return list(result)


def dagster_night(settings, instance: dg.DagsterInstance, today: date, cursors: dict, run_keys: set) -> list[tuple[str, str, str]]:
    """The night of `today` as the Dagster daemon runs it: the schedule's run, then the runs every
    sensor asks for, until none asks for more (a run key is launched once, as Dagster does).
    Returns the (first, last) day and the job of every run launched."""
    from assets.definitions import defs

    resources = {"flywheel": FlywheelResource(landing=str(settings.landing), store=str(settings.store), db=str(settings.db))}
    launched: list[tuple[str, str]] = []

    def launch(request: dg.RunRequest) -> None:
        if request.run_key in run_keys:
            return
        run_keys.add(request.run_key)
        job = defs.resolve_job_def(request.job_name or "nightly")
        result = job.execute_in_process(tags=request.tags, instance=instance, resources=resources, raise_on_error=False)
        assert result.success
        launched.append((request.tags[RANGE_START], request.tags[RANGE_END], job.name))

    (schedule,) = defs.schedules
    tick = datetime(today.year, today.month, today.day, 2, 30, tzinfo=timezone.utc)
    for request in _requests(schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=tick))):
        launch(request)
    for _ in range(5):
        before = len(launched)
        for sensor in defs.sensors:
            result = sensor(dg.build_sensor_context(instance=instance, cursor=cursors.get(sensor.name), resources=resources))
            if isinstance(result, dg.SensorResult) and result.cursor is not None:
                cursors[sensor.name] = result.cursor
            for request in _requests(result):
                launch(request)
        if len(launched) == before:
            break
    return launched


def test_a_rejection_26_days_late_counts_after_the_dagster_nightly_run(late_settings):
    s = late_settings
    write_jsonl(s.landing / "events" / "day.jsonl", [event(1), event(2), event(3)])
    write_jsonl(s.landing / "interventions" / "day.jsonl", [intervention(1, "e1", D), intervention(2, "e2", D)])
    cursors: dict = {}
    run_keys: set = set()
    with dg.DagsterInstance.ephemeral() as instance:
        dagster_night(s, instance, D + timedelta(days=1), cursors, run_keys)
        assert outcome_of(s, "e3") == "awaiting_review"
        # 26 days later the review of e3 arrives in a new file, with that day's own events
        write_jsonl(s.landing / "events" / "late.jsonl", [event(4, LATE)])
        write_jsonl(s.landing / "interventions" / "late.jsonl", [intervention(3, "e3", LATE, "rejected")])
        launched = dagster_night(s, instance, LATE + timedelta(days=1), cursors, run_keys)
    assert outcome_of(s, "e3") == "rejected"
    assert outcome_of(s, "e1") == "accepted"
    assert outcome_of(s, "e4") == "awaiting_review"
    # yesterday first (its sync found the late review), then D rebuilt, then the newest day's window
    # figures and decisions again, so they see it: its 28-day calibration window holds D's 3 reviews
    # (the landing sensor, on in this test, asks for the new file's day too)
    assert launched[0] == (str(LATE), str(LATE), "nightly")
    assert launched[-2:] == [(str(D), str(D), "nightly"), (str(LATE), str(LATE), "refresh_windows")]
    assert query(s, "SELECT reviewed_with_confidence FROM outcomes.calibration WHERE window_end = ? AND model = '*'",
                 [LATE]) == [(3,)]
    import json

    assert json.loads((s.landing.parent / "publish" / "feed" / "latest.json").read_text())["data_day"] == str(LATE)


def _mtimes(settings, days: list[date]) -> dict:
    from flywheel.store import Layout

    layout = Layout(settings.store)
    return {(t, d): layout.table(t, d).stat().st_mtime_ns
            for t in ("events", "interventions", "outcomes/event_outcomes") for d in days}


def test_flywheel_run_rebuilds_exactly_the_days_whose_inputs_changed(late_settings):
    from assets.runner import run_days
    from flywheel.ingest import changed_days
    from flywheel.store import Layout

    s = late_settings
    days = [D, D + timedelta(days=1), D + timedelta(days=2)]
    write_jsonl(s.landing / "events" / "first.jsonl", [event(i, days[i % 3]) for i in range(1, 7)])  # e3, e6 on D
    write_jsonl(s.landing / "interventions" / "first.jsonl", [intervention(1, "e1", days[1])])
    ran = run_days(s, None, None, quiet=True, progress=False)
    assert ran.days == days  # a new store: every day with data
    assert outcome_of(s, "e1") == "accepted" and outcome_of(s, "e3") == "awaiting_review"
    assert changed_days.pending(Layout(s.store)).days == {}
    before = _mtimes(s, days)

    # 26 days after e3's day (D), its rejection arrives with that day's events
    write_jsonl(s.landing / "events" / "late.jsonl", [event(7, LATE)])
    write_jsonl(s.landing / "interventions" / "late.jsonl", [intervention(2, "e3", LATE, "rejected")])
    ran = run_days(s, None, None, quiet=True, progress=False)
    assert ran.days == [D, LATE]
    assert outcome_of(s, "e3") == "rejected" and outcome_of(s, "e6") == "awaiting_review"
    after = _mtimes(s, days)
    untouched = {k: v for k, v in after.items() if k[1] != D}
    assert untouched == {k: v for k, v in before.items() if k[1] != D}  # D+1 and D+2 were not rewritten
    assert all(after[k] != before[k] for k in before if k[1] == D)

    # nothing new: nothing to run, nothing rewritten
    again = _mtimes(s, days + [LATE])
    assert run_days(s, None, None, quiet=True, progress=False) is None
    assert _mtimes(s, days + [LATE]) == again
    assert changed_days.pending(Layout(s.store)).days == {}


def test_an_intervention_whose_event_never_arrives_marks_no_day(late_settings):
    from assets.runner import run_days
    from flywheel.ingest import changed_days
    from flywheel.store import Layout

    s = late_settings
    write_jsonl(s.landing / "events" / "a.jsonl", [event(1)])
    assert run_days(s, None, None, quiet=True, progress=False).days == [D]
    write_jsonl(s.landing / "interventions" / "orphan.jsonl", [intervention(1, "e-never", D + timedelta(days=3))])
    assert run_days(s, None, None, quiet=True, progress=False) is None
    assert changed_days.pending(Layout(s.store)).days == {}
    assert query(s, "SELECT intervention_id FROM ingest.pending_interventions") == [("i1",)]
    assert run_days(s, None, None, quiet=True, progress=False) is None
    # when its event does arrive, the event's day is the one rebuilt and the review counts
    write_jsonl(s.landing / "events" / "b.jsonl", [event(9, D + timedelta(days=2), event_id="e-never")])
    assert run_days(s, None, None, quiet=True, progress=False).days == [D + timedelta(days=2)]
    assert outcome_of(s, "e-never") == "accepted"
    assert query(s, "SELECT count(*) FROM ingest.pending_interventions") == [(0,)]


# --- the record of days to rebuild, without Dagster ---

def test_the_sync_marks_the_event_days_of_late_interventions_only(settings):
    from conftest import run_pipeline
    from flywheel.ingest import changed_days
    from flywheel.ingest.sync import sync_landing
    from flywheel.store import Layout

    layout = Layout(settings.store)
    d0, d1 = D, D + timedelta(days=3)
    write_jsonl(settings.landing / "events" / "a.jsonl", [event(1, d0), event(2, d1), event(3, d1)])
    report = run_pipeline(settings)
    assert report.rebuild_days == {d0, d1}  # new events files mark their days
    version = changed_days.pending(layout).version
    assert changed_days.clear(layout, [d0, d1], version) == [d0, d1]

    at = d1 + timedelta(days=20)
    write_jsonl(settings.landing / "interventions" / "late.jsonl", [
        intervention(1, "e1", at), intervention(2, "e3", at), intervention(3, "e-unknown", at),
        intervention(4, "e1", d0 + timedelta(days=29), "rejected"),  # beyond the 28-day lag: joins no day
    ])
    report = sync_landing(settings)
    assert report.rebuild_days == {d0, d1}
    record = changed_days.pending(layout)
    assert record.days == {d0: version + 1, d1: version + 1}
    # a sync that reads nothing new marks nothing; the record is kept until a run clears it
    assert sync_landing(settings).rebuild_days == set()
    assert changed_days.pending(layout) == record

    # the run that built d1 saw version+1; a change marked after it keeps d0 to rebuild
    write_jsonl(settings.landing / "events" / "b.jsonl", [event(4, d0)])
    assert sync_landing(settings).rebuild_days == {d0}
    assert changed_days.clear(layout, [d0, d1], version + 1) == [d1]
    assert changed_days.pending(layout).days == {d0: version + 2}


def test_a_changed_interventions_file_marks_the_days_its_old_records_were_stored_in(settings):
    from conftest import run_pipeline
    from flywheel.ingest import changed_days
    from flywheel.ingest.sync import sync_landing
    from flywheel.store import Layout

    layout = Layout(settings.store)
    d0, d1 = D, D + timedelta(days=1)
    write_jsonl(settings.landing / "events" / "a.jsonl", [event(1, d0), event(2, d1)])
    write_jsonl(settings.landing / "interventions" / "a.jsonl", [intervention(1, "e1", d1)])
    run_pipeline(settings)
    changed_days.clear(layout, [d0, d1], changed_days.pending(layout).version)
    # the producer rewrites the file: its review now concerns e2 (day d1) instead of e1 (day d0)
    write_jsonl(settings.landing / "interventions" / "a.jsonl", [intervention(1, "e2", d1, "rejected")])
    assert sync_landing(settings).rebuild_days == {d0, d1}


def test_the_event_days_an_intervention_can_join_invert_the_window():
    from flywheel.ingest.partition import event_days_of_intervention, intervention_window

    lag = 5
    for offset in range(-10, 10):
        t = D + timedelta(days=offset)
        joins = {d for d in (D + timedelta(days=k) for k in range(-20, 20)) if t in intervention_window(d, lag)}
        assert joins == set(event_days_of_intervention(t, lag))
    assert event_days_of_intervention(D, 28)[0] == D - timedelta(days=28)
    assert event_days_of_intervention(D, 28)[-1] == D + timedelta(days=1)


def test_contiguous_ranges():
    from flywheel.ingest.changed_days import contiguous

    days = [D + timedelta(days=k) for k in (5, 0, 1, 2, 9, 6, 2)]
    assert contiguous(days) == [(D, D + timedelta(days=2)), (D + timedelta(days=5), D + timedelta(days=6)),
                                (D + timedelta(days=9), D + timedelta(days=9))]
    assert contiguous([]) == []


# --- the late-data sensor ---

def test_late_data_sensor_asks_once_per_change_and_clears_after_success(late_settings):
    from assets.jobs import REBUILD_VERSION, range_tags
    from assets.sensors import late_data_sensor
    from flywheel.ingest import changed_days
    from flywheel.store import Layout

    layout = Layout(late_settings.store)
    days = [D, D + timedelta(days=1), D + timedelta(days=5)]
    changed_days.mark(layout, days[:2])
    changed_days.mark(layout, [days[2]])
    with dg.DagsterInstance.ephemeral() as instance:
        result = late_data_sensor(dg.build_sensor_context(instance=instance, resources=SENSOR_RESOURCES))
        asked = [(r.tags[RANGE_START], r.tags[RANGE_END], r.run_key) for r in result.run_requests]
        assert asked == [(str(days[0]), str(days[1]), f"rebuild-{days[0]}-{days[1]}-v1-a0"),
                         (str(days[2]), str(days[2]), f"rebuild-{days[2]}-{days[2]}-v2-a0")]
        # a run under way over D..D+1 covers those days: only D+5 is asked for
        from dagster._core.test_utils import create_run_for_test

        create_run_for_test(instance, job_name="nightly", status=dg.DagsterRunStatus.STARTED,
                            tags=range_tags(days[0], days[1]))
        result = late_data_sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor, resources=SENSOR_RESOURCES))
        assert [r.tags[RANGE_START] for r in result.run_requests] == [str(days[2])]
        # a successful run over D..D+5 whose sync saw version 2 clears all three
        create_run_for_test(instance, job_name="nightly", status=dg.DagsterRunStatus.SUCCESS,
                            tags={**range_tags(days[0], days[2]), REBUILD_VERSION: "2"})
        result = late_data_sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor, resources=SENSOR_RESOURCES))
        assert result.run_requests in (None, [])
        assert changed_days.pending(layout).days == {}


def test_a_failed_rebuild_is_asked_for_again_up_to_three_times(late_settings):
    from dagster._core.test_utils import create_run_for_test

    from assets.sensors import late_data_sensor
    from flywheel.ingest import changed_days
    from flywheel.store import Layout

    changed_days.mark(Layout(late_settings.store), [D])
    with dg.DagsterInstance.ephemeral() as instance:
        keys = []
        for _ in range(4):
            result = late_data_sensor(dg.build_sensor_context(instance=instance, resources=SENSOR_RESOURCES))
            requests = list(result.run_requests or [])
            keys.append([r.run_key for r in requests])
            for r in requests:  # the run fails (a blocking check, say)
                create_run_for_test(instance, job_name="nightly", status=dg.DagsterRunStatus.FAILURE, tags=r.tags)
    assert keys == [[f"rebuild-{D}-{D}-v1-a0"], [f"rebuild-{D}-{D}-v1-a1"], [f"rebuild-{D}-{D}-v1-a2"], []]
