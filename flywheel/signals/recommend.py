"""The other recommendations, each with its rule and evidence:

- confidence gate (gated scenarios): the calibration's threshold and coverage, and the review hours
  it takes off humans per day beyond today's = (coverage x daily volume - events acting alone today)
  x mean review time (the events above the gate in force already skip review);
- audit sampling (gated and autonomous): the share of the AI's own actions to send to a human so a
  rise of the severe-failure rate by `audit.detect_increase` is detected within `audit.within_days`
  days with power `audit.power` at level `audit.alpha` (one-sided, normal approximation);
- prompt and model versions: where a scenario ran two or more in the baseline and current windows
  (a rollout is compared with what it replaced), each is compared with the best by accepted-as-is
  within strata (the other dimension x day: Cochran-Mantel-Haenszel), Holm over a scenario's
  comparisons at `versions.alpha`: `roll_back` a newer version that
  is significantly worse by at least `versions.min_effect`, `promote` the best when an older one is
  worse, `keep` when no difference is shown, `not_enough_data` under `versions.min_reviewed`;
- tool boundaries (per tool, and tool x scenario): `disable` when the error rate's Wilson lower
  bound exceeds `tools.disable_error_rate`; `require_approval` when the error, denial or
  severe-outcome rate's lower bound exceeds its limit; else `allow` (with fewer than
  `tools.min_calls` calls: `allow`, rule `not_enough_data`).
"""

from __future__ import annotations

from datetime import date

import polars as pl

from flywheel.config import Settings
from flywheel.engine import connect
from flywheel.signals.drift import existing_partitions, windows
from flywheel.signals.policy import Policy
from flywheel.signals.stattests import audit_sample_size
from flywheel.sql import load_sql
from flywheel.stats import holm, mantel_haenszel, wilson_interval
from flywheel.store import Layout
from flywheel.tables import DAILY_RATES, EVENT_OUTCOMES


def gate_and_audit(policy: Policy, counts: pl.DataFrame, gates: dict[str, dict], levels: dict[str, str]) -> list[dict]:
    """Confidence-gate and audit-sampling recommendations for gated and autonomous scenarios."""
    out = []
    for r in counts.iter_rows(named=True) if counts.height else []:
        scenario = r["scenario"]
        level = levels.get(scenario, r["logged_level"])
        if level not in ("gated", "autonomous"):
            continue
        gate = gates.get(scenario) or {}
        if level == "gated":
            threshold, coverage = gate.get("gate_threshold"), gate.get("gate_coverage")
            hours, gross = _review_hours_saved(coverage, r["events_per_day"], r["acted_alone_per_day"],
                                               r["review_seconds_mean"])
            out.append({"kind": "gate", "scenario": scenario, "subject": scenario, "current": None,
                        "recommended": None if threshold is None else f"{threshold:.4f}",
                        "action": "set_gate" if threshold is not None else "no_gate",
                        "rule": "calibration_gate" if threshold is not None else "no_threshold_qualifies",
                        "evidence": {"threshold": threshold, "coverage": coverage, "gate_target": gate.get("gate_target"),
                                     "sample_size": gate.get("gate_sample_size"), "lower_bound": gate.get("gate_lower_bound"),
                                     "events_per_day": r["events_per_day"], "review_seconds_mean": r["review_seconds_mean"],
                                     "acted_alone_per_day": r["acted_alone_per_day"],
                                     "review_hours_saved_per_day": hours,
                                     "review_hours_off_full_review_per_day": gross}})
        base = r["severe_failures"] / r["events"] if r["events"] else 0.0
        n = audit_sample_size(base, policy.audit.detect_increase, policy.audit.alpha, policy.audit.power)
        alone = (r["acted_alone_per_day"] or 0) * policy.audit.within_days
        share = 1.0 if alone <= 0 else min(1.0, max(policy.audit.min_share, n / alone))
        out.append({"kind": "audit", "scenario": scenario, "subject": scenario, "current": None,
                    "recommended": f"{share:.4f}", "action": "set_audit_share", "rule": "audit_power",
                    "evidence": {"severe_rate": base, "detect_increase": policy.audit.detect_increase,
                                 "within_days": policy.audit.within_days, "power": policy.audit.power,
                                 "alpha": policy.audit.alpha, "audits_needed": n,
                                 "acted_alone_per_day": r["acted_alone_per_day"], "share": share}})
    return out


