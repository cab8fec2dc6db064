"""The scenario-level drift alert rules flywheel used before issue 14, kept as a reference for the
"before" column of `make bench-decisions` (copied from flywheel/signals/drift.py and stattests.py at
9896e57; not used by the pipeline).

Each night: the current window (7 days ending at the night) against the baseline (28 days before
it). Two-proportion z-tests of the accepted-as-is rate (of reviewed) and the severe-failure rate
(of events) when both windows hold `min_sample`; Benjamini-Hochberg over the night's tests; an alert
when q < fdr, the change is for the worse and at least `alert_effect`. A CUSUM of the current
window's daily shortfalls below the baseline rate, in standard errors (slack 1), alerts at 8 when
the baseline has at least 7 days.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

FDR, ALERT_EFFECT, MIN_SAMPLE, MIN_BASELINE_DAYS = 0.05, 0.15, 50, 7
CUSUM_SLACK, CUSUM_ALERT, CURRENT_DAYS, BASELINE_DAYS = 1.0, 8.0, 7, 28


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p), pooled standard error; (0, 1) when undefined."""
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (k2 / n2 - k1 / n1) / se
    return z, float(2 * stats.norm.sf(abs(z)))


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values in the input order."""
    p = np.asarray(p, float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    adjusted = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def cusum(values: np.ndarray, target: float, slack: float) -> np.ndarray:
    """Lower one-sided CUSUM: S_t = max(0, S_{t-1} + (target - x_t) - slack); NaN days keep S."""
    s, out = 0.0, []
    for x in np.asarray(values, float):
        if not np.isnan(x):
            s = max(0.0, s + (target - x) - slack)
        out.append(s)
    return np.array(out)


def standardized_shortfalls(k: np.ndarray, n: np.ndarray, target: float, target_n: float = np.inf) -> np.ndarray:
    """(target - k/n) / sqrt(target(1-target)(1/n + 1/target_n)); NaN where n == 0."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    t = min(max(target, 1e-6), 1 - 1e-6)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (t - k / n) / np.sqrt(t * (1 - t) * (1 / n + 1 / target_n))
    return np.where(n > 0, z, np.nan)


def legacy_alert(accepted: np.ndarray, reviewed: np.ndarray, severe: np.ndarray, events: np.ndarray,
                 night: int) -> bool:
    """Whether the old rules alerted (would demote) on day index `night` of one scenario's daily counts."""
    cs = max(0, night - CURRENT_DAYS + 1)
    bs = max(0, cs - BASELINE_DAYS)
    cur, base = slice(cs, night + 1), slice(bs, cs)
    baseline_days = int((events[base] > 0).sum())
    tests = []
    for k, n, bad_when in ((accepted, reviewed, "down"), (severe, events, "up")):
        k1, n1, k2, n2 = int(k[base].sum()), int(n[base].sum()), int(k[cur].sum()), int(n[cur].sum())
        if n1 < MIN_SAMPLE or n2 < MIN_SAMPLE:
            continue
        _, p = two_proportion_test(k1, n1, k2, n2)
        effect = k2 / n2 - k1 / n1
        tests.append((p, effect, effect < 0 if bad_when == "down" else effect > 0))
    if tests:
        q = benjamini_hochberg(np.array([t[0] for t in tests]))
        if any(qi < FDR and worse and abs(effect) >= ALERT_EFFECT for qi, (_, effect, worse) in zip(q, tests)):
            return True
    k1, n1 = int(accepted[base].sum()), int(reviewed[base].sum())
    if n1 >= MIN_SAMPLE and baseline_days >= MIN_BASELINE_DAYS:
        short = standardized_shortfalls(accepted[cur], reviewed[cur], k1 / n1, n1)
        s = cusum(-short, 0.0, CUSUM_SLACK)
        if len(s) and s.max() >= CUSUM_ALERT:
            return True
    return False
