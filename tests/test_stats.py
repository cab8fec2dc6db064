"""Each statistic pinned to values computed by hand."""

import math

import numpy as np
import pytest
import scipy.stats

from flywheel.stats import (
    binomial_upper_tail,
    brier_score,
    clopper_pearson_lower,
    expected_calibration_error,
    gate_threshold,
    reliability_bins,
    roc_auc,
    wilson_interval,
)


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


def test_clopper_pearson_lower_and_binomial_tail():
    # all n accepted: the bound solves p^n = alpha; none accepted: 0
    assert clopper_pearson_lower(80, 80, 0.05) == pytest.approx(0.05 ** (1 / 80))
    assert clopper_pearson_lower(0, 10, 0.05) == 0.0 and clopper_pearson_lower(0, 0, 0.05) == 0.0
    # P(Bin(3, 0.5) >= 2) = 4/8; P(Bin(130, 0.95) >= 129) = 0.95^130 + 130 * 0.05 * 0.95^129
    assert binomial_upper_tail(2, 3, 0.5) == pytest.approx(0.5)
    assert binomial_upper_tail(129, 130, 0.95) == pytest.approx(0.95 ** 130 + 130 * 0.05 * 0.95 ** 129)
    assert binomial_upper_tail(0, 5, 0.9) == 1.0


def test_gate_threshold_is_certified_by_an_exact_test():
    # 80 at 0.9 all accepted, 20 at 0.5 half accepted. At 0.9: p = P(Bin(80, 0.95) >= 80) = 0.95^80
    # = 0.0165 <= 0.05, rejected; at 0.5: 90 of 100, p near 1: the walk stops. The Wilson scan this
    # replaces said None at 0.96 (its bound was 0.9412); the exact test at 0.96 gives 0.96^80 = 0.038.
    conf = np.r_[np.full(80, 0.9), np.full(20, 0.5)]
    acc = np.r_[np.ones(80), np.r_[np.ones(10), np.zeros(10)]]
    gate = gate_threshold(conf, acc, target=0.95)
    assert gate["threshold"] == 0.9 and gate["sample_size"] == 80 and gate["accepted"] == 80 and gate["rate"] == 1.0
    assert gate["p_value"] == pytest.approx(0.95 ** 80) and gate["delta"] == 0.05 and gate["strata"] == 1
    assert gate["lower_bound"] == pytest.approx(0.05 ** (1 / 80))  # one-sided Clopper-Pearson at 95%
    assert gate_threshold(conf, acc, target=0.96)["p_value"] == pytest.approx(0.96 ** 80)
    assert gate_threshold(conf, acc, target=0.97) is None            # 0.97^80 = 0.087 > 0.05
    assert gate_threshold(conf, acc, target=0.95, delta=0.01) is None  # 0.0165 > 0.01
    assert gate_threshold(np.array([]), np.array([]), 0.95) is None


def test_gate_walk_stops_at_the_first_threshold_it_cannot_certify():
    # 2,000 reviewed: the walk tries thresholds 100 reviewed events (5%) apart. 200 at 0.9 all
    # accepted (p = 0.95^200); 100 at 0.8 all rejected (200 of 300: not certified); 1,700 at 0.7 all
    # accepted (1,900 of 2,000 = 0.95 overall). The fixed sequence never looks past its first
    # non-rejection: 0.9.
    conf = np.r_[np.full(200, 0.9), np.full(100, 0.8), np.full(1700, 0.7)]
    acc = np.r_[np.ones(200), np.zeros(100), np.ones(1700)]
    gate = gate_threshold(conf, acc, target=0.95)
    assert gate["threshold"] == 0.9 and gate["p_value"] == pytest.approx(0.95 ** 200)


def test_a_chance_dip_among_the_most_confident_does_not_stop_the_walk():
    # 60 at 0.99 with 3 edited (57 of 60: p = 0.42, no evidence on its own), 2,000 at 0.9 with 1,980
    # accepted. The first threshold tried has 5% of the 2,060 reviewed events at or above it (103):
    # 0.9, with 2,037 of 2,060 accepted (0.989): certified. Walking every distinct confidence from
    # the top stopped at 0.99 and gave no gate at all.
    conf = np.r_[np.full(60, 0.99), np.full(2000, 0.9)]
    acc = np.r_[np.zeros(3), np.ones(57), np.zeros(20), np.ones(1980)]
    gate = gate_threshold(conf, acc, target=0.95)
    assert gate["threshold"] == 0.9 and gate["sample_size"] == 2060 and gate["accepted"] == 2037
    assert gate["p_value"] == pytest.approx(binomial_upper_tail(2037, 2060, 0.95))


def test_gate_walk_starts_where_the_counts_allow_a_test_whatever_the_outcomes():
    # 30 at 0.99 (fewer than 59: even 30 of 30 is no evidence at 0.95, 0.95^30 = 0.21) and 100 at 0.9.
    # The walk starts at 0.9 whether or not the top 30 hold a rejection: 129 of 130 gives
    # p = 0.95^130 + 130 * 0.05 * 0.95^129 = 0.0099.
    conf = np.r_[np.full(30, 0.99), np.full(100, 0.9)]
    for top in (np.ones(30), np.r_[np.zeros(1), np.ones(29)]):
        gate = gate_threshold(conf, np.r_[top, np.ones(100)], target=0.95)
        k = int(top.sum()) + 100
        assert gate["threshold"] == 0.9 and gate["sample_size"] == 130 and gate["accepted"] == k
        assert gate["p_value"] == pytest.approx(binomial_upper_tail(k, 130, 0.95))


def test_gate_weights_an_audit_sample_by_its_inclusion_probability():
    # Under a gate at 0.9: 5,000 events at 0.95 acted alone, 200 of them audited, all accepted; 300 at
    # 0.85 below the gate, all reviewed, 276 accepted (0.92). Unweighted, the 500 reviewed events at
    # or above 0.85 accept 476/500 = 0.952 and no test passes there; weighted by events, the rate
    # above 0.85 is (5000 * 1 + 300 * 0.92) / 5300 = 0.9955, and its bound (Bonferroni over 2
    # strata) is 5000/5300 * 0.025^(1/200) + 300/5300 * CP(276, 300, 0.025).
    conf = np.r_[np.full(200, 0.95), np.full(300, 0.85)]
    acc = np.r_[np.ones(200), np.ones(276), np.zeros(24)]
    stratum = np.r_[np.ones(200, int), np.zeros(300, int)]
    population = (np.array([0.95, 0.85]), np.array([1, 0]), np.array([5000, 300]))
    weighted = gate_threshold(conf, acc, 0.95, stratum=stratum, population=population)
    assert weighted["threshold"] == 0.85 and weighted["strata"] == 2
    assert weighted["rate"] == pytest.approx((5000 + 276) / 5300)
    cp = scipy.stats.beta.ppf(0.025, 276, 25)  # Clopper-Pearson lower bound, the textbook formula
    assert weighted["lower_bound"] == pytest.approx(5000 / 5300 * 0.025 ** (1 / 200) + 300 / 5300 * cp)
    unweighted = gate_threshold(conf, acc, 0.95)
    assert unweighted["threshold"] == 0.95 and unweighted["p_value"] == pytest.approx(0.95 ** 200)
    # an audited stratum with events above t but none reviewed bounds that rate by 0: no gate
    none_audited = gate_threshold(conf[200:], acc[200:], 0.95, stratum=stratum[200:], population=population)
    assert none_audited is None
