"""What the AI product is told, under the operations that broke it: a backfill of an old day never
rewinds the feed; the feed names only real versions with enough evidence; one demotion per episode;
timeouts and fallbacks count against the gates; review hours saved count only what a gate adds; a
stale promotion cannot be approved and never outranks a later demotion; `flywheel summary` shows the
level in force. Each test failed on the code before its fix."""

from __future__ import annotations

import json
from datetime import date, timedelta

import polars as pl
import pytest

from conftest import run_outcomes, run_pipeline, write_jsonl
from flywheel.signals.decide import decide_day
from flywheel.signals.feed import _version_choice, build_feed, publish_feed, record_verdict
from flywheel.signals.ledger import append_ledger, effective_levels, read_ledger
from flywheel.signals.policy import load_policy
from flywheel.signals.recommend import gate_and_audit

START = date(2026, 3, 1)

POLICY = """
version: "trust-1"
windows: {current_days: 3, baseline_days: 3}
promotion: {min_reviewed: 30, accept_target: 0.80, severe_max: 0.10, consecutive_days: 3, gate_min_coverage: 0.2}
demotion: {accept_floor: 0.60, severe_limit: 0.20, min_reviewed: 10, automatic: true}
drift: {min_sample: 20}
versions: {min_reviewed: 20}
tools: {min_calls: 20}
"""


def _records(day: date, scenario: str, n: int, accept_share: float, level: str = "assist",
             timeout_share: float = 0.0, reject_confidence: float = 0.4) -> tuple[list, list]:
    """n events of `scenario` on `day`: the first accept_share of them accepted as-is (confidence
    0.95), the rest rejected (confidence `reject_confidence`); the last timeout_share of them timed
    out (no output, nobody reviewed them)."""
    events, interventions = [], []
    n_timeout = round(n * timeout_share)
    for i in range(n):
        eid = f"{scenario}-{day}-{i}"
        timed_out = i >= n - n_timeout
        events.append({"event_id": eid, "occurred_at": f"{day}T{8 + i % 12:02d}:{i % 60:02d}:00Z", "scenario": scenario,
                       "model": "m1", "prompt_version": "v1", "autonomy_level": level,
                       "status": "timeout" if timed_out else "ok",
                       "confidence": 0.95 if i < n * accept_share else reject_confidence,
                       "output_text": None if timed_out else "draft", "input_text": "question " * (5 + i % 3)})
        if not timed_out:
            action = "accepted" if i < n * accept_share else "rejected"
            interventions.append({"intervention_id": f"i-{eid}", "event_id": eid, "occurred_at": f"{day}T21:00:00Z",
                                  "action": action, "review_seconds": 30})
    return events, interventions


def _store(settings, days: int, spec: dict, policy: str = POLICY) -> list[date]:
    settings.policy.write_text(policy)
    all_days = [START + timedelta(days=i) for i in range(days)]
    for day in all_days:
        events, interventions = [], []
        for scenario, kw in spec.items():
            e, i = _records(day, scenario, **(kw(day) if callable(kw) else kw))
            events += e
            interventions += i
        write_jsonl(settings.landing / "events" / f"{day}.jsonl", events)
        write_jsonl(settings.landing / "interventions" / f"{day}.jsonl", interventions)
    run_pipeline(settings)
    run_outcomes(settings, all_days)
    return all_days


@pytest.fixture
def s(settings, monkeypatch):
    from dataclasses import replace

    out = replace(settings, policy=settings.landing.parent / "policy.yaml", publish=settings.landing.parent / "publish")
    monkeypatch.setenv("FLYWHEEL_POLICY", str(out.policy))
    monkeypatch.setenv("FLYWHEEL_PUBLISH", str(out.publish))
    return out


def _autonomy(frame: pl.DataFrame, scenario: str) -> dict:
    return frame.filter((pl.col("kind") == "autonomy") & (pl.col("scenario") == scenario)).row(0, named=True)


