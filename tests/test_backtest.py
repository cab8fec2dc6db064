"""`flywheel backtest` and `flywheel decisions explain` on a small hand-made store whose figures
are worked out by hand: a stricter policy in force never promotes; the candidate promotes once
the gates held 3 days, and its gate then lets through events humans had rejected. The real
ledger, decision tables and feed are never touched; a decision recomputes from its archived
inputs and from the store, and a late review that changes its inputs shows as a difference."""

from __future__ import annotations

import json
from datetime import date, timedelta

import polars as pl
import pytest

from assets.cli import main as cli
from conftest import run_outcomes, run_pipeline, write_jsonl
from flywheel.signals.decide import decide_day, policy_archive
from flywheel.signals.explain import explain
from flywheel.signals.policy import load_policy

START = date(2026, 3, 1)
DAYS = 6

BASE = """
windows: {current_days: 3, baseline_days: 3}
promotion: {min_reviewed: 30, accept_target: TARGET, severe_max: 0.20, consecutive_days: 3, gate_min_coverage: 0.2}
demotion: {accept_floor: 0.60, severe_limit: 0.30, min_reviewed: 10, automatic: true}
drift: {min_sample: 20}
gate: {target: 0.90, delta: 0.05}
versions: {min_reviewed: 20}
tools: {min_calls: 20}
"""


def _day(day: date) -> tuple[list, list]:
    """40 events: 36 accepted at confidence 0.95, 1 rejected at 0.95, 3 rejected at 0.4."""
    events, interventions = [], []
    for i in range(40):
        eid = f"e-{day}-{i}"
        confident = i < 37
        events.append({"event_id": eid, "occurred_at": f"{day}T09:{i:02d}:00Z", "scenario": "copy", "model": "m1",
                       "prompt_version": "v1", "autonomy_level": "assist", "status": "ok",
                       "confidence": 0.95 if confident else 0.4, "output_text": "draft", "input_text": "write it",
                       "tool_calls": [{"name": "lookup", "status": "ok"}]})
        interventions.append({"intervention_id": f"i-{eid}", "event_id": eid, "occurred_at": f"{day}T20:00:00Z",
                              "action": "accepted" if i < 36 else "rejected", "review_seconds": 30})
    return events, interventions


@pytest.fixture
def nightly(settings, monkeypatch):
    """The store after 6 nights under the policy in force (accept target 0.99: never promotes)."""
    from dataclasses import replace

    s = replace(settings, policy=settings.landing.parent / "policy.yaml", publish=settings.landing.parent / "publish")
    s.policy.write_text('version: "in-force"\n' + BASE.replace("TARGET", "0.99"))
    monkeypatch.setenv("FLYWHEEL_POLICY", str(s.policy))
    monkeypatch.setenv("FLYWHEEL_PUBLISH", str(s.publish))
    days = [START + timedelta(days=i) for i in range(DAYS)]
    for day in days:
        e, i = _day(day)
        write_jsonl(s.landing / "events" / f"{day}.jsonl", e)
        write_jsonl(s.landing / "interventions" / f"{day}.jsonl", i)
    run_pipeline(s)
    run_outcomes(s, days)
    policy = load_policy(s.policy)
    frames = {d: decide_day(s, d, f"night-{d}", policy) for d in days}
    return s, days, frames


def _snapshot(s) -> dict:
    files = sorted(p for p in s.store.rglob("*") if p.is_file() and "_tmp" not in p.parts)
    return {str(p.relative_to(s.store)): p.read_bytes() for p in files}


