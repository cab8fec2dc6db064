"""Small, exact statistics used across flywheel: Wilson score intervals, calibration error,
Brier score, ROC AUC, and the confidence-gate search. Pure numpy; every function is pinned to
hand-computed values in tests/test_stats.py."""

from __future__ import annotations

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(k: np.ndarray | int, n: np.ndarray | int, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (lower, upper) of k successes in n trials; NaN where n == 0."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        lo = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
        hi = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    # exact ends: 0 successes has lower bound 0, n successes has upper bound 1
    lo = np.where((n > 0) & (k == 0), 0.0, lo)
    hi = np.where((n > 0) & (k == n), 1.0, hi)
    return lo, hi


def reliability_bins(confidence: np.ndarray, outcome: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Equal-count bins of (confidence, 0/1 outcome), sorted by confidence.

    Each bin: lower and upper confidence, mean confidence, observed rate, count. With fewer
    points than bins, one bin per point.
    """
    order = np.argsort(confidence, kind="stable")
    c, y = np.asarray(confidence, float)[order], np.asarray(outcome, float)[order]
    out = []
    for idx in np.array_split(np.arange(len(c)), min(bins, len(c))):
        if len(idx) == 0:
            continue
        out.append({"conf_lo": float(c[idx[0]]), "conf_hi": float(c[idx[-1]]), "mean_confidence": float(c[idx].mean()),
                    "observed_rate": float(y[idx].mean()), "n": int(len(idx))})
    return out


def expected_calibration_error(bins: list[dict[str, float]]) -> float:
    """Sum over bins of (bin share) x |observed rate - mean confidence|; NaN with no data."""
    total = sum(b["n"] for b in bins)
    if total == 0:
        return float("nan")
    return float(sum(b["n"] / total * abs(b["observed_rate"] - b["mean_confidence"]) for b in bins))


def brier_score(confidence: np.ndarray, outcome: np.ndarray) -> float:
    """Mean squared difference between confidence and the 0/1 outcome; NaN with no data."""
    c, y = np.asarray(confidence, float), np.asarray(outcome, float)
    return float(np.mean((c - y) ** 2)) if len(c) else float("nan")


def roc_auc(confidence: np.ndarray, outcome: np.ndarray) -> float:
    """Probability that a random positive has higher confidence than a random negative (ties 1/2).

    NaN when either class is absent. Computed from average ranks (Mann-Whitney U).
    """
    c, y = np.asarray(confidence, float), np.asarray(outcome, bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(c, kind="stable")
    ranks = np.empty(len(c), float)
    sorted_c = c[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_c, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[y].sum() - pos * (pos + 1) / 2.0
    return float(u / (pos * neg))


def gate_threshold(confidence: np.ndarray, accepted: np.ndarray, target: float, z: float = Z95) -> dict[str, float] | None:
    """The lowest confidence t such that, among the reviewed events with confidence >= t, the Wilson
    lower bound of the accepted-as-is rate is >= `target`; None when no t qualifies.

    Returns {threshold, sample_size, accepted, rate, lower_bound}.
    """
    c, y = np.asarray(confidence, float), np.asarray(accepted, float)
    if len(c) == 0:
        return None
    order = np.argsort(-c, kind="stable")
    c, y = c[order], y[order]
    # thresholds are the distinct confidence values; count everything >= each one
    last_of_value = np.r_[c[1:] != c[:-1], True]
    n = np.arange(1, len(c) + 1)[last_of_value]
    k = np.cumsum(y)[last_of_value]
    t = c[last_of_value]
    lo, _ = wilson_interval(k, n, z)
    ok = np.flatnonzero(lo >= target)
    if len(ok) == 0:
        return None
    i = ok[-1]  # thresholds descend, so the last qualifying one is the lowest
    return {"threshold": float(t[i]), "sample_size": int(n[i]), "accepted": int(k[i]),
            "rate": float(k[i] / n[i]), "lower_bound": float(lo[i])}
