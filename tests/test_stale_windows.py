"""Stale windows: a day's window tables (rolling rates, calibration, reliability bins, drift, gate
evaluations, decisions) read the days before it. Day partitions run as separate runs in reverse
order (day 4, 3, 2, 1) each compute their windows without the earlier days; the store's record
(`flywheel.ingest.changed_days`) holds them stale, the feed says so and withholds promotions, and
the consuming path (`run_days`' own refresh, or one `late_data_sensor` tick) refreshes them, after
which every analyst table equals the one-range run's. No refresh_windows by hand.

The data: one scenario, 40 events a day, 97 % accepted as-is, and a policy whose promotion needs 3
consecutive days of passing gates (tests/test_decisions.py's): the one-range run recommends
promoting it on day 4 (days 1..3 keep), and no run that saw day 4 without days 1..3 does."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from assets.resources import FlywheelResource
from conftest import write_jsonl
from flywheel.config import Settings
from flywheel.ingest import changed_days
from flywheel.store import Layout
from test_faults import _tables

START = date(2026, 3, 1)
DAYS = [START + timedelta(days=i) for i in range(4)]
POLICY = """
version: "test-stale-1"
windows: {current_days: 3, baseline_days: 3}
promotion: {min_reviewed: 30, accept_target: 0.80, severe_max: 0.10, consecutive_days: 3, gate_min_coverage: 0.2}
demotion: {accept_floor: 0.60, severe_limit: 0.20, min_reviewed: 10, automatic: true}
drift: {min_sample: 20}
versions: {min_reviewed: 20}
tools: {min_calls: 20}
"""


def _landing(landing: Path) -> None:
    for day in DAYS:
        events, reviews = [], []
        for i in range(40):
            eid = f"good-{day}-{i}"
            ok = i < 39  # one rejection a day
            events.append({"event_id": eid, "occurred_at": f"{day}T{8 + i % 12:02d}:{i % 60:02d}:00Z", "scenario": "good",
                           "model": "m1", "prompt_version": "v1", "autonomy_level": "assist", "status": "ok",
                           "confidence": 0.95 if ok else 0.4, "output_text": "draft", "input_text": "question " * (5 + i % 3)})
            reviews.append({"intervention_id": f"i-{eid}", "event_id": eid, "occurred_at": f"{day}T21:00:00Z",
                            "action": "accepted" if ok else "rejected", "review_seconds": 30})
        # a scenario whose last event of each day fails, recovered by its first of the next day:
        # a day's recovery figures read the next day (outcomes/recovery)
        events += [{"event_id": f"flaky-{day}-{k}", "occurred_at": f"{day}T{at}Z", "scenario": "flaky", "model": "m1",
                    "prompt_version": "v1", "autonomy_level": "assist", "status": status, "confidence": 0.5,
                    "output_text": "draft", "input_text": "question"}
                   for k, (at, status) in enumerate((("00:10:00", "ok"), ("23:50:00", "error")))]
        write_jsonl(landing / "events" / f"{day}.jsonl", events)
        write_jsonl(landing / "interventions" / f"{day}.jsonl", reviews)


def _settings(base: Path, policy: Path, monkeypatch: pytest.MonkeyPatch, landing: bool = True) -> Settings:
    """A landing folder with the four days (unless `landing` is False: `base` holds it), a store and
    database of its own at `base` (the analyst database beside its store, as `_tables` reads it),
    and the environment the runs read."""
    s = Settings(landing=base / "landing", store=base / "store", db=base / "flywheel.duckdb", policy=policy,
                 publish=base / "publish")
    if landing:
        for kind in ("events", "interventions"):
            (s.landing / kind).mkdir(parents=True)
        _landing(s.landing)
    for key, value in (("LANDING", s.landing), ("STORE", s.store), ("DB", s.db), ("PUBLISH", s.publish),
                       ("POLICY", policy)):
        monkeypatch.setenv(f"FLYWHEEL_{key}", str(value))
    return s


def _feed(s: Settings) -> dict:
    return json.loads((s.publish / "feed" / "latest.json").read_text())


def _promoting(feed: dict) -> list[str]:
    """The scenarios the feed recommends promoting."""
    return sorted(n for n, sc in feed["scenarios"].items() if sc["recommended_level"] != sc["approved_level"]
                  and sc["recommendation"]["action"] == "promote")


@pytest.fixture(scope="module")
def one_range(tmp_path_factory) -> tuple[dict[str, list], dict, Path]:
    """Every analyst table and the feed after the four days as one range (`flywheel run --from --to`),
    and the folder of that run (landing, store, database, feed, policy.yaml)."""
    from assets.runner import run_days

    base = tmp_path_factory.mktemp("one_range")
    (base / "policy.yaml").write_text(POLICY)
    with pytest.MonkeyPatch.context() as mp:
        s = _settings(base, base / "policy.yaml", mp)
        run_days(s, DAYS[0], DAYS[-1], quiet=True, progress=False)
        tables, feed = _tables(s.db), _feed(s)
    assert feed["data_day"] == str(DAYS[-1]) and feed["stale"] is None
    assert _promoting(feed) == ["good"]  # the promotion the reverse-order runs must not show before the refresh
    assert feed["scenarios"]["good"]["recommended_level"] == "gated"
    assert len(tables) >= 20
    return tables, feed, base


@pytest.fixture
def reverse_settings(tmp_path, monkeypatch) -> Settings:
    (tmp_path / "policy.yaml").write_text(POLICY)
    return _settings(tmp_path / "reverse", tmp_path / "policy.yaml", monkeypatch)


def test_single_day_runs_in_reverse_order_through_run_days_end_equal_to_the_one_range_run(one_range, reverse_settings):
    from assets.runner import run_days

    want_tables, want_feed, _ = one_range
    s = reverse_settings
    layout = Layout(s.store)
    run_days(s, DAYS[3], DAYS[3], quiet=True, progress=False)
    # day 4 alone: its windows lack days 1..3, which are staged (due) but not in the store
    stale = changed_days.pending(layout).stale
    assert sorted(stale) == [DAYS[3]] and stale[DAYS[3]].reason == "missing" and stale[DAYS[3]].since == DAYS[0]
    feed = _feed(s)
    assert feed["data_day"] == str(DAYS[3])
    assert feed["stale"]["since"] == str(DAYS[0]) and feed["stale"]["reason"] == "missing"
    assert _promoting(feed) == []
    for day in (DAYS[2], DAYS[1]):
        run_days(s, day, day, quiet=True, progress=False)
        # this day and every later one stay stale while day 1 is missing; the feed says so
        assert sorted(changed_days.pending(layout).stale) == [d for d in DAYS if d >= day]
        assert _feed(s)["stale"]["since"] == str(DAYS[0]) and _promoting(_feed(s)) == []
    run_days(s, DAYS[0], DAYS[0], quiet=True, progress=False)  # its own refresh of days 2..4 follows the run
    assert changed_days.pending(layout).stale == {}
    got = _tables(s.db)
    differ = sorted(name for name in want_tables if got.get(name) != want_tables[name])
    assert got.keys() == want_tables.keys() and differ == [], differ
    feed = _feed(s)
    assert feed["stale"] is None and feed["data_day"] == str(DAYS[3])
    assert feed["scenarios"] == want_feed["scenarios"]  # the promotion, now from every day


def test_a_backfill_in_runs_of_one_day_ends_equal_to_the_one_range_run(one_range, reverse_settings):
    """Forward, one day per run (`run_days`' weekly runs at their smallest): every window sees its
    earlier days, and each run rebuilds the recovery of the day before it, whose last failure run
    ends on the run's day (it was open when that day was built alone)."""
    from assets.runner import run_days

    want_tables, want_feed, _ = one_range
    s = reverse_settings
    run_days(s, DAYS[0], DAYS[-1], quiet=True, progress=False, chunk_days=1)
    assert changed_days.pending(Layout(s.store)).stale == {}
    got = _tables(s.db)
    differ = sorted(name for name in want_tables if got.get(name) != want_tables[name])
    assert got.keys() == want_tables.keys() and differ == [], differ
    recovered = [r for r in got["outcomes.recovery"] if "flaky" in r]
    assert len(recovered) == 4 and _feed(s)["scenarios"] == want_feed["scenarios"]


def test_single_day_runs_in_reverse_order_are_refreshed_by_one_late_data_sensor_tick(one_range, reverse_settings):
    from assets.definitions import defs
    from assets.jobs import RANGE_END, RANGE_START, range_tags
    from assets.sensors import late_data_sensor

    want_tables, want_feed, _ = one_range
    s = reverse_settings
    resources = {"flywheel": FlywheelResource(landing=str(s.landing), store=str(s.store), db=str(s.db))}
    nightly = defs.resolve_job_def("nightly")
    with dg.DagsterInstance.ephemeral() as instance:
        for day in reversed(DAYS):  # as separate runs of a backfill or workers would, the later day first
            assert nightly.execute_in_process(tags=range_tags(day, day), instance=instance, resources=resources).success
        # day 1 was written after days 2..4 had their windows: all three stale, for a change
        stale = changed_days.pending(Layout(s.store)).stale
        assert sorted(stale) == DAYS[1:] and {e.reason for e in stale.values()} == {"changed"}
        assert {e.since for e in stale.values()} == {DAYS[0]}
        feed = _feed(s)
        assert feed["data_day"] == str(DAYS[3]) and feed["stale"]["reason"] == "changed"
        assert feed["stale"]["since"] == str(DAYS[0]) and _promoting(feed) == []
        got = _tables(s.db)
        assert got["signals.decisions"] != want_tables["signals.decisions"]  # day 4 decided without days 1..3

        # while a run still writes (here a refresh started elsewhere) the sensor waits for it
        busy = instance.create_run_for_job(job_def=defs.resolve_job_def("refresh_windows"), tags=range_tags(DAYS[1], DAYS[3]),
                                           status=dg.DagsterRunStatus.STARTED)
        waiting = late_data_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert not (isinstance(waiting, dg.SensorResult) and waiting.run_requests)
        instance.report_run_failed(busy)

        result = late_data_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert isinstance(result, dg.SensorResult)
        requests = list(result.run_requests or [])
        assert [(r.job_name, r.tags[RANGE_START], r.tags[RANGE_END]) for r in requests] == [
            ("refresh_windows", str(DAYS[1]), str(DAYS[3]))]
        refresh = defs.resolve_job_def("refresh_windows")
        assert refresh.execute_in_process(tags=requests[0].tags, instance=instance, resources=resources).success
        # nothing left: the next tick asks for nothing
        again = late_data_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=result.cursor))
        assert not (isinstance(again, dg.SensorResult) and again.run_requests)
    assert changed_days.pending(Layout(s.store)).stale == {}
    got = _tables(s.db)
    differ = sorted(name for name in want_tables if got.get(name) != want_tables[name])
    assert differ == [], differ
    feed = _feed(s)
    assert feed["stale"] is None and feed["scenarios"] == want_feed["scenarios"]