def test_backtest_shows_what_a_laxer_target_would_have_done(nightly, capsys):
    s, days, _ = nightly
    candidate = s.landing.parent / "candidate.yaml"
    candidate.write_text('version: "candidate"\n' + BASE.replace("TARGET", "0.80"))
    before = _snapshot(s)
    out = s.landing.parent / "bt"
    assert cli(["backtest", "--policy", str(candidate), "--out", str(out), "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert _snapshot(s) == before  # the real ledger, decisions and log are untouched
    assert not (s.publish / "feed").exists()
    assert report["days"] == DAYS and report["policies"]["candidate"]["version"] == "candidate"

    strict, lax = report["scenarios"]["in_force"]["copy"], report["scenarios"]["candidate"]["copy"]
    assert strict["promotions"] == [] and strict["final_level"] == "assist" and strict["failures_unreviewed"] == 0
    # 108 of 120 reviewed accepted on each of days 1-3 windows from day 3 (Wilson lower bound 0.834 >= 0.80),
    # but day 1's window has 40 reviewed: the gates hold on days 2, 3 and 4 -> promoted on day 4
    assert lax["promotions"] == [{"day": days[3].isoformat(), "from": "assist", "to": "gated"}]
    assert lax["final_level"] == "gated" and lax["days_at"] == {"assist": 3, "gated": 2}
    # gated on days 5 and 6 with the gate at 0.95: 37 events a day act alone, 1 a day was rejected in reality
    assert lax["gate_thresholds"][0] == pytest.approx(0.95)
    assert lax["acting_alone"] == 74 and lax["failures_unreviewed"] == 2
    assert lax["review_hours_off"] == pytest.approx(round(74 * 30 / 3600, 2))
    assert report["totals"]["candidate"]["promotions"] == 1 and report["totals"]["in_force"]["promotions"] == 0
    diff = {(d["day"], d["kind"], d["action"], d["action_candidate"]) for d in report["differences"]}
    assert (days[3].isoformat(), "autonomy", "keep", "promote") in diff
    # the candidate's own ledger holds its approval and fail-safe demotions, in its own folder
    ledger = [json.loads(x) for x in (out / "candidate" / "decisions" / "approvals.jsonl").read_text().splitlines()]
    assert [(e["verdict"], e["by"], e["level"]) for e in ledger] == [("approved", "backtest", "gated")]
    # the text report says the same
    assert cli(["backtest", "--policy", str(candidate), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "promotions approved" in text and "failures out unreviewed" in text and "<- differs" in text


def test_backtest_refuses_a_folder_that_is_not_a_replay(nightly, capsys):
    s, _, _ = nightly
    (s.landing.parent / "mine").mkdir()
    (s.landing.parent / "mine" / "notes.txt").write_text("an analyst's own work")
    assert cli(["backtest", "--policy", str(s.policy), "--out", str(s.landing.parent / "mine"), "--no-progress"]) == 2
    assert "not a replay store" in capsys.readouterr().err


def test_a_decision_reproduces_from_its_archived_inputs_and_the_store(nightly, capsys):
    s, days, frames = nightly
    decision = frames[days[-1]].filter(pl.col("kind") == "autonomy").row(0, named=True)
    assert policy_archive(s, decision["policy_digest"]).exists()
    s.policy.write_text('version: "edited-since"\n' + BASE.replace("TARGET", "0.5"))  # the file moved on; the archive did not
    before = _snapshot(s)
    assert cli(["decisions", "explain", decision["decision_id"]]) == 0
    assert _snapshot(s) == before  # explaining writes nothing into the store
    text = capsys.readouterr().out
    assert "recomputed from its archived inputs: REPRODUCES" in text
    assert "recomputed from the stored data now: REPRODUCES" in text and "in-force" in text
    tool = frames[days[-1]].filter(pl.col("kind") == "tool").row(0, named=True)
    doc = explain(s, tool["decision_id"])
    assert doc["from_store"]["reproduces"] and "from_archived_inputs" not in doc


def test_a_late_review_shows_as_a_changed_input(nightly, capsys):
    s, days, frames = nightly
    decision = frames[days[-1]].filter(pl.col("kind") == "autonomy").row(0, named=True)
    # a reviewer reverses an acceptance of the last day: a later intervention on that event
    write_jsonl(s.landing / "interventions" / "late.jsonl",
                [{"intervention_id": "late-1", "event_id": f"e-{days[-1]}-0", "occurred_at": f"{days[-1] + timedelta(days=2)}T08:00:00Z",
                  "action": "rejected", "review_seconds": 10}])
    run_pipeline(s, [days[-1]])
    run_outcomes(s, [days[-1]])
    doc = explain(s, decision["decision_id"])
    assert doc["from_archived_inputs"]["reproduces"]
    assert not doc["from_store"]["reproduces"]
    assert doc["from_store"]["differences"]["accepted"] == (108, 107)
    assert cli(["decisions", "explain", decision["decision_id"]]) == 1
    assert "DIFFERS" in capsys.readouterr().out


def test_explain_names_a_missing_decision(nightly, capsys):
    assert cli(["decisions", "explain", "nope"]) == 2
    assert "no decision 'nope'" in capsys.readouterr().err
