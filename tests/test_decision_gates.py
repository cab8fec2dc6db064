"""The confidence-gate benchmark (bench/decision_gates.py), quick: the new gate keeps its stated
level where the old scan does not, on windows whose true acceptance curve is known."""

from __future__ import annotations

import math

import pytest

from bench.decision_gates import gate_benchmark, scan_gate, true_rate_and_coverage


def test_true_rate_above_a_threshold_is_the_curve_averaged_over_the_levels_above_it():
    # levels 0.905 ... 0.995 (10 of 100): 0.80 + 0.17 * 0.95 = 0.9615
    assert true_rate_and_coverage(0.9) == (pytest.approx(0.9615), pytest.approx(0.10))


def test_the_reference_scan_is_the_old_gate():
    # 80/80 at 0.9 has a Wilson lower bound of 80 / (80 + 1.96^2) = 0.954; 90/100 does not
    assert scan_gate([0.9] * 80 + [0.5] * 20, [1] * 80 + [1, 0] * 10, 0.95) == 0.9


def test_the_new_gate_keeps_its_level_and_the_old_scan_does_not():
    rows = gate_benchmark(quick=True)
    assert rows == gate_benchmark(quick=True)  # deterministic for a seed
    by = {(r["method"], r["reviewed"]): r for r in rows}
    for size in (500, 2000):
        before, after = by["before", size], by["after", size]
        assert after["windows"] == 300 and after["delta"] == 0.05 and before["delta"] is None
        # the guarantee: P(a gate is recommended and its true rate is below target) <= delta; over 300
        # windows, allow three binomial standard errors
        margin = 3 * math.sqrt(0.05 * 0.95 / after["windows"])
        assert after["violations_per_window"] <= 0.05 + margin
        assert after["gates_recommended"] > 0
        # the old scan recommends gates below target far more often, per gate and per window
        assert before["violation_share"] > after["violation_share"]
        assert before["violations_per_window"] > after["violations_per_window"]