def test_a_stale_day_withholds_its_promotion_in_the_feed_and_from_approval(one_range, tmp_path, monkeypatch):
    """The promotion of the one-range run's day 4, with day 4's windows marked stale by a rewrite
    of day 2: the feed flags it and withholds it; approving it is refused; a fresh build of day 4's
    windows clears the flag and the promotion is back."""
    from flywheel.signals.feed import build_feed, pending, record_verdict

    shutil.copytree(one_range[2], tmp_path / "one")
    s = _settings(tmp_path / "one", tmp_path / "one" / "policy.yaml", monkeypatch, landing=False)
    layout = Layout(s.store)
    assert build_feed(s, "r")["scenarios"] == one_range[1]["scenarios"]
    marked = changed_days.own_written(layout, [DAYS[1]], "another-run")
    assert marked == DAYS[1:]
    feed = build_feed(s, "r")
    assert feed["stale"]["since"] == str(DAYS[1]) and feed["stale"]["reason"] == "changed"
    good = feed["scenarios"]["good"]
    assert good["recommendation"]["action"] == "promote" and good["recommendation"]["withheld"] == "stale_windows"
    assert good["recommended_level"] == good["approved_level"] == "assist"
    (decision_id,) = pending(s)["decision_id"].to_list()
    with pytest.raises(ValueError, match="stale windows"):
        record_verdict(s, decision_id, "approved", "ana", "looks good")
    # a build that read every day as it is now (snapshot after the rewrite) clears days 2..4 in order
    since = changed_days.windows_read(layout)
    for day in DAYS[1:]:
        assert changed_days.windows_built(layout, day, "refresh-run", since, DAYS, 35) is None
    feed = build_feed(s, "r")
    assert feed["stale"] is None and feed["scenarios"]["good"]["recommended_level"] == "gated"
    record_verdict(s, decision_id, "approved", "ana", "looks good")


