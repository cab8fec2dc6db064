"""Decisions on generated sample data whose truth is known, run night after night as the schedule
would: the injected regression produces an alert and a demotion or roll-back on the first night
the evidence is significant and never before its rollout; no scenario whose true accepted-as-is
rate is below the target is ever recommended for promotion; a stable good scenario is promoted no
faster than the policy allows; and on data with no injected change no recommendation flips
direction within 7 days."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from flywheel.config import Settings
from flywheel.signals.policy import load_policy

START = date(2026, 3, 1)


@pytest.fixture(scope="module")
def with_changes(sample_with_changes):
    return sample_with_changes


@pytest.fixture(scope="module")
def without_changes(sample_without_changes):
    return sample_without_changes


def _alerts(settings: Settings, day: date, scenario: str) -> pl.DataFrame:
    path = settings.store / "signals" / "drift" / f"event_date={day}" / "data.parquet"
    frame = pl.read_parquet(path)
    return frame.filter((pl.col("scenario") == scenario) & (pl.col("severity") == "alert"))


def test_the_regression_is_caught_on_the_first_significant_night_and_not_before(with_changes):
    settings, truth, decisions = with_changes
    reg = truth["regression"]
    rollout = date.fromisoformat(reg["rollout_date"])
    scenario, version = reg["scenario"], reg["prompt_version"]

    def acted(day: date) -> bool:
        f = decisions[day].filter(pl.col("scenario") == scenario)
        demoted = f.filter((pl.col("kind") == "autonomy") & (pl.col("action") == "demote")).height > 0
        rolled = f.filter((pl.col("kind") == "prompt_version") & (pl.col("subject") == version)
                          & (pl.col("action") == "roll_back")).height > 0
        return demoted or rolled

    for day in sorted(decisions):
        if day < rollout:
            assert _alerts(settings, day, scenario).height == 0, f"alert on {day}, before the rollout {rollout}"
            assert not acted(day), f"demotion or roll-back on {day}, before the rollout {rollout}"
    first_alert = min(d for d in decisions if _alerts(settings, d, scenario).height)
    first_action = min(d for d in decisions if acted(d))
    assert rollout <= first_action <= rollout + timedelta(days=2)
    assert rollout <= first_alert <= rollout + timedelta(days=3)


def _true_accept(truth: dict, scenario: str, day: date | None = None, window: int = 7) -> float:
    """The true accepted-as-is share among reviewed events: for date-segmented scenarios, the mean
    over the decision's current window; otherwise the lowest of the scenario's segments."""
    segments = truth["reviewed_outcome_probs"][scenario]
    kind = truth["reviewed_outcome_probs_segments"][scenario]
    if kind == "event_date" and day is not None:
        days = [(day - timedelta(days=i)).isoformat() for i in range(window)]
        values = [segments[d]["accepted"] for d in days if d in segments]
        return sum(values) / len(values)
    return min(s["accepted"] for s in segments.values())


def test_no_scenario_below_target_is_ever_recommended_for_promotion(with_changes, without_changes):
    policy = load_policy()
    target = policy.promotion.accept_target
    for _, truth, decisions in (with_changes, without_changes):
        weak_always = {s for s in truth["scenarios"] if _true_accept(truth, s) < target
                       and truth["reviewed_outcome_probs_segments"][s] != "event_date"}
        assert len(weak_always) >= 2
        for day, frame in decisions.items():
            promoted = frame.filter((pl.col("kind") == "autonomy") & (pl.col("action") == "promote"))
            for scenario in promoted["scenario"].to_list():
                assert _true_accept(truth, scenario, day, policy.windows.current_days) >= target, (scenario, day)


def test_a_stable_good_scenario_is_promoted_no_faster_than_the_policy_allows(without_changes):
    settings, truth, decisions = without_changes
    policy = load_policy()
    promotions = {}
    for day in sorted(decisions):
        frame = decisions[day].filter((pl.col("kind") == "autonomy") & (pl.col("action") == "promote"))
        for scenario in frame["scenario"].to_list():
            promotions.setdefault(scenario, day)
    assert promotions, "the stable good scenario was never recommended for promotion"
    for scenario, day in promotions.items():
        assert _true_accept(truth, scenario) >= policy.promotion.accept_target
        # every gate held on each of the consecutive days ending at the promotion, none earlier counts
        assert day >= START + timedelta(days=policy.promotion.consecutive_days - 1)
        for back in range(policy.promotion.consecutive_days):
            d = day - timedelta(days=back)
            gates = pl.read_parquet(settings.store / "signals" / "gate_evaluations" / f"event_date={d}" / "data.parquet")
            assert gates.filter((pl.col("scenario") == scenario) & pl.col("all_pass")).height == 1, (scenario, d)


def test_no_recommendation_flips_direction_within_7_days_without_changes(without_changes):
    _, _, decisions = without_changes
    direction = {"promote": 1, "demote": -1}
    history: dict[str, list[tuple[date, int]]] = {}
    for day in sorted(decisions):
        frame = decisions[day].filter(pl.col("kind") == "autonomy")
        for r in frame.iter_rows(named=True):
            if r["action"] in direction:
                history.setdefault(r["scenario"], []).append((day, direction[r["action"]]))
    for scenario, moves in history.items():
        for (d1, s1), (d2, s2) in zip(moves, moves[1:]):
            assert not (s1 != s2 and (d2 - d1).days <= 7), f"{scenario} flipped between {d1} and {d2}"
