"""`assets.runner.run_days`, the one runner `flywheel run`, the tests and the examples share: a run
of some asset groups only (`groups=`, what the MQM example uses before its own failure model)
builds those groups' tables and leaves the days to rebuild for the full run that follows."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from conftest import write_jsonl
from flywheel.ingest import changed_days
from flywheel.store import Layout
from flywheel.tables import DECISIONS, EVENT_OUTCOMES, EVENTS

START = date(2026, 3, 1)
DAYS = [START, START + timedelta(days=1)]


def _write_days(settings) -> None:
    for day in DAYS:
        events = [{"event_id": f"e-{day}-{i}", "occurred_at": f"{day}T10:{i:02d}:00Z", "scenario": "s", "model": "m",
                   "prompt_version": "v1", "autonomy_level": "assist", "status": "ok", "confidence": 0.9,
                   "output_text": "draft", "input_text": "hello there"} for i in range(20)]
        reviews = [{"intervention_id": f"i-{e['event_id']}", "event_id": e["event_id"],
                    "occurred_at": f"{day}T20:00:00Z", "action": "accepted" if i % 4 else "rejected"}
                   for i, e in enumerate(events)]
        write_jsonl(settings.landing / "events" / f"{day}.jsonl", events)
        write_jsonl(settings.landing / "interventions" / f"{day}.jsonl", reviews)


def test_a_run_of_some_groups_builds_them_and_leaves_the_days_to_rebuild(settings, monkeypatch):
    from assets.runner import run_days

    s = replace(settings, publish=settings.landing.parent / "publish")
    monkeypatch.setenv("FLYWHEEL_PUBLISH", str(s.publish))
    _write_days(s)
    layout = Layout(s.store)

    ran = run_days(s, None, None, quiet=True, progress=False, groups=("ingest", "outcomes"))
    assert ran is not None and ran.days == DAYS
    for day in DAYS:
        assert layout.table(EVENTS.path, day).exists() and layout.table(EVENT_OUTCOMES.path, day).exists()
        assert not layout.table(DECISIONS.path, day).exists()  # the signals group did not run
    assert sorted(changed_days.pending(layout).days) == DAYS  # still to rebuild: only part of them ran

    ran = run_days(s, None, None, quiet=True, progress=False)  # the full night, as `flywheel run`
    assert ran is not None and ran.days == DAYS
    assert all(layout.table(DECISIONS.path, day).exists() for day in DAYS)
    assert changed_days.pending(layout).days == {}
    assert run_days(s, None, None, quiet=True, progress=False) is None  # nothing left to rebuild
