"""Sequential statistics that stay valid when they are looked at every night: a self-starting
binomial CUSUM (log-likelihood ratio) of a daily rate, with a guaranteed average run length to a
false alarm, and an anytime-valid lower confidence bound of a proportion.

Each is a pure function of daily counts, recomputed from the stored history: re-running a night
gives the same result (no state is carried from one night to the next).

The CUSUM's guarantee (Lorden 1971; via the Shiryaev-Roberts statistic, whose value minus the number
of steps is a martingale under no change): for daily counts k_t ~ Binomial(n_t, p) with p at or on
the good side of the reference rate p0 the CUSUM uses, a CUSUM of log(p1/p0)-likelihood ratios
that alarms at log(A) has an average run length to a false alarm of at least A days, however many
nights it is looked at. Several CUSUMs (one per shift to detect) alarming at log(A) + log(J) keep
the same bound together. The reference p0 is estimated from the history itself (self-starting) and
moved to the good side by `reference_z` standard errors, so an estimate from a short history errs
towards quiet; the days of a CUSUM excursion join the reference only once the CUSUM is back at 0,
so a change is not absorbed into the rate it is compared with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import special

_EPS = 1e-6


def binomial_llr(k: np.ndarray | int, n: np.ndarray | int, p0: float, p1: float) -> np.ndarray:
    """log of the likelihood ratio of rate p1 against p0 for k successes in n trials:
    k ln(p1/p0) + (n - k) ln((1 - p1)/(1 - p0))."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    return k * math.log(p1 / p0) + (n - k) * math.log((1 - p1) / (1 - p0))


@dataclass
class Monitor:
    """The state of a rate monitor after its last day (all figures are for that day).

    statistic: the highest CUSUM over the shifts (log-likelihood ratio), NaN while not monitoring;
    threshold: the alarm level log(arl_days) + log(len(shifts)); warn_threshold: log(arl_days / 10)
    + log(len(shifts)); per_day: the statistic of every day (NaN before monitoring starts);
    reference_rate / reference_n / reference_days: the pooled reference; reference_bound: the rate
    the CUSUM compared with (the reference moved `reference_z` standard errors to the good side);
    monitored_days: days the CUSUM ran; episode_start: index of the first day of the current
    excursion (the CUSUM above 0 since then), None when it is at 0; shift: the shift of the
    highest CUSUM; last_rate: the last day's rate.
    """

    statistic: float
    threshold: float
    warn_threshold: float
    per_day: np.ndarray = field(repr=False)
    reference_rate: float | None
    reference_n: int
    reference_days: int
    reference_bound: float | None
    monitored_days: int
    episode_start: int | None
    shift: float | None
    last_rate: float | None

    @property
    def alarm(self) -> bool:
        return bool(self.statistic >= self.threshold)

    @property
    def warning(self) -> bool:
        return bool(self.statistic >= self.warn_threshold)


def thresholds(arl_days: float, n_shifts: int) -> tuple[float, float]:
    """(alarm, warn) levels of the log-likelihood-ratio CUSUM for an average run length to a
    false alarm of at least `arl_days` (warn: arl_days / 10) over `n_shifts` CUSUMs."""
    if arl_days <= 10 or n_shifts < 1:
        raise ValueError("arl_days must be > 10 and n_shifts >= 1")
    return math.log(arl_days) + math.log(n_shifts), math.log(arl_days / 10) + math.log(n_shifts)


