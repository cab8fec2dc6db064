"""Outcome marts on generated sample data: the injected prompt regression shows in the affected
scenario's daily rates from its rollout day (and not before), and calibration finds what the
generator put in (confidence that predicts acceptance)."""

from __future__ import annotations

from datetime import date

import pytest

from conftest import query, run_outcomes, run_pipeline
from flywheel.config import Settings
from flywheel.generate import generate
from flywheel.stats import wilson_interval

START = date(2026, 3, 1)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Settings, dict]:
    root = tmp_path_factory.mktemp("sample")
    settings = Settings(landing=root / "landing", store=root / "store", db=root / "flywheel.duckdb")
    truth = generate(settings.landing, days=16, events_per_day=1500, seed=5, start=START, progress=False)
    report = run_pipeline(settings)
    run_outcomes(settings, sorted(report.event_days))
    return settings, truth


def test_the_regression_shows_from_its_rollout_day(sample):
    settings, truth = sample
    reg = truth["regression"]
    rollout = date.fromisoformat(reg["rollout_date"])
    scenario, version = reg["scenario"], reg["prompt_version"]
    first_seen = query(settings, "SELECT min(event_date) FROM outcomes.daily_rates WHERE scenario = ? AND prompt_version = ?",
                       [scenario, version])[0][0]
    assert first_seen == rollout
    base = query(settings, """
        SELECT sum(accepted), sum(reviewed) FROM outcomes.daily_rates
        WHERE scenario = ? AND event_date < ?""", [scenario, rollout])[0]
    baseline = base[0] / base[1]
    assert baseline == pytest.approx(reg["rates_before"]["accepted"], abs=0.08)
    after = query(settings, """
        SELECT event_date, sum(accepted), sum(reviewed) FROM outcomes.daily_rates
        WHERE scenario = ? AND prompt_version = ? GROUP BY 1 ORDER BY 1""", [scenario, version])
    assert len(after) == (date.fromordinal(START.toordinal() + truth["days"] - 1) - rollout).days + 1
    for day, k, n in after:
        _, hi = wilson_interval(k, n)
        assert hi < baseline, f"{day}: {k}/{n} is not clearly below the baseline {baseline:.2f}"
    before = query(settings, """
        SELECT event_date, sum(accepted), sum(reviewed) FROM outcomes.daily_rates
        WHERE scenario = ? AND event_date < ? GROUP BY 1""", [scenario, rollout])
    bounds = [wilson_interval(k, n) for _, k, n in before]
    inside = sum(float(lo) <= baseline <= float(hi) for lo, hi in bounds)
    assert inside >= 0.8 * len(before)  # before the rollout the daily rates agree with the baseline


def test_other_scenarios_do_not_move_at_the_rollout(sample):
    settings, truth = sample
    reg = truth["regression"]
    rollout = date.fromisoformat(reg["rollout_date"])
    rows = query(settings, """
        SELECT scenario,
               sum(accepted) FILTER (WHERE event_date < ?) / sum(reviewed) FILTER (WHERE event_date < ?) AS before,
               sum(accepted) FILTER (WHERE event_date >= ?) / sum(reviewed) FILTER (WHERE event_date >= ?) AS after
        FROM outcomes.daily_rates WHERE scenario <> ? AND NOT list_contains(?, scenario) GROUP BY 1""",
                 [rollout] * 4 + [reg["scenario"], truth["emerging_failure_mode"]["scenarios"]])
    assert len(rows) >= 6  # the scenarios hit by the emerging failure mode do move, later
    for scenario, before, after in rows:
        assert abs(after - before) < 0.1, scenario


def test_confidence_predicts_acceptance_in_the_sample(sample):
    settings, _ = sample
    last = date.fromordinal(START.toordinal() + 15)
    rows = query(settings, """SELECT scenario, roc_auc, ece, reviewed_with_confidence FROM outcomes.calibration
                              WHERE window_end = ? AND model = '*' AND reviewed_with_confidence >= 200""", [last])
    assert len(rows) >= 5
    for scenario, auc, ece, _n in rows:
        assert 0.6 < auc < 0.999, (scenario, auc)  # useful but imperfect
        assert 0 <= ece < 0.5
    bins = query(settings, """SELECT scenario, list(observed_rate ORDER BY bin) FROM outcomes.reliability_bins
                              WHERE window_end = ? AND model = '*' GROUP BY 1""", [last])
    rising = [s for s, rates in bins if len(rates) == 10 and rates[-1] > rates[0]]
    assert len(rising) >= 5