def _decide_all(s, days: list[date]) -> list[pl.DataFrame]:
    policy = load_policy(s.policy)
    return [decide_day(s, d, f"run-{d}", policy) for d in days]


# 1. A backfill rewinds the live feed ---------------------------------------------------------

def test_rerunning_an_old_day_through_the_nightly_job_never_rewinds_the_feed(s):
    from assets.runner import run_days

    days = _store(s, 5, {"good": {"n": 40, "accept_share": 0.97}})
    run_days(s, days[0], days[-1], quiet=True, progress=False)
    latest = s.publish / "feed" / "latest.json"
    assert json.loads(latest.read_text())["data_day"] == days[-1].isoformat()
    run_days(s, days[1], days[1], quiet=True, progress=False)  # an operator re-runs an old day
    feed = json.loads(latest.read_text())
    assert feed["data_day"] == days[-1].isoformat()
    # the run's own file carries the newest day too, with the ledger as it is now
    runs = [json.loads(p.read_text()) for p in (s.publish / "feed").glob("*.json") if p.name != "latest.json"]
    assert len(runs) >= 2 and {r["data_day"] for r in runs} == {days[-1].isoformat()}


def test_latest_is_never_replaced_by_an_older_day(s):
    days = _store(s, 3, {"good": {"n": 40, "accept_share": 0.97}})
    _decide_all(s, days)
    publish_feed(s, "night-3")
    assert json.loads((s.publish / "feed" / "latest.json").read_text())["data_day"] == days[-1].isoformat()
    # a store whose newest decisions were lost (say, restored from an older backup) must not rewind latest
    (s.store / "signals" / "decisions" / f"event_date={days[-1]}" / "data.parquet").unlink()
    publish_feed(s, "after-restore")
    assert json.loads((s.publish / "feed" / "latest.json").read_text())["data_day"] == days[-1].isoformat()
    assert json.loads((s.publish / "feed" / "after-restore.json").read_text())["data_day"] == days[-2].isoformat()


# 2. The feed names prompt version `unversioned` ----------------------------------------------

def _version_rows(rows: list[tuple[str, str, str, int]]) -> pl.DataFrame:
    return pl.DataFrame([{"subject": v, "action": a, "evidence": json.dumps({"first_seen": f, "reviewed": n})}
                         for v, a, f, n in rows])


def test_the_feed_never_names_the_unversioned_bucket_or_a_version_without_evidence():
    # the bucket of records logged without a version appeared last: the newest, but not a version
    choice = _version_choice(_version_rows([("v1", "keep", "2026-03-01", 400), ("v2", "keep", "2026-03-02", 300),
                                            ("unversioned", "not_enough_data", "2026-03-05", 12)]))
    assert choice["run"] == "v2" and choice["basis"] == "newest_kept"
    # nothing has enough evidence: keep what runs (the real version with the most traffic)
    choice = _version_choice(_version_rows([("v1", "not_enough_data", "2026-03-01", 80),
                                            ("v2", "not_enough_data", "2026-03-04", 15),
                                            ("unversioned", "not_enough_data", "2026-03-05", 5)]))
    assert choice["run"] == "v1" and choice["basis"] == "most_traffic"
    choice = _version_choice(_version_rows([("unversioned", "keep", "2026-03-01", 500)]))
    assert choice["run"] is None and choice["basis"] == "none"


# 5. Demotions cascade --------------------------------------------------------------------------

def test_one_episode_gives_one_demotion(s):
    # gated and good for 3 days, then collapsed for 9: the alert and the low rates persist for the
    # whole baseline, well past the current window, but it is one episode
    spec = {"auto": lambda d: {"n": 60, "accept_share": 0.95 if d < START + timedelta(days=3) else 0.2, "level": "gated"}}
    days = _store(s, 12, spec)
    frames = _decide_all(s, days)
    actions = [_autonomy(f, "auto")["action"] for f in frames]
    assert actions.count("demote") == 1 and actions[3] == "demote", actions
    ledger = [(e["verdict"], e["previous_level"], e["level"]) for e in read_ledger(s)]
    assert ledger == [("automatic", "gated", "assist")]
    rules = [_autonomy(f, "auto")["rule"] for f in frames]
    # the drift alert holds while the baseline still has good days (up to day 9), then the episode ends
    assert all(r.startswith("demote_drift_alert_same_episode_since_" + days[3].isoformat()) for r in rules[4:8]), rules
    assert rules[-1].startswith("hold") and _autonomy(frames[-1], "auto")["current"] == "assist"
    assert build_feed(s, "r")["scenarios"]["auto"]["approved_level"] == "assist"