def monitor_rate(k: np.ndarray, n: np.ndarray, direction: str, shifts: tuple[float, ...], arl_days: float,
                 min_reference_days: int = 3, min_reference_n: int = 50, reference_z: float = 2.0) -> Monitor:
    """Run the self-starting binomial CUSUM over daily counts (k successes of n, oldest day first).

    `direction` "down" watches for the rate falling (accepted-as-is), "up" for it rising (severe
    failures). The first days, until the reference holds `min_reference_days` days with at least
    `min_reference_n` trials, only build the reference. Then each day, for each shift d:
    p0 = reference rate -/+ reference_z standard errors, p1 = p0 -/+ d, and
    S_d = max(0, S_d + binomial_llr(k, n, p0, p1)). A day when every S_d is back at 0 joins the
    reference with the days of the excursion before it. Days with n = 0 change nothing.
    """
    if direction not in ("down", "up"):
        raise ValueError("direction must be 'down' or 'up'")
    k, n = np.asarray(k, np.int64), np.asarray(n, np.int64)
    alarm, warn = thresholds(arl_days, len(shifts))
    sign = -1.0 if direction == "down" else 1.0
    s = np.zeros(len(shifts))
    ref_k = ref_n = ref_days = 0
    buffer: list[int] = []
    per_day = np.full(len(k), np.nan)
    monitored = 0
    bound: float | None = None
    best_shift: float | None = None
    for t in range(len(k)):
        if n[t] <= 0:
            per_day[t] = s.max() if monitored else np.nan
            continue
        if ref_days < min_reference_days or ref_n < min_reference_n:
            ref_k, ref_n, ref_days = ref_k + int(k[t]), ref_n + int(n[t]), ref_days + 1
            continue
        p_hat = ref_k / ref_n
        smoothed = (ref_k + 1) / (ref_n + 2)  # a standard error even when the reference is all 0 or all 1
        p0 = min(max(p_hat + sign * reference_z * math.sqrt(smoothed * (1 - smoothed) / ref_n), _EPS), 1 - _EPS)
        bound = p0
        for j, d in enumerate(shifts):
            p1 = p0 + sign * d
            if _EPS < p1 < 1 - _EPS:
                s[j] = max(0.0, s[j] + float(binomial_llr(k[t], n[t], p0, p1)))
        monitored += 1
        buffer.append(t)
        if not s.any():
            for i in buffer:
                ref_k, ref_n, ref_days = ref_k + int(k[i]), ref_n + int(n[i]), ref_days + 1
            buffer = []
        per_day[t] = s.max()
        best_shift = float(shifts[int(s.argmax())]) if s.any() else None
    last = next((t for t in range(len(k) - 1, -1, -1) if n[t] > 0), None)
    return Monitor(statistic=float(s.max()) if monitored else float("nan"), threshold=alarm, warn_threshold=warn,
                   per_day=per_day, reference_rate=ref_k / ref_n if ref_n else None, reference_n=ref_n,
                   reference_days=ref_days, reference_bound=bound, monitored_days=monitored,
                   episode_start=buffer[0] if buffer else None, shift=best_shift,
                   last_rate=float(k[last] / n[last]) if last is not None else None)


def anytime_lower_bound(k: int, n: int, alpha: float = 0.05, prior: tuple[float, float] = (1.0, 1.0)) -> float:
    """Anytime-valid lower confidence bound of a proportion from k successes in n trials.

    The beta-binomial mixture martingale M_n(p) = B(a + k, b + n - k) / B(a, b) / (p^k (1-p)^(n-k))
    (prior Beta(a, b) over the alternative) is a nonnegative martingale with mean 1 under rate p,
    so by Ville's inequality P(M_n(p) >= 1/alpha for some n) <= alpha: the bound, the smallest p at
    or below k/n with M_n(p) < 1/alpha, is below the true rate at every n at once with probability
    at least 1 - alpha, however often it is looked at as the sample grows. 0 when n == 0.
    """
    if n <= 0:
        return 0.0
    a, b = prior
    log_mix = special.betaln(a + k, b + n - k) - special.betaln(a, b)
    limit = math.log(1 / alpha)
    p_hat = k / n

    def log_m(p: float) -> float:
        return log_mix - (k * math.log(p) if k else 0.0) - ((n - k) * math.log(1 - p) if n - k else 0.0)

    lo, hi = _EPS, max(p_hat, _EPS)
    if log_m(lo) < limit:
        return 0.0
    if log_m(hi) >= limit:  # cannot happen with the mixture's maximum at k/n, kept for safety
        return hi
    for _ in range(100):  # log_m decreases on (0, k/n]: bisect for the crossing
        mid = (lo + hi) / 2
        if log_m(mid) >= limit:
            lo = mid
        else:
            hi = mid
    return hi