def _review_hours_saved(coverage: float | None, events_per_day: float, acted_alone_per_day: float | None,
                        review_seconds_mean: float | None) -> tuple[float | None, float | None]:
    """(hours a day the gate takes off humans beyond what already skips review, hours it takes off
    a full review): in a gated scenario the events above the gate in force already act alone, so
    only coverage x volume - acted alone today is new work saved (never below 0)."""
    if coverage is None:
        return None, None
    seconds = review_seconds_mean or 0.0
    gross = coverage * events_per_day * seconds / 3600
    extra = max(0.0, coverage * events_per_day - (acted_alone_per_day or 0.0)) * seconds / 3600
    return extra, gross


def versions(settings: Settings, policy: Policy, day: date) -> list[dict]:
    """Prompt-version and model recommendations per scenario.

    Versions are compared within strata, never pooled: a prompt version with each model on each
    day, a model with each prompt version on each day (Cochran-Mantel-Haenszel test and
    Mantel-Haenszel risk difference), so a version is not blamed for the model or the day it ran
    with. When two versions never ran on the same day (a full switch), the strata are the other
    dimension alone, and the evidence says so (`stratified_by`). The best version is the one whose
    stratified differences against the others are largest on average; each other version is
    compared with it, and Holm's procedure holds the family-wise error of a scenario's comparisons
    at `versions.alpha`.
    """
    layout = Layout(settings.store)
    w = windows(policy, day)
    files = existing_partitions(layout, DAILY_RATES.path, w["baseline_start"], day)
    if not files:
        return []
    with connect(settings) as con:
        frame = con.sql(load_sql("version_counts"), params={"files": files, "history": files}).pl()
    return version_decisions(frame, policy)


def version_decisions(frame: pl.DataFrame, policy: Policy) -> list[dict]:
    """The recommendations of `versions` from its counts: one row per scenario, dimension
    ('prompt_version' or 'model'), version, other (the other dimension's value) and event_date, with
    reviewed, accepted and first_seen (flywheel/sql/version_counts.sql). Pure."""
    out = []
    for (scenario, dimension), part in sorted(frame.partition_by(["scenario", "dimension"], as_dict=True).items()):
        strata = {v: {(r["other"], r["event_date"]): (r["accepted"], r["reviewed"]) for r in g.iter_rows(named=True)}
                  for (v,), g in part.partition_by(["version"], as_dict=True).items()}
        if len(strata) < 2:
            continue
        rows = (part.group_by("version").agg(pl.col("reviewed").sum(), pl.col("accepted").sum(), pl.col("first_seen").min())
                .sort("version").to_dicts())
        enough = [r for r in rows if r["reviewed"] >= policy.versions.min_reviewed]
        compare = {(a["version"], b["version"]): _stratified(strata[a["version"]], strata[b["version"]])
                   for a in enough for b in enough if a is not b}
        best = max(enough, key=lambda r: (_mean_advantage(r, enough, compare), r["accepted"] / r["reviewed"]), default=None)
        others = [r for r in enough if r is not best]
        # Holm over every pair, not only best-versus-other: the best is chosen on the same data, so
        # the comparisons it takes part in are any of the k(k-1)/2 pairs
        pairs = [(a["version"], b["version"]) for i, a in enumerate(enough) for b in enough[i + 1:]]
        rejected = dict(zip(pairs, holm([compare[p]["p_value"] for p in pairs], policy.versions.alpha)))
        worse = {r["version"]: rejected.get((best["version"], r["version"]), rejected.get((r["version"], best["version"])))
                 for r in others}
        latest = max(r["first_seen"] for r in rows)
        newest_rows = [r for r in rows if r["first_seen"] == latest]
        # a rollout is a version first seen after every other one; with a tie there is none
        newest = newest_rows[0] if len(newest_rows) == 1 and latest > min(r["first_seen"] for r in rows) else None
        for r in rows:
            ev = {"reviewed": r["reviewed"], "accepted": r["accepted"], "first_seen": str(r["first_seen"]),
                  "accepted_rate": r["accepted"] / r["reviewed"] if r["reviewed"] else None,
                  "min_reviewed": policy.versions.min_reviewed, "alpha": policy.versions.alpha,
                  "min_effect": policy.versions.min_effect, "comparisons": len(enough) * (len(enough) - 1) // 2,
                  "correction": "holm over every pair"}
            if r["reviewed"] < policy.versions.min_reviewed or best is None:
                action, rule = "not_enough_data", "min_reviewed"
            elif r is best:
                beaten = [o["version"] for o in others
                          if _significantly_worse(compare[r["version"], o["version"]], worse[o["version"]], policy)]
                action, rule = ("promote", "best_significantly_better") if beaten else ("keep", "no_significant_difference")
                ev["significantly_better_than"] = beaten
            else:
                c = compare[best["version"], r["version"]]
                ev.update(compared_with=best["version"], z=c["z"], p_value=c["p_value"], effect=c["difference"],
                          strata=c["strata"], stratified_by=c["stratified_by"], holm_rejected=worse[r["version"]])
                if _significantly_worse(c, worse[r["version"]], policy):
                    action, rule = ("roll_back", "newest_significantly_worse") if r is newest else ("retire", "significantly_worse")
                else:
                    action, rule = "keep", "no_significant_difference"
            out.append({"kind": dimension, "scenario": scenario, "subject": r["version"], "current": None,
                        "recommended": action, "action": action, "rule": rule, "evidence": ev})
    return out


