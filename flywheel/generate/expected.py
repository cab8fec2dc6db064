"""The exact expected share of each final outcome among *reviewed* events, derived from the world.

A reviewed event is a valid event with at least one written intervention; its final outcome is the
action of its latest intervention, `accepted` with a changed `final_text` counting as `edited`
(truth.json's `outcome_definition`). The shares follow from the generator's own model, event by
event: the status (error and timeout scale with the model; only `ok` and `fallback` events are ever
reviewed), the latent outcome (of the scenario and prompt version, or of the emerging failure mode,
or of the canned fallback reply), the confidence (Beta by latent outcome plus the model's bias,
rounded to 4 decimals) that a gated scenario compares with its gate, the route, and then the humans:
reviews of routed drafts (3.5% in two steps, the scenario's share of non-shadow accepts with a
changed text), audits of actions taken alone and reverts of bad ones.

The share is a ratio of expectations (expected reviewed events with that outcome over expected
reviewed events), which is what a large sample's share converges to. Two things make it depend on
the event date:

- the emerging failure mode (its scenarios get one segment per event date);
- right-censoring: an intervention dated after the last day is not written, and the delays differ
  by path (audits and reverts take longer than reviews; the second step of a two-step review comes
  hours after the escalation, which alone then decides the outcome). So the reviewed set of the
  last `MAX_REVIEW_DAYS` event dates is biased. `reviewed_outcome_probs` is the uncensored share,
  exact for event dates up to `complete_through`; `censored` gives, for each later date, the exact
  share given what is written, integrating each path's delay distribution over the event's time of
  day.

A run without changes has neither the v3 regression nor the emerging mode: every scenario is then
one segment, "all".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from flywheel.generate import world as w
from flywheel.generate.stamps import DAY_MS

REVIEWED_OUTCOMES: tuple[str, ...] = ("accepted", "edited", "rejected", "escalated", "reverted")
_A, _E, _R, _X, _V = range(5)
assert REVIEWED_OUTCOMES == w.FINAL_OUTCOMES[:5]
_ACTS = {how: tuple(REVIEWED_OUTCOMES.index(a) for a in acts) for how, acts in w.ACTIONS_BY_LATENT.items()}
# Paths to a final outcome, told apart because their delays (hence censoring) differ.
PATHS = ("shadow", "human_review", "two_step", "audit", "revert")
_GRID_MS = 1000.0  # time-of-day quadrature step


def segment_by(s: w.Scenario, changes: bool = True) -> str:
    """How the reviewed shares of scenario `s` are segmented: all, prompt_version or event_date."""
    if not changes:
        return "all"
    if s.probs_v3 is not None:
        return "prompt_version"
    if s.name in w.EMERGING_SCENARIOS:
        return "event_date"
    return "all"


def complete_days(days: int) -> int:
    """How many leading event dates of a `days`-day run have every intervention written."""
    return max(0, days - math.ceil(w.MAX_REVIEW_DAYS))


def _above_gate(s: w.Scenario, model: w.Model) -> np.ndarray:
    """P(confidence >= gate | latent outcome) of an `ok` event: round(clip(Beta + bias), 4) >= gate."""
    from scipy.special import betainc  # scipy comes with scikit-learn

    a = np.array([x for x, _ in w.CONFIDENCE_BETA])
    b = np.array([y for _, y in w.CONFIDENCE_BETA])
    x = min(max(s.gate - 0.00005 - model.confidence_bias, 0.0), 1.0)  # rounding to 4 decimals moves the threshold
    return 1.0 - betainc(a, b, x)


def _accept(changed: float) -> np.ndarray:
    """Outcome distribution of an `accepted` intervention: a `changed` share ships a changed text (= edited)."""
    out = np.zeros(5)
    share = changed
    out[_A], out[_E] = 1.0 - share, share
    return out


def path_masses(s: w.Scenario, latent_ok: tuple[float, ...], emerging: float, model: w.Model) -> dict[str, np.ndarray]:
    """Per path, P(an event of `s` run by `model` is reviewed with each outcome | every review is written).

    For "two_step" the vector is the resolving action; its first step is an escalation.
    """
    e, to, fb = s.status_rates
    p_ok = 1.0 - (e + to) * model.error_multiplier - fb
    # (latent-outcome masses, has a confidence, revert rate of its bad outcomes)
    kinds = [(p_ok * (1.0 - emerging) * np.array(latent_ok), True, s.revert_rate),
             (p_ok * emerging * np.array(w.EMERGING_LATENT_PROBS), True, w.EMERGING_REVERT_RATE),
             (fb * np.array(w.FALLBACK_PROBS), False, s.revert_rate)]
    out = {p: np.zeros(5) for p in PATHS}
    q = _above_gate(s, model) if s.autonomy == "gated" else None
    for mass, has_conf, revert_rate in kinds:
        if s.autonomy == "shadow":
            routes = {"shadow": mass}
        elif s.autonomy == "assist":
            routes = {"human_review": mass}
        elif s.autonomy == "gated":
            above = q if has_conf else np.zeros(5)
            routes = {"human_review": mass * (1.0 - above), "auto": mass * above}
        else:
            routes = {"auto": mass}
        for route, m in routes.items():
            for lat in range(5):
                if route == "auto":
                    act = _ACTS["audit"][lat]
                    dist = _accept(s.changed_accept_share) if act == _A else np.eye(5)[act]
                    out["audit"] += m[lat] * s.audit_rate * dist
                    if lat in w.BAD_LATENT:
                        out["revert"][_V] += m[lat] * (1.0 - s.audit_rate) * revert_rate
                    continue
                act = _ACTS[route][lat]
                dist = _accept(s.changed_accept_share if route != "shadow" else 0.0) if act == _A else np.eye(5)[act]
                two = w.MULTI_INTERVENTION_SHARE if act in (_A, _E, _R) else 0.0
                out[route] += m[lat] * s.review_rate * (1.0 - two) * dist
                out["two_step"] += m[lat] * s.review_rate * two * dist
    return out


# ----------------------------------------------------------------------------- censoring

def _uniform_cdf(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def _uniform_int(y: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Integral of the uniform CDF from 0 to y."""
    return np.where(y <= lo, 0.0, np.where(y <= hi, (y - lo) ** 2 / (2 * (hi - lo)), (hi - lo) / 2 + (y - hi)))