def test_a_write_recorded_after_a_build_started_makes_it_stale_whichever_is_recorded_first(tmp_path):
    """The two orders of a build of day 3 (snapshot S, then its record) and another run's write of
    day 2: recorded between S and the build's record, the build finds it; recorded after, the write
    finds the build. A build by the writing run itself is not stale; a later fresh build clears."""
    layout = Layout(tmp_path / "store")
    d2, d3 = DAYS[1], DAYS[2]
    since = changed_days.windows_read(layout)
    changed_days.own_written(layout, [d2], "writer")
    entry = changed_days.windows_built(layout, d3, "builder", since, [], 35)
    assert entry == changed_days.Stale(d2, "changed", {"builder": 2})

    layout = Layout(tmp_path / "store2")
    since = changed_days.windows_read(layout)
    assert changed_days.windows_built(layout, d3, "builder", since, [], 35) is None
    assert changed_days.own_written(layout, [d2], "writer") == [d3]
    assert changed_days.pending(layout).stale[d3].reason == "changed"
    # the same run writing day 2 then building day 3 (a range run): fresh, and it clears the mark
    since = changed_days.windows_read(layout)
    changed_days.own_written(layout, [d2], "range")
    assert changed_days.windows_built(layout, d3, "range", since, [], 35) is None
    assert changed_days.pending(layout).stale == {}
    # the rebuild record of days to run is kept alongside, untouched
    assert changed_days.mark(layout, [d2]) == changed_days.pending(layout).version
    assert changed_days.pending(layout).days == {d2: changed_days.pending(layout).version}


