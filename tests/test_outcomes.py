"""Outcome resolution, the marts, recovery and calibration against values computed by hand."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pyarrow as pa
import pytest

from conftest import run_pipeline, write_jsonl
from flywheel.outcomes.calibration import build_calibration
from flywheel.outcomes.rates import build_daily_rates, build_rolling_rates
from flywheel.outcomes.recovery import build_recovery, failure_runs
from flywheel.outcomes.resolve import build_event_outcomes, edit_distances, resolve_batches
from flywheel.stats import wilson_interval
from flywheel.store import Layout
from flywheel.tables import EVENT_OUTCOMES

DAY = date(2026, 3, 1)


def ev(eid: str, at: str = "2026-03-01T10:00:00Z", **kw) -> dict:
    base = {"event_id": eid, "occurred_at": at, "scenario": "refund_request", "model": "m1", "prompt_version": "v1",
            "autonomy_level": "assist", "status": "ok", "output_text": "the cat sat", "confidence": 0.5}
    base.update(kw)
    return base


def iv(iid: str, eid: str, action: str, at: str = "2026-03-01T12:00:00Z", **kw) -> dict:
    base = {"intervention_id": iid, "event_id": eid, "occurred_at": at, "action": action, "review_seconds": 10}
    base.update(kw)
    return base


def outcomes(settings, events: list, interventions: list, days=(DAY,)) -> pl.DataFrame:
    write_jsonl(settings.landing / "events" / "e.jsonl", events)
    write_jsonl(settings.landing / "interventions" / "i.jsonl", interventions)
    run_pipeline(settings, list(days))
    for d in days:
        build_event_outcomes(settings, d)
    return stored_outcomes(settings, days)


def stored_outcomes(settings, days=(DAY,)) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(Layout(settings.store).table(EVENT_OUTCOMES.path, d)) for d in days])


def by_id(frame: pl.DataFrame, column: str) -> dict:
    return dict(zip(frame["event_id"].to_list(), frame[column].to_list()))


def test_latest_wins_ties_go_to_the_more_severe_action(settings):
    frame = outcomes(settings, [ev("a"), ev("b"), ev("c")], [
        iv("1", "a", "escalated", "2026-03-01T11:00:00Z"), iv("2", "a", "accepted", "2026-03-01T12:00:00Z"),
        iv("3", "b", "accepted", "2026-03-01T12:00:00Z"), iv("4", "b", "rejected", "2026-03-01T12:00:00Z"),
        iv("5", "c", "accepted"), iv("6", "c", "accepted"),  # same time, same action: larger id wins
    ])
    assert by_id(frame, "outcome") == {"a": "accepted", "b": "rejected", "c": "accepted"}
    assert by_id(frame, "final_intervention_id") == {"a": "2", "b": "4", "c": "6"}
    assert by_id(frame, "n_interventions") == {"a": 2, "b": 2, "c": 2}
    assert by_id(frame, "review_seconds_total") == {"a": 20.0, "b": 20.0, "c": 20.0}


def test_accepted_with_different_text_counts_as_edited(settings):
    frame = outcomes(settings, [ev("a"), ev("b"), ev("c")], [
        iv("1", "a", "accepted", final_text="the cat sat"),   # same text: as-is
        iv("2", "b", "accepted", final_text="the dog sat"),   # changed: edited
        iv("3", "c", "edited", final_text="a cat sat down"),
    ])
    assert by_id(frame, "outcome") == {"a": "accepted", "b": "edited", "c": "edited"}
    assert by_id(frame, "accepted_with_changes") == {"a": False, "b": True, "c": False}
    dist = by_id(frame, "edit_distance_chars")
    assert dist["a"] is None and dist["b"] == pytest.approx(3 / 11)  # "cat" -> "dog": 3 of 11 characters
    assert by_id(frame, "edit_distance_words")["b"] == pytest.approx(1 / 3)
    assert by_id(frame, "edit_class") == {"a": None, "b": "light", "c": "heavy"}


def test_resolving_in_small_batches_stores_the_same_rows(settings):
    """A large day is resolved a batch at a time: batch edges must not change any row."""
    texts = ["the cat sat", "the dog sat", "a cat sat down", "the cat  sat", "completely different words"]
    events = [ev(f"e{i}", f"2026-03-01T10:{i:02d}:00Z", autonomy_level="shadow" if i % 3 == 0 else "assist") for i in range(11)]
    frame = outcomes(settings, events, [iv(str(i), f"e{i}", ("accepted", "edited", "rejected")[i % 3],
                                           final_text=texts[i % len(texts)]) for i in range(10)])
    schema, batches = resolve_batches(settings, DAY, rows=2)
    parts = list(batches)
    assert len(parts) == 6 and all(b.num_rows <= 2 for b in parts) and all(b.schema == schema for b in parts)
    small = pl.from_arrow(pa.Table.from_batches(parts))
    assert small.equals(frame)
    assert frame.height == 11 and frame["edit_distance_chars"].drop_nulls().len() >= 4
    assert frame["event_id"].to_list() == [f"e{i}" for i in range(11)]


def test_a_late_intervention_changes_the_outcome_when_the_day_is_rebuilt(settings):
    frame = outcomes(settings, [ev("a")], [])
    assert by_id(frame, "outcome") == {"a": "awaiting_review"}
    write_jsonl(settings.landing / "interventions" / "late.jsonl", [iv("9", "a", "rejected", "2026-03-04T09:00:00Z")])
    run_pipeline(settings, [DAY])
    assert build_event_outcomes(settings, DAY) == {"rejected": 1}
    assert by_id(stored_outcomes(settings), "outcome") == {"a": "rejected"}


def test_unreviewed_events_split_into_awaiting_review_and_acted_alone(settings):
    frame = outcomes(settings, [
        ev("assist"),
        ev("shadow", autonomy_level="shadow"),
        ev("auto", autonomy_level="autonomous"),
        ev("gate_above", autonomy_level="gated", confidence=0.9, decision_path={"gate": 0.8}),
        ev("gate_below", autonomy_level="gated", confidence=0.7, decision_path={"gate": 0.8}),
        ev("routed", autonomy_level="gated", confidence=0.9, decision_path={"route": "human_review", "gate": 0.8}),
        ev("plain", autonomy_level="gated", confidence=0.1, decision_path="auto (audit sample)"),
    ], [])
    assert by_id(frame, "outcome") == {
        "assist": "awaiting_review", "shadow": "awaiting_review", "auto": "acted_alone", "gate_above": "acted_alone",
        "gate_below": "awaiting_review", "routed": "awaiting_review", "plain": "acted_alone"}


def test_shadow_distance_is_zero_when_the_human_shipped_the_same(settings):
    frame = outcomes(settings, [ev("s1", autonomy_level="shadow"), ev("s2", autonomy_level="shadow")],
                     [iv("1", "s1", "accepted"), iv("2", "s2", "edited", final_text="the cat sat!")])
    assert by_id(frame, "edit_distance_chars") == {"s1": 0.0, "s2": pytest.approx(1 / 12)}


def test_edit_distances_handle_missing_text():
    chars, words = edit_distances(["abcd", None], ["abce", "x"])
    assert chars[0] == pytest.approx(0.25) and words[0] == pytest.approx(1.0)
    assert chars[1] != chars[1]  # NaN


def test_daily_rates_with_wilson_intervals(settings):
    events = [ev(f"e{i}", latency_ms=100 * (i + 1), input_tokens=10, output_tokens=5) for i in range(6)]
    events += [ev("err", status="error"), ev("to", status="timeout"), ev("v2", prompt_version="v2")]
    outcomes(settings, events, [
        iv("1", "e0", "accepted"), iv("2", "e1", "accepted"), iv("3", "e2", "accepted"),
        iv("4", "e3", "edited", final_text="the cat sat down", review_seconds=30),
        iv("5", "e4", "rejected"),
    ])
    frame = build_daily_rates(settings, DAY)
    assert frame.height == 2
    v1 = frame.filter(pl.col("prompt_version") == "v1").row(0, named=True)
    assert (v1["events"], v1["reviewed"], v1["accepted"], v1["edited"], v1["rejected"], v1["awaiting_review"]) == (8, 5, 3, 1, 1, 3)
    assert (v1["errors"], v1["timeouts"], v1["severe_failures"]) == (1, 1, 2)
    assert v1["accepted_as_is_rate"] == pytest.approx(0.6)
    lo, hi = wilson_interval(3, 5)
    assert (v1["accepted_as_is_rate_lo"], v1["accepted_as_is_rate_hi"]) == (pytest.approx(float(lo)), pytest.approx(float(hi)))
    assert v1["intervention_rate"] == pytest.approx(5 / 8) and v1["error_rate"] == pytest.approx(1 / 8)
    assert v1["review_seconds_p50"] == 10.0 and v1["review_seconds_p90"] == pytest.approx(22.0)  # 10,10,10,30,10
    assert v1["latency_ms_p50"] == pytest.approx(350.0)  # 100..600
    assert v1["input_tokens_sum"] == 60
    assert v1["edit_magnitude_mean"] == pytest.approx(5 / 16)  # "the cat sat" -> "the cat sat down"
    v2 = frame.filter(pl.col("prompt_version") == "v2").row(0, named=True)
    assert v2["reviewed"] == 0 and v2["accepted_as_is_rate"] is None and v2["accepted_as_is_rate_lo"] is None


def test_rolling_windows_sum_the_daily_counts(settings):
    day2 = DAY + timedelta(days=1)
    outcomes(settings, [ev("a"), ev("b", at="2026-03-02T10:00:00Z"), ev("c", at="2026-03-02T11:00:00Z")],
             [iv("1", "a", "accepted"), iv("2", "b", "rejected", "2026-03-02T12:00:00Z"),
              iv("3", "c", "accepted", "2026-03-02T12:00:00Z")], days=(DAY, day2))
    for d in (DAY, day2):
        build_daily_rates(settings, d)
    rolling = build_rolling_rates(settings, day2)
    assert rolling["window_days"].to_list() == [7, 28]
    row = rolling.row(0, named=True)
    assert (row["events"], row["reviewed"], row["accepted"], row["days_with_data"]) == (3, 3, 2, 2)
    assert row["accepted_as_is_rate"] == pytest.approx(2 / 3)
    assert row["window_start"] == day2 - timedelta(days=6)


def test_recovery_time_of_failure_runs(settings):
    day2 = DAY + timedelta(days=1)
    outcomes(settings, [
        ev("ok1", "2026-03-01T10:00:00Z"), ev("err1", "2026-03-01T10:05:00Z", status="error"),
        ev("to1", "2026-03-01T10:06:00Z", status="timeout"), ev("ok2", "2026-03-01T10:10:00Z"),
        ev("rev", "2026-03-01T12:00:00Z", autonomy_level="autonomous"), ev("ok3", "2026-03-01T12:01:00Z"),
        ev("err2", "2026-03-01T23:59:00Z", status="error"), ev("ok4", "2026-03-02T00:01:00Z"),
    ], [iv("1", "rev", "reverted", "2026-03-01T12:30:00Z")], days=(DAY, day2))
    row = build_recovery(settings, DAY).row(0, named=True)
    assert (row["failure_runs"], row["recovered_runs"], row["open_runs"]) == (3, 3, 0)
    assert row["recovery_seconds_max"] == 300.0  # 10:05 -> 10:10
    assert row["recovery_seconds_mean"] == pytest.approx((300 + 60 + 120) / 3)


def test_recovery_takes_equal_timestamps_in_event_id_order(settings):
    """Ties are common at a million events a day: in event_id order, `a` (ok), `b` (error), `c` (ok)
    make one run recovered at once; `y` (ok) then `z` (timeout) a run still open."""
    outcomes(settings, [
        ev("a", "2026-03-01T10:00:00Z", scenario="s1"), ev("b", "2026-03-01T10:00:00Z", scenario="s1", status="error"),
        ev("c", "2026-03-01T10:00:00Z", scenario="s1"),
        ev("z", "2026-03-01T11:00:00Z", scenario="s2", status="timeout"), ev("y", "2026-03-01T11:00:00Z", scenario="s2"),
    ], [])
    rows = {r["scenario"]: r for r in build_recovery(settings, DAY).iter_rows(named=True)}
    assert (rows["s1"]["failure_runs"], rows["s1"]["recovered_runs"], rows["s1"]["recovery_seconds_max"]) == (1, 1, 0.0)
    assert (rows["s2"]["failure_runs"], rows["s2"]["open_runs"], rows["s2"]["recovery_seconds_mean"]) == (1, 1, None)
    stored = pl.read_parquet(Layout(settings.store).table(EVENT_OUTCOMES.path, DAY))
    assert failure_runs(stored.reverse(), DAY).equals(failure_runs(stored, DAY))  # out of order: sorted first


def test_calibration_and_gate(settings):
    events, interventions = [], []
    for i in range(100):
        conf = 0.9 if i < 80 else 0.5
        accepted = i < 80 or i % 2 == 0
        events.append(ev(f"e{i}", confidence=conf))
        interventions.append(iv(f"i{i}", f"e{i}", "accepted" if accepted else "rejected"))
    events += [ev("u1", confidence=0.95), ev("u2", confidence=0.1)]  # unreviewed: volume only
    outcomes(settings, events, interventions)
    calibration, bins = build_calibration(settings, DAY)
    row = calibration.filter(pl.col("model") == "m1").row(0, named=True)
    assert row["reviewed_with_confidence"] == 100 and row["events"] == 102
    assert row["gate_status"] == "threshold" and row["gate_threshold"] == 0.9 and row["gate_sample_size"] == 80
    assert row["gate_coverage"] == pytest.approx(81 / 102)
    assert row["brier"] == pytest.approx((80 * 0.01 + 10 * 0.25 + 10 * 0.25) / 100)
    # AUC: positives 80 at 0.9 and 10 at 0.5; negatives 10 at 0.5: (80*10 + 10*10/2) / (90*10)
    assert row["roc_auc"] == pytest.approx(850 / 900)
    assert bins.filter(pl.col("model") == "m1").height == 10
    assert calibration.filter(pl.col("model") == "*").height == 1


def test_word_distances_use_the_words_of_str_split():
    import random

    from rapidfuzz.distance import Levenshtein

    rng = random.Random(7)
    alphabet = ["a", "b", "é", "\u200b", " ", "  ", "\t", "\n", "\x1c", "\xa0", "\u3000", "\x85", "x y"]
    texts = ["", " ", "a", "a b", " a  b ", "the cat sat", "the  cat\tsat\n"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12))) for _ in range(300)]
    output = [rng.choice(texts) for _ in range(400)]
    shipped = [rng.choice(texts) for _ in range(400)]
    _, words = edit_distances(output, shipped)
    assert words.tolist() == [Levenshtein.normalized_distance(a.split(), b.split()) for a, b in zip(output, shipped)]


def test_a_day_built_after_its_neighbour_rebuilds_the_neighbours_recovery(settings):
    """A day's recovery reads the day after (where its last run ends) and the day before (whether a
    run was going at midnight): built one day at a time in either order, as a backfill in weekly
    runs or day partitions run at once are, every day ends as if built together."""
    day2 = DAY + timedelta(days=1)
    write_jsonl(settings.landing / "events" / "e.jsonl", [
        ev("ok1", "2026-03-01T10:00:00Z"), ev("err1", "2026-03-01T23:50:00Z", status="error"),
        ev("err2", "2026-03-02T00:01:00Z", status="error"), ev("ok2", "2026-03-02T00:05:00Z"),
        ev("err3", "2026-03-02T09:00:00Z", status="timeout"), ev("ok3", "2026-03-02T09:01:00Z")])
    write_jsonl(settings.landing / "interventions" / "i.jsonl", [])
    run_pipeline(settings, [DAY, day2])
    layout = Layout(settings.store)

    def stored(day: date) -> tuple:
        row = pl.read_parquet(layout.table("outcomes/recovery", day)).row(0, named=True)
        return row["failure_runs"], row["recovered_runs"], row["open_runs"], row["recovery_seconds_max"]

    from flywheel.outcomes.recovery import build_recovery_days

    for first, second in ((DAY, day2), (day2, DAY)):
        for d in (DAY, day2):
            layout.table(EVENT_OUTCOMES.path, d).unlink(missing_ok=True)
            layout.table("outcomes/recovery", d).unlink(missing_ok=True)
        build_event_outcomes(settings, first)
        build_recovery_days(settings, [first])
        alone = stored(first)
        # day 1 alone: its 23:50 run has no end yet; day 2 alone: a run starts at 00:01
        assert alone == ((1, 0, 1, None) if first == DAY else (2, 2, 0, 240.0)), first
        build_event_outcomes(settings, second)
        build_recovery_days(settings, [second])
        # together: day 1's run ends at 00:05 (15 min), and day 2 only has the 09:00 run
        assert stored(DAY) == (1, 1, 0, 900.0) and stored(day2) == (1, 1, 0, 60.0), (first, stored(DAY), stored(day2))
