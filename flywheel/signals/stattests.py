"""The fixed-sample statistical tests behind drift signals, each pinned to hand-computed values in
tests/test_stattests.py: two-proportion z-test, the population stability index on baseline
quantile bins, the two-sample Kolmogorov-Smirnov test, Benjamini-Hochberg false-discovery control,
and the audit sample size for detecting a rise. The monitors looked at every night are in
`sequential.py`."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) of H0: p1 == p2, pooled standard error; (0, 1) when undefined."""
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    p1, p2 = k1 / n1, k2 / n2
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (p2 - p1) / se
    return z, float(2 * stats.norm.sf(abs(z)))


def psi(baseline: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `current` against `baseline`, on the baseline's quantile bins.

    sum((c - b) * ln(c / b)) over bins, with shares floored at 1e-4; NaN if either sample is empty.
    """
    b, c = np.asarray(baseline, float), np.asarray(current, float)
    b, c = b[~np.isnan(b)], c[~np.isnan(c)]
    if len(b) == 0 or len(c) == 0:
        return float("nan")
    edges = np.unique(np.quantile(b, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        edges = np.array([edges[0] - 1e-9, edges[0] + 1e-9])
    inner = edges[1:-1]
    bs = np.bincount(np.searchsorted(inner, b, side="right"), minlength=len(edges) - 1) / len(b)
    cs = np.bincount(np.searchsorted(inner, c, side="right"), minlength=len(edges) - 1) / len(c)
    bs, cs = np.maximum(bs, 1e-4), np.maximum(cs, 1e-4)
    return float(np.sum((cs - bs) * np.log(cs / bs)))


def ks_test(baseline: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """(D statistic, p-value) of the two-sample Kolmogorov-Smirnov test; (0, 1) if a sample is empty."""
    b, c = np.asarray(baseline, float), np.asarray(current, float)
    b, c = b[~np.isnan(b)], c[~np.isnan(c)]
    if len(b) == 0 or len(c) == 0:
        return 0.0, 1.0
    res = stats.ks_2samp(b, c)
    return float(res.statistic), float(res.pvalue)


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order."""
    p = np.asarray(pvalues, float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def audit_sample_size(base_rate: float, increase: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Audited events needed to detect a rise of a failure rate from `base_rate` to
    `base_rate + increase` with a one-sided test at level `alpha` and the given power
    (normal approximation for one proportion against a known baseline)."""
    p0 = min(max(base_rate, 1e-6), 1 - 1e-6)
    p1 = min(p0 + increase, 1 - 1e-6)
    if p1 <= p0:
        raise ValueError("increase must be > 0")
    za, zb = stats.norm.ppf(1 - alpha), stats.norm.ppf(power)
    n = ((za * math.sqrt(p0 * (1 - p0)) + zb * math.sqrt(p1 * (1 - p1))) / (p1 - p0)) ** 2
    return int(math.ceil(n))