def _review_cdf(x: np.ndarray) -> np.ndarray:
    (fast, mean, floor), (day, lo, hi) = w.REVIEW_DELAY_FAST, w.REVIEW_DELAY_DAY
    z = np.maximum(x - floor, 0.0)
    return fast * (1.0 - np.exp(-z / mean)) + (day - fast) * _uniform_cdf(x, lo, hi) \
        + (1.0 - day) * _uniform_cdf(x, *w.REVIEW_DELAY_SLOW)


def _review_int(y: np.ndarray) -> np.ndarray:
    (fast, mean, floor), (day, lo, hi) = w.REVIEW_DELAY_FAST, w.REVIEW_DELAY_DAY
    z = np.maximum(y - floor, 0.0)
    return fast * (z - mean * (1.0 - np.exp(-z / mean))) + (day - fast) * _uniform_int(y, lo, hi) \
        + (1.0 - day) * _uniform_int(y, *w.REVIEW_DELAY_SLOW)


def _first_step_int(y: np.ndarray) -> np.ndarray:
    """Integral from 0 to y of the CDF of min(review delay, cap)."""
    cap = float(w.FIRST_STEP_CAP)
    return _review_int(np.minimum(y, cap)) + np.maximum(y - cap, 0.0)


def _delay_cdfs(x: np.ndarray) -> dict[str, np.ndarray]:
    """P(delay < x) of each path's last intervention, and of a two-step review's first step."""
    lo, hi = w.SECOND_STEP_DELAY
    share, f_lo, f_hi = w.REVERT_DELAY_FAST
    return {
        # skewed shadow reviews are stamped before their event, so always written
        "shadow": w.CLOCK_SKEW_SHARE + (1.0 - w.CLOCK_SKEW_SHARE) * _uniform_cdf(x, *w.SHADOW_REVIEW_DELAY),
        "human_review": _review_cdf(x),
        "first_step": np.where(x > w.FIRST_STEP_CAP, 1.0, _review_cdf(x)),
        "two_step": (_first_step_int(x - lo) - _first_step_int(x - hi)) / (hi - lo),
        "audit": _uniform_cdf(x, *w.AUDIT_DELAY),
        "revert": share * _uniform_cdf(x, f_lo, f_hi) + (1.0 - share) * _uniform_cdf(x, *w.REVERT_DELAY_SLOW),
    }


def written_probs(days_left: int) -> dict[str, float]:
    """P(each path's intervention is written) for an event dated `days_left` days before the period ends."""
    share, mean, sd = w.TIME_OF_DAY_BUSY
    y = (np.arange(int(DAY_MS / _GRID_MS)) + 0.5) * _GRID_MS
    busy = sum(np.exp(-0.5 * ((y + k * DAY_MS - mean) / sd) ** 2) for k in range(-3, 4)) / (sd * math.sqrt(2 * math.pi))
    weight = share * busy + (1.0 - share) / DAY_MS
    weight /= weight.sum()
    return {path: float(weight @ cdf) for path, cdf in _delay_cdfs(days_left * DAY_MS - y).items()}


