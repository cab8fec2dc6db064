"""Calibration's confidence gate under a gate in force: the audited sample above it weighted by its
inclusion probability, the target and error level read from the policy; values computed by hand."""

from __future__ import annotations

import polars as pl
import pytest
import scipy.stats

from flywheel.config import Settings
from flywheel.outcomes.calibration import build_calibration, calibrate
from flywheel.signals.policy import Gate, Policy
from test_outcomes import DAY, ev, iv, outcomes


def _frame(with_strata: bool) -> pl.DataFrame:
    # a gate at 0.9 in force: 5,000 events at 0.95 could act alone, 200 of them audited (all accepted);
    # 300 at 0.85 went to humans (276 accepted); 100 events carry no confidence (volume only)
    rows = [(0.95, True, True, "audit", 200), (0.95, False, False, "audit", 4800),
            (0.85, True, True, "review", 276), (0.85, True, False, "review", 24), (None, False, False, "review", 100)]
    frame = pl.DataFrame(rows, schema={"confidence": pl.Float64, "reviewed": pl.Boolean, "accepted": pl.Boolean,
                                       "stratum": pl.String, "n": pl.Int64}, orient="row")
    return frame if with_strata else frame.drop("stratum")


def test_the_audit_sample_counts_for_the_events_it_stands_for():
    (row,), _ = calibrate(_frame(with_strata=True), 0.95, 10, 0.05)
    # unweighted, the reviewed events above 0.85 accept 476/500 = 0.952 (no exact test passes there);
    # weighted, the rate above 0.85 is (5000 * 200/200 + 300 * 276/300) / 5300
    assert row["accepted_as_is_rate"] == pytest.approx(476 / 500)
    assert row["gate_weighting"] == "inverse_probability" and row["gate_threshold"] == 0.85
    assert row["gate_accepted_rate"] == pytest.approx(5276 / 5300)
    bound = 5000 / 5300 * 0.025 ** (1 / 200) + 300 / 5300 * scipy.stats.beta.ppf(0.025, 276, 25)  # delta / 2 strata
    assert row["gate_lower_bound"] == pytest.approx(bound)
    assert row["gate_coverage"] == pytest.approx(5300 / 5400) and row["gate_delta"] == 0.05
    (plain,), _ = calibrate(_frame(with_strata=False), 0.95, 10, 0.05)
    assert plain["gate_weighting"] == "unweighted" and plain["gate_threshold"] == 0.95
    assert plain["gate_p_value"] == pytest.approx(0.95 ** 200) and plain["gate_coverage"] == pytest.approx(5000 / 5400)


def _gated_store(settings) -> None:
    events, interventions = [], []
    for i in range(1500):  # at or above the logged gate: 150 audited (accepted), the rest acted alone
        events.append(ev(f"a{i}", autonomy_level="gated", confidence=0.95, decision_path={"gate": 0.9}))
        if i < 150:
            interventions.append(iv(f"ia{i}", f"a{i}", "accepted"))
    for i in range(100):  # below it: every one reviewed, 90 accepted
        events.append(ev(f"b{i}", autonomy_level="gated", confidence=0.85, decision_path={"gate": 0.9}))
        interventions.append(iv(f"ib{i}", f"b{i}", "accepted" if i < 90 else "rejected"))
    outcomes(settings, events, interventions)


def test_build_calibration_weights_the_audit_stratum_and_reads_the_policy(settings):
    _gated_store(settings)
    calibration, _ = build_calibration(settings, DAY)
    row = calibration.filter(pl.col("model") == "m1").row(0, named=True)
    # unweighted: 240 of 250 reviewed above 0.85 (p = 0.28), so the old scan and an unweighted test
    # stop at 0.95; weighted: (1500 * 150/150 + 100 * 90/100) / 1600 = 0.99375, bound
    # 1500/1600 * 0.025^(1/150) + 100/1600 * CP(90, 100, 0.025) = 0.966 >= 0.95
    assert row["reviewed_with_confidence"] == 250 and row["accepted_as_is_rate"] == pytest.approx(240 / 250)
    assert row["gate_weighting"] == "inverse_probability" and row["gate_threshold"] == 0.85
    assert row["gate_accepted_rate"] == pytest.approx(1590 / 1600) and row["gate_coverage"] == 1.0
    bound = 1500 / 1600 * 0.025 ** (1 / 150) + 100 / 1600 * scipy.stats.beta.ppf(0.025, 90, 11)
    assert row["gate_lower_bound"] == pytest.approx(bound)
    assert (row["gate_target"], row["gate_delta"]) == (0.95, 0.05)
    # a backtest's policy: at 0.99 even 150 of 150 audited is no evidence (0.025^(1/150) = 0.976)
    strict, _ = build_calibration(settings, DAY, policy=Policy(version="t", gate=Gate(target=0.99)))
    row = strict.filter(pl.col("model") == "m1").row(0, named=True)
    assert row["gate_status"] == "none" and row["gate_target"] == 0.99


def test_the_old_gate_target_variable_is_refused(monkeypatch):
    monkeypatch.setenv("FLYWHEEL_GATE_TARGET", "0.9")
    with pytest.raises(ValueError, match="gate.target"):
        Settings.from_env()
