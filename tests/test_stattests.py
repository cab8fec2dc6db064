"""Drift statistics pinned to hand-computed values."""

import math

import numpy as np
import pytest

from flywheel.signals.stattests import (audit_sample_size, benjamini_hochberg, cusum, ks_test, psi,
                                        two_proportion_test)


def test_two_proportion_test():
    # 80/100 vs 60/100: pooled 0.7, se = sqrt(0.21 * 0.02) = 0.0648074, z = -0.2/0.0648074
    z, p = two_proportion_test(80, 100, 60, 100)
    assert z == pytest.approx(-3.0861, abs=1e-4)
    assert p == pytest.approx(0.002028, abs=1e-5)
    assert two_proportion_test(0, 0, 5, 10) == (0.0, 1.0)


def test_cusum_accumulates_shortfalls_beyond_the_slack():
    s = cusum(np.array([0.8, 0.7, 0.6, 0.9, float("nan")]), target=0.8, slack=0.05)
    assert s.tolist() == pytest.approx([0.0, 0.05, 0.2, 0.05, 0.05])


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


def test_standardized_shortfalls():
    from flywheel.signals.stattests import standardized_shortfalls

    z = standardized_shortfalls(np.array([60, 0]), np.array([100, 0]), 0.8)
    assert z[0] == pytest.approx(0.2 / math.sqrt(0.16 / 100))  # 5 standard errors short
    assert math.isnan(z[1])


def test_standardized_shortfalls_widen_with_an_estimated_target():
    from flywheel.signals.stattests import standardized_shortfalls

    z = standardized_shortfalls(np.array([60]), np.array([100]), 0.8, target_n=100)
    assert z[0] == pytest.approx(0.2 / math.sqrt(0.16 * (1 / 100 + 1 / 100)))