def _mean_advantage(r: dict, enough: list[dict], compare: dict) -> float:
    """The mean stratified difference of version r over every other (comparable) version."""
    diffs = [compare[o["version"], r["version"]]["difference"] for o in enough
             if o is not r and compare[o["version"], r["version"]]["strata"]]
    return sum(diffs) / len(diffs) if diffs else 0.0


def _stratified(a: dict, b: dict) -> dict:
    """Mantel-Haenszel comparison of version b with version a over their shared (other, day) strata;
    over the other dimension alone when they share no day."""
    shared = sorted(set(a) & set(b), key=str)
    by = "other_and_day"
    if not shared:
        a, b = _by_other(a), _by_other(b)
        shared, by = sorted(set(a) & set(b), key=str), "other"
    result = mantel_haenszel([a[s][0] for s in shared], [a[s][1] for s in shared],
                             [b[s][0] for s in shared], [b[s][1] for s in shared])
    return {**result, "stratified_by": by}


def _by_other(counts: dict) -> dict:
    out: dict = {}
    for (other, _), (k, n) in counts.items():
        out[other] = (out.get(other, (0, 0))[0] + k, out.get(other, (0, 0))[1] + n)
    return out


def _significantly_worse(comparison: dict, rejected: bool, policy: Policy) -> bool:
    """Worse than the version it was compared with: Holm rejected equality in the scenario's family
    and the stratified difference is at least `versions.min_effect` below."""
    return rejected and comparison["strata"] > 0 and comparison["difference"] <= -policy.versions.min_effect


def tools(settings: Settings, policy: Policy, day: date) -> list[dict]:
    """Tool-boundary recommendations per tool (scenario '*') and per tool x scenario."""
    layout = Layout(settings.store)
    w = windows(policy, day)
    events = existing_partitions(layout, "events", w["current_start"], day)
    outcomes = existing_partitions(layout, EVENT_OUTCOMES.path, w["current_start"], day)
    if not events or not outcomes:
        return []
    with connect(settings) as con:
        frame = con.sql(load_sql("tool_usage"), params={"events": events, "outcomes": outcomes}).pl()
    t = policy.tools
    out = []
    for r in frame.iter_rows(named=True):
        err_lo = float(wilson_interval(r["errors"], r["calls"])[0])
        den_lo = float(wilson_interval(r["denied"], r["calls"])[0])
        sev_lo = float(wilson_interval(r["severe_events"], r["events_using"])[0])
        ev = {"calls": r["calls"], "errors": r["errors"], "denied": r["denied"], "events_using": r["events_using"],
              "severe_events": r["severe_events"], "error_rate": r["errors"] / r["calls"],
              "denial_rate": r["denied"] / r["calls"], "severe_rate": r["severe_events"] / r["events_using"],
              "error_lo": err_lo, "denial_lo": den_lo, "severe_lo": sev_lo,
              "limits": t.model_dump()}
        if r["calls"] < t.min_calls:
            action, rule = "allow", "not_enough_data"
        elif err_lo > t.disable_error_rate:
            action, rule = "disable", "error_rate_above_disable_limit"
        elif err_lo > t.approval_error_rate:
            action, rule = "require_approval", "error_rate_above_limit"
        elif den_lo > t.approval_denial_rate:
            action, rule = "require_approval", "denial_rate_above_limit"
        elif sev_lo > t.approval_severe_rate:
            action, rule = "require_approval", "severe_outcomes_above_limit"
        else:
            action, rule = "allow", "within_limits"
        out.append({"kind": "tool", "scenario": r["scenario"] or "*", "subject": r["tool"], "current": None,
                    "recommended": action, "action": action, "rule": rule, "evidence": ev})
    return out
