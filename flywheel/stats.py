"""Small, exact statistics used across flywheel: Wilson score and Clopper-Pearson bounds, exact
binomial tails, calibration error, Brier score, ROC AUC, and the confidence gate with its
finite-sample guarantee. numpy and scipy.special (a dependency of scikit-learn); every function is
pinned to hand-computed values in tests/test_stats.py."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import betainc, betaincinv, erfc

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


def clopper_pearson_lower(k: np.ndarray | int, n: np.ndarray | int, alpha: float) -> np.ndarray:
    """One-sided exact (Clopper-Pearson) lower confidence bound, at level 1 - `alpha`, of a binomial
    proportion from k successes in n trials: the p with P(Bin(n, p) >= k) = alpha; 0 where k == 0
    or n == 0."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = betaincinv(np.maximum(k, 1.0), np.maximum(n - k + 1.0, 1.0), alpha)
    return np.where((k > 0) & (n > 0), lo, 0.0)


def binomial_upper_tail(k: np.ndarray | int, n: np.ndarray | int, p: float) -> np.ndarray:
    """P(Bin(n, p) >= k), exactly (the regularised incomplete beta function); 1 where k <= 0."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        tail = betainc(np.maximum(k, 1.0), np.maximum(n - k + 1.0, 1.0), p)
    return np.where(k <= 0, 1.0, np.where(k > n, 0.0, tail))


def gate_threshold(confidence: np.ndarray, accepted: np.ndarray, target: float, delta: float = 0.05,
                   stratum: np.ndarray | None = None,
                   population: tuple[np.ndarray, ...] | None = None,
                   min_step: float = 0.05) -> dict[str, float] | None:
    """A confidence gate with a finite-sample guarantee, chosen by fixed-sequence testing (Learn then
    Test) from the highest confidence down; None when no threshold is certified.

    The candidate thresholds are distinct confidences of the reviewed events. At threshold t the
    null hypothesis is H0_t: "the accepted-as-is rate of the events at or above t is below `target`".
    The walk starts at the highest t at which the test could reject at all (enough reviewed events
    at or above t that all of them accepted would be evidence; 59 for target 0.95 and delta 0.05)
    and at least `min_step` (5%) of the reviewed events, and goes down in steps of `min_step` of them: a walk over every distinct confidence stops at the first chance dip among the few
    events at the top (a 97%-accepted scenario with 5,000 reviewed events got no gate because 3 of
    its 59 most confident drafts were edited). It tests each t at level `delta` and stops at the
    first t it cannot reject; the gate is the lowest t rejected. A fixed sequence spends the whole `delta` on every step because a later step is only
    tried when every earlier one rejected: the probability that any rejected H0_t is true (and so
    that the gate's true rate is below `target`) is at most `delta`.

    The guarantee: P(the true accepted-as-is rate above the recommended gate < target) <= delta,
    over the draw of the reviewed outcomes, assuming that, given their confidences, the reviewed
    events' outcomes are independent draws of the events they stand for (exchangeable reviewed
    events within each stratum of the window; the order of the walk depends only on the
    confidences, never on the outcomes). "True rate" is the acceptance probability averaged over the
    events at or above the gate (the window's, weighted as below); it is not a promise about a
    future window whose mix or quality has moved (that is what drift watches).

    The test at t: with one stratum, the exact binomial test, p = P(Bin(n_t, target) >= k_t)
    (equivalently: the one-sided Clopper-Pearson lower bound at 1 - delta reaches `target`). With
    strata (`stratum` labels of the reviewed events, e.g. below/above the gate in force, whose
    reviewed shares differ), the rate above t is the strata's rates weighted by their events above t
    (`population`: the confidences and stratum labels of all the window's events with a confidence,
    and optionally how many events each entry stands for; inverse-probability weights N_s / n_s per
    stratum, N_s / n_s counted above t), and the lower bound is the same weighted sum
    of per-stratum Clopper-Pearson bounds at delta / S (Bonferroni over the S strata of the window);
    a stratum with events above t but none reviewed bounds its rate by 0. Without `population` every
    stratum stands for its reviewed events only.

    Returns {threshold, sample_size, accepted, rate, lower_bound, delta, p_value, strata}: the
    reviewed events at or above the gate, how many were accepted as-is, their (weighted) rate, its
    lower bound at level 1 - delta, and the smallest level at which this threshold's test rejects.
    """
    c, y = np.asarray(confidence, float), np.asarray(accepted, float)
    if len(c) == 0:
        return None
    s = np.zeros(len(c), dtype=np.int64) if stratum is None else np.asarray(stratum)
    if population is None:
        pop_c, pop_s, pop_w = c, s, np.ones(len(c))
    else:
        pop_c, pop_s = np.asarray(population[0], float), np.asarray(population[1])
        pop_w = np.asarray(population[2], float) if len(population) > 2 else np.ones(len(pop_c))
    labels = np.unique(np.r_[np.unique(pop_s), np.unique(s)])
    thresholds = np.unique(c)[::-1]  # descending
    n = np.empty((len(labels), len(thresholds)))
    k = np.empty_like(n)
    big_n = np.empty_like(n)
    for i, label in enumerate(labels):
        mine = s == label
        cs, ys = c[mine], y[mine]
        order = np.argsort(cs, kind="stable")
        cs, ys = cs[order], ys[order]
        at_or_above = len(cs) - np.searchsorted(cs, thresholds, side="left")
        n[i] = at_or_above
        acc_below = np.r_[0.0, np.cumsum(ys)]
        k[i] = acc_below[-1] - acc_below[len(cs) - at_or_above]
        mine = pop_s == label
        order = np.argsort(pop_c[mine], kind="stable")
        pc, pw = pop_c[mine][order], np.r_[0.0, np.cumsum(pop_w[mine][order])]
        big_n[i] = pw[-1] - pw[np.searchsorted(pc, thresholds, side="left")]
    # Bonferroni over the strata the window has: a count of the labels, never of the outcomes
    strata = max(int(sum((pop_w[pop_s == label] > 0).any() for label in labels)), 1)
    share = big_n / np.maximum(big_n.sum(axis=0), 1.0)

    def lower(level: float, kk: np.ndarray = k, cols: slice | np.ndarray = slice(None)) -> np.ndarray:
        return (share[:, cols] * clopper_pearson_lower(kk[:, cols], n[:, cols], level / strata)).sum(axis=0)

    # where the walk starts and which thresholds it tries depend on the counts only, never on the
    # outcomes: from the first t at which all-accepted would pass and `min_step` of the reviewed
    # events are at or above it, then a step of `min_step` of them between tries
    testable = np.flatnonzero(lower(delta, kk=n) >= target)
    if len(testable) == 0:
        return None
    total = n.sum(axis=0)
    step = max(min_step * float(total[-1]), 1.0)
    tries: list[int] = []
    reach = max(float(total[testable[0]]), step)
    for j in range(testable[0], len(thresholds)):
        if total[j] >= reach:
            tries.append(j)
            reach = total[j] + step
    if not tries:
        return None
    grid = np.array(tries)
    passed = lower(delta, cols=grid) >= target  # the exact bound only at the thresholds the walk tries
    if not passed[0]:
        return None
    stop = np.flatnonzero(~passed)
    i = int(grid[stop[0] - 1] if len(stop) else grid[-1])
    ni, ki, wi = n[:, i], k[:, i], share[:, i]
    seen = wi > 0
    rate = float((wi[seen] * ki[seen] / ni[seen]).sum()) if (ni[seen] > 0).all() else float("nan")
    if strata == 1 and len(labels) == 1:
        p_value = float(binomial_upper_tail(ki[0], ni[0], target))
    else:
        p_value = _smallest_level(lambda a: float(lower(a, cols=slice(i, i + 1))[0]) >= target, delta)
    return {"threshold": float(thresholds[i]), "sample_size": int(ni.sum()), "accepted": int(ki.sum()),
            "rate": rate, "lower_bound": float(lower(delta, cols=slice(i, i + 1))[0]), "delta": float(delta),
            "p_value": p_value, "strata": strata}


def _smallest_level(rejects_at: Callable[[float], bool], known: float) -> float:
    """The smallest level in (0, 1] at which a test monotone in its level rejects, to 1e-9, given
    that it rejects at `known`: the p-value of a test defined only through its bounds."""
    lo, hi = 0.0, known
    for _ in range(60):
        mid = (lo + hi) / 2
        if rejects_at(mid):
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-9:
            break
    return hi


def mantel_haenszel(k_a: np.ndarray, n_a: np.ndarray, k_b: np.ndarray, n_b: np.ndarray) -> dict[str, float]:
    """Cochran-Mantel-Haenszel comparison of two groups' success rates across strata (e.g. model x day).

    Arrays hold, per stratum, each group's successes and trials. Only strata where both groups have
    trials carry information. Returns {z, p_value, difference, strata}: the CMH statistic (no
    continuity correction; positive when b does better than expected), its two-sided normal
    p-value, the Mantel-Haenszel common risk difference rate_b - rate_a (each stratum weighted
    n_a n_b / N), and how many strata were compared. z = 0, p = 1 and difference NaN when none is.
    """
    k_a, n_a, k_b, n_b = (np.asarray(x, float) for x in (k_a, n_a, k_b, n_b))
    both = (n_a > 0) & (n_b > 0)
    k_a, n_a, k_b, n_b = k_a[both], n_a[both], k_b[both], n_b[both]
    total = n_a + n_b
    ones = k_a + k_b
    expected = n_b * ones / total
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(total > 1, n_a * n_b * ones * (total - ones) / (total ** 2 * (total - 1)), 0.0)
    weight = n_a * n_b / total
    difference = float((weight * (k_b / n_b - k_a / n_a)).sum() / weight.sum()) if len(total) else float("nan")
    if var.sum() <= 0:
        return {"z": 0.0, "p_value": 1.0, "difference": difference, "strata": int(both.sum())}
    z = float((k_b - expected).sum() / np.sqrt(var.sum()))
    return {"z": z, "p_value": float(erfc(abs(z) / np.sqrt(2.0))), "difference": difference, "strata": int(both.sum())}


def holm(p_values: list[float], alpha: float) -> list[bool]:
    """Holm's step-down rejections at family-wise error `alpha`: the i-th smallest of m p-values is
    rejected while each so far is <= alpha / (m - i), i = 0, 1, ..."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    out = [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (len(p_values) - rank):
            break
        out[i] = True
    return out
