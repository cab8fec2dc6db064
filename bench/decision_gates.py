"""The confidence gate's benchmark: windows of reviewed events with a known acceptance curve, the gate
each method recommends, and how often the recommended gate's TRUE accepted-as-is rate is below target.

Truth: confidences uniform over the 100 values 0.005, 0.015, ..., 0.995 (a model that reports two
decimals), and the probability that a reviewer accepts a draft as-is rising linearly from 0.80 at
confidence 0 to 0.97 at confidence 1. The true accepted rate above a threshold t is the mean of that
curve over the values at or above t (exact, no sampling), its true coverage the share of those values.
Methods: "before", the scan flywheel used until issue 14 (the lowest distinct confidence whose Wilson
lower bound, on the same data, reaches the target; a reference copy below), and "after",
`flywheel.stats.gate_threshold` (fixed-sequence exact tests at level delta). Called by the
`make bench-decisions` harness; `python -m bench.decision_gates [--quick]` prints the rows.
"""

from __future__ import annotations

import argparse

import numpy as np

from flywheel.stats import gate_threshold, wilson_interval

TARGET = 0.95
DELTA = 0.05
LEVELS = (np.arange(100) + 0.5) / 100
CURVE = 0.80 + 0.17 * LEVELS


def true_rate_and_coverage(threshold: float) -> tuple[float, float]:
    """The true accepted-as-is rate of the events at or above `threshold`, and their share of all events."""
    above = LEVELS >= threshold
    return float(CURVE[above].mean()), float(above.mean())


def scan_gate(confidence: np.ndarray, accepted: np.ndarray, target: float) -> float | None:
    """The gate flywheel recommended before issue 14, kept here as a reference: the lowest distinct
    confidence at which the Wilson lower bound (z = 1.96) of the accepted-as-is rate of the reviewed
    events at or above it reaches `target`, chosen and reported on the same data."""
    c, y = np.asarray(confidence, float), np.asarray(accepted, float)
    if len(c) == 0:
        return None
    order = np.argsort(-c, kind="stable")
    c, y = c[order], y[order]
    last_of_value = np.r_[c[1:] != c[:-1], True]
    n = np.arange(1, len(c) + 1)[last_of_value]
    k = np.cumsum(y)[last_of_value]
    lo, _ = wilson_interval(k, n)
    ok = np.flatnonzero(lo >= target)
    return float(c[last_of_value][ok[-1]]) if len(ok) else None


def gate_benchmark(windows: int = 1000, reviewed=(500, 2000), seed: int = 0, quick: bool = False) -> list[dict]:
    """One row per (method, reviewed events per window): windows, gates_recommended, violation_share
    (the share of recommended gates whose true accepted rate is below TARGET), its count,
    violations_per_window (violations / windows: what "after"'s guarantee bounds by delta, a window
    without a gate being no violation), mean true coverage of the recommended gates and per window
    (0 where none), and the stated level delta (None for "before", which states none).
    Deterministic for a seed; `quick` runs 300 windows."""
    windows = min(windows, 300) if quick else windows
    rows = []
    for size in reviewed:
        rng = np.random.default_rng([seed, size])
        found: dict[str, list[float | None]] = {"before": [], "after": []}
        for _ in range(windows):
            conf = LEVELS[rng.integers(0, len(LEVELS), size)]
            acc = (rng.random(size) < 0.80 + 0.17 * conf).astype(float)
            found["before"].append(scan_gate(conf, acc, TARGET))
            gate = gate_threshold(conf, acc, TARGET, DELTA)
            found["after"].append(gate["threshold"] if gate else None)
        for method, thresholds in found.items():
            truth = [true_rate_and_coverage(t) for t in thresholds if t is not None]
            bad = sum(rate < TARGET for rate, _ in truth)
            rows.append({"method": method, "reviewed": size, "windows": windows, "gates_recommended": len(truth),
                         "violations": bad, "violation_share": bad / len(truth) if truth else None,
                         "violations_per_window": bad / windows,
                         "mean_true_coverage": float(np.mean([c for _, c in truth])) if truth else None,
                         "mean_true_coverage_per_window": float(sum(c for _, c in truth) / windows),
                         "delta": DELTA if method == "after" else None, "target": TARGET})
    return rows


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--windows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| method | reviewed/window | windows | gates | violations | share of gates below target "
          "| violations per window | delta | mean true coverage (gated / per window) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in gate_benchmark(args.windows, seed=args.seed, quick=args.quick):
        share = "-" if r["violation_share"] is None else f"{r['violation_share']:.1%}"
        cov = "-" if r["mean_true_coverage"] is None else f"{r['mean_true_coverage']:.3f}"
        print(f"| {r['method']} | {r['reviewed']} | {r['windows']} | {r['gates_recommended']} | {r['violations']} | {share} "
              f"| {r['violations_per_window']:.1%} | {r['delta'] if r['delta'] is not None else '-'} | {cov} / {r['mean_true_coverage_per_window']:.3f} |")


if __name__ == "__main__":
    _main()