def _shares(masses: dict[str, np.ndarray], written: dict[str, float] | None) -> np.ndarray:
    """Expected reviewed outcome counts (unnormalised) given each path's written probability."""
    if written is None:
        return sum(masses.values())
    total = sum(masses[p] * written[p] for p in ("shadow", "human_review", "audit", "revert"))
    total = total + masses["two_step"] * written["two_step"]
    total[_X] += masses["two_step"].sum() * (written["first_step"] - written["two_step"])  # escalated, unresolved
    return total


def _rates(counts: np.ndarray) -> dict[str, float]:
    return dict(zip(REVIEWED_OUTCOMES, (float(x) for x in counts / counts.sum())))


def _segments(s: w.Scenario, days: int, emerging_day: int | None, label: Callable[[int], str], changes: bool
              ) -> dict[str, tuple[tuple[float, ...], float, int | None]]:
    """segment -> (latent outcome probabilities of ok events, emerging share, event day index or None)."""
    by = segment_by(s, changes)
    if by == "prompt_version":
        return {v: (w.outcome_probs(s, v), 0.0, None) for v in ("v1", "v2", "v3", "unversioned")}
    if by == "event_date":
        return {label(d): (s.probs, w.emerging_rate(d, emerging_day), d) for d in range(days)}
    return {"all": (s.probs, 0.0, None)}


def reviewed_outcome_truth(days: int, emerging_day: int | None, label: Callable[[int], str],
                           changes: bool = True) -> dict[str, Any]:
    """The `reviewed_outcome_probs*` entries of truth.json for a `days`-day run (`label(d)` = ISO date).

    `emerging_day` is the emerging failure mode's first day index; a run without `changes` has no
    v3 regression and no emerging mode (and `emerging_day` is ignored).
    """
    complete = complete_days(days)
    written = {d: written_probs(days - d) for d in range(complete, days)}
    probs: dict[str, dict[str, dict[str, float]]] = {}
    by_model: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    censored: dict[str, dict[str, dict[str, dict[str, float]]]] = {label(d): {} for d in written}
    for s in w.SCENARIOS:
        probs[s.name], by_model[s.name] = {}, {}
        for seg, (latent, emerging, day) in _segments(s, days, emerging_day, label, changes).items():
            masses = {name: path_masses(s, latent, emerging, w.MODELS[w.MODEL_INDEX[name]]) for name in s.models}
            mix = {p: sum(share * masses[name][p] for name, share in s.models.items()) for p in PATHS}
            probs[s.name][seg] = _rates(_shares(mix, None))
            by_model[s.name][seg] = {name: _rates(_shares(masses[name], None)) for name in s.models}
            for d, wr in written.items():
                if day is None or day == d:
                    censored[label(d)].setdefault(s.name, {})[seg] = _rates(_shares(mix, wr))
    return {
        "reviewed_outcome_probs": probs,
        "reviewed_outcome_probs_by_model": by_model,
        "reviewed_outcome_probs_segments": {s.name: segment_by(s, changes) for s in w.SCENARIOS},
        "reviewed_outcome_probs_complete_through": label(complete - 1) if complete else None,
        "reviewed_outcome_probs_censored": censored,
        "reviewed_outcome_probs_note": NOTE,
    }


NOTE = (
    "Expected share of each final outcome (outcome_definition) among REVIEWED valid events, i.e. events with at "
    "least one written intervention (final_outcome != 'unreviewed' in truth_labels.parquet); exact for the "
    "generator's model (a ratio of expectations: what a large sample's share converges to). "
    "reviewed_outcome_probs[scenario][segment]: events of all models mixed in their traffic shares; "
    "reviewed_outcome_probs_by_model[scenario][segment][model]: per model (error/timeout rates and the confidence "
    "bias differ by model, so the rates do too). Segments (reviewed_outcome_probs_segments[scenario]): 'all' = "
    "every event of the scenario; 'prompt_version' = by the event's prompt_version (v1, v2, v3, and 'unversioned' "
    "for events logged without one, null in the events), for the scenario the v3 regression hits; 'event_date' = "
    "by the event's UTC date (ISO), for the scenarios the emerging failure mode hits (its daily share grows); "
    "in a run without changes (changes = false) every scenario has the one segment 'all'. "
    "Censoring: interventions dated after the last day are not written and audits, reverts and two-step reviews "
    "come later than reviews, so the reviewed set of the last dates is biased. reviewed_outcome_probs holds once "
    "every review is in, which is exact for event dates up to reviewed_outcome_probs_complete_through (null when "
    "no date is complete); for each later event date, reviewed_outcome_probs_censored[date][scenario][segment] is "
    "the exact share given what is written (same segments; an 'event_date' scenario has just that date)."
)