def test_stale_windows_never_loosen_a_gate_an_audit_share_or_a_tool_the_product_reads_now():
    """Hand-made: the published feed gates at 0.9 with a 10 % audit and `refund` needing approval;
    stale windows recommend a 0.8 gate, 5 % audit, `refund` allowed and `lookup` disabled. The feed
    keeps 0.9, 10 % and approval for `refund`, lists them as held, and disables `lookup` at once;
    a scenario the published feed lacks, or a stricter recommendation, goes out as computed."""
    from flywheel.signals.feed import _hold_loosening

    def scenario(gate, share, tools):
        return {"recommendation": {"action": "keep"}, "confidence_gate": gate, "audit_share": share, "tools": tools}

    published = {"a": scenario({"threshold": 0.9, "coverage": 0.4}, 0.10, {"refund": "require_approval", "lookup": "allow"}),
                 "b": scenario({"threshold": 0.7, "coverage": 0.6}, 0.02, {"refund": "allow"})}
    new = {"a": scenario({"threshold": 0.8, "coverage": 0.5}, 0.05, {"refund": "allow", "lookup": "disable"}),
           "b": scenario({"threshold": 0.75, "coverage": 0.5}, 0.05, {"refund": "disable"}),
           "c": scenario({"threshold": 0.5, "coverage": 0.9}, 0.01, {"refund": "allow"})}
    _hold_loosening(new, published)
    assert new["a"]["confidence_gate"] == {"threshold": 0.9, "coverage": 0.4}
    assert new["a"]["audit_share"] == 0.10
    assert new["a"]["tools"] == {"refund": "require_approval", "lookup": "disable"}
    assert new["a"]["recommendation"]["held"] == {"reason": "stale_windows", "confidence_gate": {"threshold": 0.9, "coverage": 0.4},
                                                  "audit_share": 0.10, "tools": {"refund": "require_approval"}}
    assert new["b"] == scenario({"threshold": 0.75, "coverage": 0.5}, 0.05, {"refund": "disable"})  # stricter: as computed
    assert new["c"]["confidence_gate"]["threshold"] == 0.5 and "held" not in new["c"]["recommendation"]
