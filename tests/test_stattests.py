"""Drift statistics pinned to hand-computed values: the fixed-sample tests (stattests.py) and the
sequential monitors and bounds (sequential.py)."""

import math

import numpy as np
import pytest

from flywheel.signals.sequential import anytime_lower_bound, binomial_llr, monitor_rate, thresholds
from flywheel.signals.stattests import audit_sample_size, benjamini_hochberg, ks_test, psi, two_proportion_test


def test_two_proportion_test():
    # 80/100 vs 60/100: pooled 0.7, se = sqrt(0.21 * 0.02) = 0.0648074, z = -0.2/0.0648074
    z, p = two_proportion_test(80, 100, 60, 100)
    assert z == pytest.approx(-3.0861, abs=1e-4)
    assert p == pytest.approx(0.002028, abs=1e-5)
    assert two_proportion_test(0, 0, 5, 10) == (0.0, 1.0)


def test_psi_is_zero_for_the_same_distribution_and_known_for_a_shift():
    base = np.arange(100) / 100
    assert psi(base, base, bins=4) == pytest.approx(0.0)
    # all current mass in the top quartile bin: shares (1e-4, 1e-4, 1e-4, 1) vs 0.25 each
    expected = 3 * (1e-4 - 0.25) * math.log(1e-4 / 0.25) + (1 - 0.25) * math.log(1 / 0.25)
    assert psi(base, np.full(50, 0.99), bins=4) == pytest.approx(expected)


def test_ks_test():
    d, p = ks_test(np.array([0.1, 0.2, 0.3]), np.array([0.7, 0.8, 0.9]))
    assert d == 1.0 and p == pytest.approx(0.1, abs=1e-9)


def test_benjamini_hochberg():
    q = benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5]))
    # sorted 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.06, 0.0533, 0.5 -> monotone: 0.04, 0.0533, 0.0533, 0.5
    assert q.tolist() == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])


def test_audit_sample_size():
    # p0 = 0.05, p1 = 0.10, alpha 0.05 one-sided, power 0.8
    n = audit_sample_size(0.05, 0.05)
    za, zb = 1.6448536, 0.8416212
    expected = ((za * math.sqrt(0.05 * 0.95) + zb * math.sqrt(0.1 * 0.9)) / 0.05) ** 2
    assert n == math.ceil(expected)
    with pytest.raises(ValueError):
        audit_sample_size(0.05, 0.0)


def test_binomial_llr():
    # 8 of 10 under p1 = 0.8 against p0 = 0.9: 8 ln(0.8/0.9) + 2 ln(0.2/0.1)
    assert float(binomial_llr(8, 10, 0.9, 0.8)) == pytest.approx(8 * math.log(8 / 9) + 2 * math.log(2))
    assert float(binomial_llr(8, 10, 0.9, 0.8)) == pytest.approx(0.444030, abs=1e-6)


def test_thresholds_give_the_run_length_over_the_shifts():
    alarm, warn = thresholds(1000, 3)
    assert alarm == pytest.approx(math.log(1000) + math.log(3)) and alarm == pytest.approx(8.006368, abs=1e-6)
    assert warn == pytest.approx(math.log(100) + math.log(3))
    with pytest.raises(ValueError):
        thresholds(5, 1)


def test_the_monitor_builds_its_reference_then_alarms_on_a_drop():
    k, n = np.array([90, 90, 90, 70]), np.array([100, 100, 100, 100])
    m = monitor_rate(k, n, "down", (0.10,), arl_days=1000, min_reference_days=3, min_reference_n=50, reference_z=0.0)
    # days 1-3 are the reference (0.9); day 4 against p0 = 0.9, p1 = 0.8: 70 ln(0.8/0.9) + 30 ln(0.2/0.1)
    expected = 70 * math.log(0.8 / 0.9) + 30 * math.log(2)
    assert m.statistic == pytest.approx(expected) and m.statistic == pytest.approx(12.549603, abs=1e-6)
    assert np.isnan(m.per_day[:3]).all() and m.per_day[3] == pytest.approx(expected)
    assert m.alarm and m.threshold == pytest.approx(math.log(1000))
    assert (m.reference_rate, m.reference_n, m.reference_days, m.monitored_days) == (0.9, 300, 3, 1)
    assert m.episode_start == 3 and m.shift == 0.10 and m.last_rate == 0.7


