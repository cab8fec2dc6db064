"""Each statistic pinned to values computed by hand."""

import math

import numpy as np
import pytest

from flywheel.stats import (brier_score, expected_calibration_error, gate_threshold, reliability_bins, roc_auc,
                            wilson_interval)


def test_wilson_interval_matches_the_textbook_value():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)


def test_wilson_interval_edges_and_empty():
    lo, hi = wilson_interval(np.array([0, 5, 0]), np.array([5, 5, 0]))
    assert lo[0] == 0.0 and hi[0] == pytest.approx(3.8415 / 8.8415, abs=1e-4)  # z^2/(n+z^2)
    assert hi[1] == 1.0 and lo[1] == pytest.approx(5 / 8.8415, abs=1e-4)        # n/(n+z^2)
    assert math.isnan(lo[2]) and math.isnan(hi[2])


def test_reliability_bins_and_ece():
    bins = reliability_bins(np.array([0.8, 0.2, 0.6, 0.4]), np.array([1, 0, 1, 1]), bins=2)
    assert bins == [
        {"conf_lo": 0.2, "conf_hi": 0.4, "mean_confidence": pytest.approx(0.3), "observed_rate": 0.5, "n": 2},
        {"conf_lo": 0.6, "conf_hi": 0.8, "mean_confidence": pytest.approx(0.7), "observed_rate": 1.0, "n": 2},
    ]
    assert expected_calibration_error(bins) == pytest.approx(0.5 * 0.2 + 0.5 * 0.3)


def test_brier_score():
    assert brier_score(np.array([0.9, 0.2]), np.array([1, 0])) == pytest.approx(0.025)


def test_roc_auc_with_and_without_ties():
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(0.5)
    assert math.isnan(roc_auc(np.array([0.5, 0.7]), np.array([1, 1])))


def test_gate_threshold_is_the_lowest_qualifying_confidence():
    conf = np.r_[np.full(80, 0.9), np.full(20, 0.5)]
    acc = np.r_[np.ones(80), np.r_[np.ones(10), np.zeros(10)]]
    gate = gate_threshold(conf, acc, target=0.95)
    assert gate["threshold"] == 0.9 and gate["sample_size"] == 80 and gate["accepted"] == 80
    assert gate["lower_bound"] == pytest.approx(80 / (80 + 1.959963984540054 ** 2))
    assert gate_threshold(conf, acc, target=0.96) is None
    assert gate_threshold(np.array([]), np.array([]), 0.95) is None
