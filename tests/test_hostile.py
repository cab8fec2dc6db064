"""Hostile strings in scenario, model, tool and file names cannot change a query, write outside
the data and publish folders, or break the report's HTML or the feed's JSON."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import date, timedelta

from conftest import query, run_outcomes, run_pipeline, write_jsonl
from flywheel.catalog import build_catalog
from flywheel.failures import build_failures
from flywheel.report import publish_report
from flywheel.signals.decide import decide_day
from flywheel.signals.feed import publish_feed

HOSTILE = [
    "x'; DROP TABLE events; --",
    "ops jane.doe@example.com",
    '"><script>alert(1)</script>',
    "../../etc/passwd",
    "tab\there\nnewline\x07bell",
    "{table:events}",
    "ünïcødé ✓ 🚀",
]


def test_hostile_names_are_data_not_code(settings, tmp_path):
    s = replace(settings, publish=tmp_path / "publish")
    start = date(2026, 3, 1)
    before = set(os.listdir(tmp_path))
    for d in range(3):
        day = start + timedelta(days=d)
        events, interventions = [], []
        for i, name in enumerate(HOSTILE * 5):
            eid = f"{day}-{i}"
            events.append({"event_id": eid, "occurred_at": f"{day}T10:{i:02d}:00Z", "scenario": name, "model": name,
                           "prompt_version": name, "autonomy_level": "assist", "status": "ok", "confidence": 0.9,
                           "output_text": "draft", "tool_calls": [{"name": name, "status": "ok"}]})
            verdict = {"action": "accepted"} if i % 2 else {"action": "rejected", "reason_code": name,
                                                              "comment": f"wrong: {name}"}
            interventions.append({"intervention_id": f"i{eid}", "event_id": eid, "occurred_at": f"{day}T12:00:00Z",
                                  "reviewer_id": name, **verdict})
        write_jsonl(s.landing / "events" / f"{day} '; DROP TABLE x; --.jsonl", events)
        write_jsonl(s.landing / "interventions" / f"{day}\x07$(rm -rf).jsonl", interventions)
    report = run_pipeline(s)
    days = sorted(report.event_days)
    run_outcomes(s, days)
    for day in days:
        build_failures(s, day, run_id="run/../../escape")
        decide_day(s, day, "run/../../escape")
    build_catalog(s)
    feed_path = publish_feed(s, "run/../../escape")
    report_path = publish_report(s, "run/../../escape")

    # stored exactly as sent, every one of them
    assert sorted(r[0] for r in query(s, "SELECT DISTINCT scenario FROM ingest.events")) == sorted(HOSTILE)
    assert query(s, "SELECT count(*) FROM ingest.events WHERE scenario = ?", [HOSTILE[0]])[0][0] == 15
    assert sorted(r[0] for r in query(s, "SELECT DISTINCT scenario FROM outcomes.daily_rates")) == sorted(HOSTILE)
    assert query(s, "SELECT count(*) FROM ingest.quarantine")[0][0] == 0
    files = {r[0] for r in query(s, "SELECT path FROM ingest.landing_files")}
    assert any("DROP TABLE" in f for f in files)
    # nothing written outside the store, the database and the publish folder
    assert set(os.listdir(tmp_path)) - before <= {"publish", "store", "flywheel.duckdb"}
    landing_files = sorted(p.name for p in s.landing.rglob("*") if p.is_file())
    assert len(landing_files) == 6  # only what the test delivered
    assert feed_path.parent == s.publish / "feed" and report_path.parent == s.publish / "report"
    assert ".." not in feed_path.name
    # the feed is valid JSON carrying the names; the report escapes them
    feed = json.loads(feed_path.read_text())
    assert set(feed["scenarios"]) == set(HOSTILE)
    html = report_path.read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "jane.doe@example.com" not in html and "ops [EMAIL]" in html  # the report redacts
    # failure clusters of the rejected half: every failing event assigned, under its hostile scenario
    assert query(s, "SELECT count(*) FROM failures.assignments")[0][0] == 3 * 18  # i = 0, 2, ..., 34 each day
    assert sorted(r[0] for r in query(s, "SELECT DISTINCT scenario FROM failures.cluster_daily")) == sorted(HOSTILE)
    assert "id='failures'" in html and "<td>x&#x27;; DROP TABLE events; --</td>" in html
    labels = " ".join(r[0] for r in query(s, "SELECT label || ' ' || exemplars::VARCHAR FROM failures.clusters"))
    assert "jane.doe" not in labels  # redacted before clustering