def test_the_reference_moves_to_the_good_side_by_its_standard_error():
    k, n = np.array([90, 90, 90, 70]), np.array([100, 100, 100, 100])
    m = monitor_rate(k, n, "down", (0.10,), arl_days=1000, min_reference_days=3, min_reference_n=50, reference_z=2.0)
    smoothed = 271 / 302  # (270 + 1) / (300 + 2)
    p0 = 0.9 - 2 * math.sqrt(smoothed * (1 - smoothed) / 300)
    assert m.reference_bound == pytest.approx(p0) and p0 == pytest.approx(0.864955, abs=1e-6)
    assert m.statistic == pytest.approx(70 * math.log((p0 - 0.1) / p0) + 30 * math.log((1.1 - p0) / (1 - p0)))
    # severe failures watch for a rise: the reference moves up
    up = monitor_rate(100 - k, n, "up", (0.10,), 1000, 3, 50, 2.0)
    assert up.reference_bound == pytest.approx(1 - p0) and up.statistic == pytest.approx(m.statistic)


def test_an_in_control_day_joins_the_reference_and_an_excursion_does_not():
    k, n = np.array([90, 90, 90, 95, 70]), np.full(5, 100)
    m = monitor_rate(k, n, "down", (0.10,), 1000, 3, 50, 0.0)
    # day 4 (95 of 100) pulls the CUSUM to 0: it joins the reference, 365 of 400 = 0.9125
    p0 = 365 / 400
    assert m.per_day[3] == 0.0 and m.reference_days == 4 and m.reference_rate == pytest.approx(p0)
    assert m.statistic == pytest.approx(70 * math.log((p0 - 0.1) / p0) + 30 * math.log((1.1 - p0) / (1 - p0)))
    # a run of low days stays out of the reference (the change is not absorbed)
    low = monitor_rate(np.array([90, 90, 90, 80, 80, 80]), np.full(6, 100), "down", (0.10,), 1000, 3, 50, 0.0)
    assert low.reference_days == 3 and low.reference_rate == 0.9 and low.episode_start == 3


def test_days_without_trials_change_nothing_and_bad_arguments_fail():
    k, n = np.array([90, 90, 90, 0, 70]), np.array([100, 100, 100, 0, 100])
    a = monitor_rate(k, n, "down", (0.10,), 1000, 3, 50, 0.0)
    b = monitor_rate(np.delete(k, 3), np.delete(n, 3), "down", (0.10,), 1000, 3, 50, 0.0)
    assert a.statistic == b.statistic and a.episode_start == 4
    with pytest.raises(ValueError):
        monitor_rate(k, n, "sideways", (0.10,), 1000)


def test_anytime_lower_bound():
    # 10 of 10 with a uniform prior: M(p) = (1/11) / p^10 reaches 1/alpha = 20 at p = 220^(-1/10)
    assert anytime_lower_bound(10, 10, 0.05) == pytest.approx(220 ** -0.1, abs=1e-9)
    assert anytime_lower_bound(0, 10) == 0.0 and anytime_lower_bound(0, 0) == 0.0
    # below the estimate and the fixed-sample Wilson bound (0.8809 at 900/1000), tighter with more data
    lo = anytime_lower_bound(900, 1000)
    assert 0.85 < lo < 0.8809
    assert anytime_lower_bound(9000, 10000) > lo
    assert anytime_lower_bound(900, 1000, alpha=0.01) < lo