def test_a_demotion_to_gated_is_not_repeated_while_what_acts_alone_holds(s):
    # autonomous, collapses on day 4: demoted to gated. The drafts that fail have a low confidence:
    # above the gate (0.95) every draft is still accepted, so what acts alone at gated holds, and
    # the same episode does not demote it again (before: autonomous -> gated -> assist in two days)
    spec = {"auto": lambda d: {"n": 60, "accept_share": 0.95 if d < START + timedelta(days=3) else 0.2,
                               "level": "autonomous"}}
    days = _store(s, 8, spec)
    frames = _decide_all(s, days)
    assert [e["level"] for e in read_ledger(s)] == ["gated"]
    later = _autonomy(frames[4], "auto")
    assert later["action"] == "keep" and later["rule"] == f"demote_drift_alert_same_episode_since_{days[3]}"
    since = json.loads(later["evidence"])["episode"]["since_demotion"]
    assert since["acting_alone_at"] == "gated" and since["gate_threshold"] == pytest.approx(0.95)
    assert since["reviewed"] == 12 and since["accepted_hi"] == 1.0  # day 5: 12 drafts at 0.95, all accepted


def test_failures_above_the_gate_after_a_demotion_are_new_evidence(s):
    # the same collapse, but the failing drafts are confident too (0.95): with a gate target of 0.5
    # the gate stays at 0.95, and the drafts acting alone above it after the demotion fail (12 of 60
    # accepted on day 5: upper bound 0.32 < 0.60): new evidence, demoted once more
    spec = {"auto": lambda d: {"n": 60, "accept_share": 0.95 if d < START + timedelta(days=3) else 0.2,
                               "level": "autonomous", "reject_confidence": 0.95}}
    days = _store(s, 6, spec, POLICY + "gate: {target: 0.5, delta: 0.05}\n")
    frames = _decide_all(s, days)
    assert [e["level"] for e in read_ledger(s)] == ["gated", "assist"]
    second = _autonomy(frames[4], "auto")
    assert second["rule"] == "demote_accept_floor_new_evidence" and second["recommended"] == "assist"
    assert _autonomy(frames[5], "auto")["action"] == "keep"  # at assist nothing acts alone


# 8. Timeouts and fallbacks feed no decision ----------------------------------------------------

def test_timeouts_block_a_promotion(s):
    # every reviewed draft is accepted, but a fifth of the calls time out
    days = _store(s, 5, {"flaky": {"n": 50, "accept_share": 1.0, "timeout_share": 0.2}})
    frames = _decide_all(s, days)
    for f in frames:
        d = _autonomy(f, "flaky")
        assert d["action"] == "keep" and "operational_ok" in d["rule"], d["rule"]
    gates = pl.read_parquet(s.store / "signals" / "gate_evaluations" / f"event_date={days[-1]}" / "data.parquet").row(0, named=True)
    # 3 days x 10 timeouts of 150 events: 0.0667, Wilson upper bound 0.118 > 0.05
    assert gates["operational_failures"] == 30 and gates["operational_rate"] == pytest.approx(30 / 150)
    assert gates["operational_ok"] is False and gates["accept_ok"] is True


def test_timeouts_demote_where_the_ai_acts_alone(s):
    days = _store(s, 4, {"flaky": {"n": 50, "accept_share": 1.0, "timeout_share": 0.4, "level": "gated"}})
    frames = _decide_all(s, days)
    first = _autonomy(frames[0], "flaky")
    assert first["action"] == "demote" and first["rule"] == "demote_operational_limit"
    assert first["effect"] == "automatic" and first["recommended"] == "assist"