def test_counts_reconcile_with_truth_labels(sample):
    settings, truth = sample
    import polars as pl

    labels = pl.read_parquet(settings.landing / "truth_labels.parquet")
    got = dict(query(settings, "SELECT outcome, count(*) FROM outcomes.event_outcomes GROUP BY 1"))
    want = labels.group_by("final_outcome").len()
    want = dict(zip(want["final_outcome"].to_list(), want["len"].to_list()))
    assert sum(got.values()) == sum(want.values()) == truth["counts"]["events_valid"]
    for outcome in ("accepted", "edited", "rejected", "escalated", "reverted"):
        assert got.get(outcome, 0) == want.get(outcome, 0), outcome
    assert got["acted_alone"] + got["awaiting_review"] == want["unreviewed"]


def _segment_key(truth: dict, scenario: str, prompt_version: str, day: date) -> str:
    kind = truth["reviewed_outcome_probs_segments"][scenario]
    return {"all": "all", "prompt_version": prompt_version, "event_date": day.isoformat()}[kind]


def _truth_for(truth: dict, scenario: str, segment: str, day: date) -> dict | None:
    complete = truth["reviewed_outcome_probs_complete_through"]
    if day.isoformat() <= complete:
        return truth["reviewed_outcome_probs"][scenario][segment]
    return truth["reviewed_outcome_probs_censored"][day.isoformat()][scenario].get(segment)


_RATE = {"accepted": "accepted_as_is_rate", "edited": "edited_rate", "rejected": "rejected_rate",
         "escalated": "escalated_rate", "reverted": "reverted_rate"}


def test_true_rates_fall_inside_the_reported_intervals(sample):
    """Every daily row's 95% intervals, for all five outcome rates, against the generator's exact
    expected shares among reviewed events (per scenario and segment; models pooled at their traffic
    shares, so rows are pooled over models here): a correct 95% interval contains the truth about
    95% of the time, so at least 90% must; and pooled over the days of each segment, a 99.9%
    interval must contain it for every scenario and rate."""
    settings, truth = sample
    rows = query(settings, """
        SELECT scenario, prompt_version, event_date, sum(reviewed), sum(accepted), sum(edited), sum(rejected),
               sum(escalated), sum(reverted)
        FROM outcomes.daily_rates GROUP BY ALL""")
    inside = total = 0
    pooled: dict[tuple, list] = {}
    for scenario, version, day, reviewed, *counts in rows:
        if reviewed < 30:
            continue
        segment = _segment_key(truth, scenario, version, day)
        expected = _truth_for(truth, scenario, segment, day)
        if expected is None:
            continue
        for outcome, k in zip(("accepted", "edited", "rejected", "escalated", "reverted"), counts):
            lo, hi = wilson_interval(k, reviewed)
            inside += float(lo) - 1e-12 <= expected[outcome] <= float(hi) + 1e-12
            total += 1
        if day.isoformat() <= truth["reviewed_outcome_probs_complete_through"]:
            acc = pooled.setdefault((scenario, segment), [0, 0, 0, 0, 0, 0])
            for i, v in enumerate([reviewed, *counts]):
                acc[i] += v
    assert total >= 200
    assert inside / total >= 0.90, f"only {inside}/{total} daily intervals contain the true rate"
    z999 = 3.2905267314919255
    for (scenario, segment), (reviewed, *counts) in pooled.items():
        expected = truth["reviewed_outcome_probs"][scenario][segment]
        for outcome, k in zip(("accepted", "edited", "rejected", "escalated", "reverted"), counts):
            if min(reviewed * expected[outcome], reviewed * (1 - expected[outcome])) < 5:
                continue  # too rare to test: one event more or less decides it
            lo, hi = wilson_interval(k, reviewed, z=z999)
            assert float(lo) - 1e-12 <= expected[outcome] <= float(hi) + 1e-12, (scenario, segment, outcome, k, reviewed, expected[outcome])