# 6. Review hours saved are overstated in gated scenarios -------------------------------------

def test_review_hours_saved_count_only_what_the_gate_adds():
    counts = pl.DataFrame([{"scenario": "g", "logged_level": "gated", "events": 7000, "reviewed": 3500,
                            "severe_failures": 70, "events_per_day": 1000.0, "acted_alone_per_day": 500.0,
                            "review_seconds_mean": 36.0}])
    gates = {"g": {"gate_threshold": 0.8, "gate_coverage": 0.6}}
    rows = gate_and_audit(load_policy(), counts, gates, {"g": "gated"})
    gate = next(r for r in rows if r["kind"] == "gate")
    # 600 events a day above the gate, 500 of which already act alone today: 100 x 36 s = 1 hour
    assert gate["evidence"]["review_hours_saved_per_day"] == pytest.approx(1.0)
    assert gate["evidence"]["review_hours_off_full_review_per_day"] == pytest.approx(6.0)


# 10. A stale promotion can still be approved, and outranks a later fail-safe demotion ---------

def test_a_promotion_is_approvable_only_while_it_is_the_newest_decision(s):
    days = _store(s, 5, {"good": {"n": 40, "accept_share": 0.97}})
    frames = _decide_all(s, days)
    assert [_autonomy(f, "good")["action"] for f in frames][3:] == ["promote", "promote"]
    stale = _autonomy(frames[3], "good")["decision_id"]
    with pytest.raises(ValueError, match="stale"):
        record_verdict(s, stale, "approved", "ana", "")
    assert read_ledger(s) == []
    record_verdict(s, _autonomy(frames[4], "good")["decision_id"], "approved", "ana", "")
    assert effective_levels(s)["good"]["level"] == "gated"


def test_a_stale_promotion_never_overrides_a_later_fail_safe_demotion(s):
    # gated and good: promotions to autonomous recommended on days 3 and 4; day 5 collapses
    spec = {"copy": lambda d: {"n": 60, "accept_share": 0.97 if d < START + timedelta(days=4) else 0.1, "level": "gated"}}
    days = _store(s, 5, spec)
    frames = _decide_all(s, days)
    assert _autonomy(frames[3], "copy")["action"] == "promote"
    assert _autonomy(frames[4], "copy")["action"] == "demote"
    with pytest.raises(ValueError, match="stale"):
        record_verdict(s, _autonomy(frames[3], "copy")["decision_id"], "approved", "ana", "")
    # even an approval that reached the ledger late (written before this check existed) ranks by its
    # decision's day: the later demotion stays in force
    promo = _autonomy(frames[3], "copy")
    append_ledger(s, {"decision_id": promo["decision_id"], "verdict": "approved", "by": "ana", "note": "",
                      "kind": "autonomy", "scenario": "copy", "level": "autonomous", "previous_level": "gated",
                      "day": days[3].isoformat()})
    assert effective_levels(s)["copy"]["level"] == "assist"
    assert build_feed(s, "r")["scenarios"]["copy"]["approved_level"] == "assist"


# 7. `flywheel summary` shows the logged autonomy level ----------------------------------------

def test_summary_shows_the_level_in_force(s, capsys):
    from assets.cli import main as cli
    from flywheel.catalog import build_catalog

    days = _store(s, 5, {"good": {"n": 40, "accept_share": 0.97}})
    frames = _decide_all(s, days)
    record_verdict(s, _autonomy(frames[-1], "good")["decision_id"], "approved", "ana", "")
    build_catalog(s)
    assert cli(["summary", "--json"]) == 0
    rows = {r["scenario"]: r for r in json.loads(capsys.readouterr().out)["scenarios"]}
    assert rows["good"]["level_in_force"] == "gated" and rows["good"]["levels"] == "assist"
    assert cli(["summary"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("good "))
    assert line.split()[1] == "gated"
