"""Autonomy decisions: per scenario, the current level and the recommended one.

Every day each scenario's promotion gates are evaluated over the current window and stored
(`signals.gate_evaluations`): enough reviewed events; the Wilson lower bound of accepted-as-is at
or above `promotion.accept_target`; the Wilson upper bound of the severe-failure rate (rejected,
reverted, error) at or below `promotion.severe_max`; no alert-level drift; and, when the next level
is `gated`, a confidence gate with coverage of at least `promotion.gate_min_coverage`.

The recommendation, in order:
1. above the scenario's `max_level` override: demote to it (rule `policy_max_level`);
2. any alert-level drift (at any level above shadow), or, for a scenario where the AI acts alone
   (gated, autonomous), the accepted-as-is upper bound below `demotion.accept_floor` or the
   severe-failure lower bound above `demotion.severe_limit`: demote one level at once (rules
   `demote_drift_alert`, `demote_accept_floor`, `demote_severe_limit`); automatic when
   `demotion.automatic` (fail safe), recorded as such; an automatic demotion already applied
   within the current window is not repeated for the same episode;
3. every gate held on each of the last `promotion.consecutive_days` days: promote one level
   (rule `promote`), pending a human's approval;
4. otherwise keep (rule `hold`, with the gates that failed).
The promotion and demotion bounds are apart (hysteresis), so a scenario between them keeps its level.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from flywheel.config import Settings
from flywheel.contracts import AUTONOMY_LEVELS
from flywheel.engine import connect
from flywheel.outcomes.calibration import TABLE as CALIBRATION
from flywheel.outcomes.rates import DAILY
from flywheel.signals.drift import _files, windows
from flywheel.signals.policy import Policy
from flywheel.stats import wilson_interval
from flywheel.store import Layout, write_parquet_atomic

GATES = "signals/gate_evaluations"


def _level_up(level: str) -> str | None:
    i = AUTONOMY_LEVELS.index(level)
    return AUTONOMY_LEVELS[i + 1] if i + 1 < len(AUTONOMY_LEVELS) else None


def _level_down(level: str) -> str | None:
    i = AUTONOMY_LEVELS.index(level)
    return AUTONOMY_LEVELS[i - 1] if i > 0 else None


def window_counts(settings: Settings, policy: Policy, day: date) -> pl.DataFrame:
    """Per scenario over the current window: events, reviewed, accepted, severe failures, the
    level seen most in the logs, mean review seconds and mean daily volume."""
    layout = Layout(settings.store)
    w = windows(policy, day)
    files = _files(layout, DAILY, w["current_start"], day)
    if not files:
        return pl.DataFrame()
    return connect(settings).sql("""
        SELECT scenario, sum(events)::BIGINT AS events, sum(reviewed)::BIGINT AS reviewed, sum(accepted)::BIGINT AS accepted,
               sum(severe_failures)::BIGINT AS severe_failures, sum(acted_alone)::BIGINT AS acted_alone,
               arg_max(autonomy_level, events) AS logged_level,
               sum(review_seconds_sum)::DOUBLE / nullif(sum(reviewed)::BIGINT, 0) AS review_seconds_mean,
               sum(events)::BIGINT / count(DISTINCT event_date) AS events_per_day,
               sum(acted_alone)::BIGINT / count(DISTINCT event_date) AS acted_alone_per_day
        FROM (SELECT scenario, autonomy_level, event_date, sum(events)::BIGINT AS events, sum(reviewed)::BIGINT AS reviewed,
                     sum(accepted)::BIGINT AS accepted, sum(severe_failures)::BIGINT AS severe_failures,
                     sum(acted_alone)::BIGINT AS acted_alone, sum(review_seconds_sum)::DOUBLE AS review_seconds_sum
              FROM read_parquet($files, union_by_name = true) GROUP BY ALL)
        GROUP BY scenario ORDER BY scenario""", params={"files": files}).pl()


def calibration_gates(settings: Settings, day: date) -> dict[str, dict]:
    """The recommended confidence gate per scenario (all models) for the window ending at `day`."""
    path = Layout(settings.store).table(CALIBRATION, day)
    if not path.exists():
        return {}
    frame = pl.read_parquet(path).filter(pl.col("model") == "*")
    return {r["scenario"]: r for r in frame.iter_rows(named=True)}


def evaluate_gates(settings: Settings, policy: Policy, day: date, drift: pl.DataFrame,
                   current_levels: dict[str, str]) -> pl.DataFrame:
    """Write and return the promotion gate evaluation of every scenario for `day`."""
    counts = window_counts(settings, policy, day)
    gates = calibration_gates(settings, day)
    alerts = set(drift.filter(pl.col("severity") == "alert")["scenario"].to_list()) if drift.height else set()
    rows = []
    for r in counts.iter_rows(named=True):
        scenario = r["scenario"]
        target = policy.for_scenario(scenario).accept_target or policy.promotion.accept_target
        acc_lo, acc_hi = (float(x) for x in wilson_interval(r["accepted"], r["reviewed"]))
        sev_lo, sev_hi = (float(x) for x in wilson_interval(r["severe_failures"], r["events"]))
        current = current_levels.get(scenario, r["logged_level"])
        nxt = _level_up(current)
        gate = gates.get(scenario) or {}
        needs_gate = nxt == "gated"
        gate_ok = (not needs_gate) or (gate.get("gate_threshold") is not None
                                       and (gate.get("gate_coverage") or 0) >= policy.promotion.gate_min_coverage)
        row = {
            "day": day, "scenario": scenario, "current_level": current, "next_level": nxt,
            "reviewed": r["reviewed"], "events": r["events"],
            "accepted_rate": r["accepted"] / r["reviewed"] if r["reviewed"] else None,
            "accepted_lo": None if r["reviewed"] == 0 else acc_lo, "accepted_hi": None if r["reviewed"] == 0 else acc_hi,
            "severe_rate": r["severe_failures"] / r["events"] if r["events"] else None,
            "severe_lo": None if r["events"] == 0 else sev_lo, "severe_hi": None if r["events"] == 0 else sev_hi,
            "accept_target": target, "severe_max": policy.promotion.severe_max,
            "gate_threshold": gate.get("gate_threshold"), "gate_coverage": gate.get("gate_coverage"),
            "enough_reviewed": r["reviewed"] >= policy.promotion.min_reviewed,
            "accept_ok": r["reviewed"] > 0 and acc_lo >= target,
            "severe_ok": r["events"] > 0 and sev_hi <= policy.promotion.severe_max,
            "no_alert": scenario not in alerts,
            "gate_ok": gate_ok,
        }
        row["all_pass"] = all(row[k] for k in ("enough_reviewed", "accept_ok", "severe_ok", "no_alert", "gate_ok"))
        rows.append(row)
    frame = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
    write_parquet_atomic(frame.to_arrow(), Layout(settings.store).table(GATES, day))
    return frame


def passed_days(settings: Settings, scenario: str, day: date, n: int) -> int:
    """How many of the `n` days ending at `day` had every promotion gate pass for `scenario`."""
    layout = Layout(settings.store)
    passed = 0
    for i in range(n):
        path = layout.table(GATES, day - timedelta(days=i))
        if not path.exists():
            continue
        frame = pl.read_parquet(path)
        if frame.height and frame.filter((pl.col("scenario") == scenario) & pl.col("all_pass")).height:
            passed += 1
    return passed


def recommend_levels(settings: Settings, policy: Policy, day: date, gates: pl.DataFrame,
                     drift: pl.DataFrame, recent_demotions: dict[str, str] | None = None) -> list[dict]:
    """One autonomy recommendation per scenario, with its rule and evidence.

    `recent_demotions` maps a scenario to the day of an automatic demotion already applied within
    the current window: the same episode does not demote it again (no cascade to shadow).
    """
    recent_demotions = recent_demotions or {}
    out = []
    for g in gates.iter_rows(named=True) if gates.height else []:
        scenario, current = g["scenario"], g["current_level"]
        override = policy.for_scenario(scenario)
        alerts = drift.filter((pl.col("scenario") == scenario) & (pl.col("severity") == "alert")) if drift.height else drift
        evidence = {k: g[k] for k in ("reviewed", "events", "accepted_rate", "accepted_lo", "accepted_hi", "severe_rate",
                                      "severe_lo", "severe_hi", "accept_target", "severe_max", "gate_threshold",
                                      "gate_coverage", "enough_reviewed", "accept_ok", "severe_ok", "no_alert", "gate_ok")}
        evidence["alerts"] = [f"{r['signal']} ({r['model']}/{r['prompt_version']}): {r['baseline_value']} -> {r['current_value']}"
                              for r in alerts.iter_rows(named=True)] if alerts.height else []
        recommended, rule, action = current, "hold", "keep"
        floor = override.min_level or "shadow"
        down = _level_down(current)
        demote_reason = None
        acts_alone = current in ("gated", "autonomous")
        if alerts.height:
            demote_reason = "demote_drift_alert"
        elif acts_alone and g["reviewed"] >= policy.demotion.min_reviewed and g["accepted_hi"] is not None \
                and g["accepted_hi"] < policy.demotion.accept_floor:
            demote_reason = "demote_accept_floor"
        elif acts_alone and g["events"] >= policy.demotion.min_reviewed and g["severe_lo"] is not None \
                and g["severe_lo"] > policy.demotion.severe_limit:
            demote_reason = "demote_severe_limit"
        if override.max_level and AUTONOMY_LEVELS.index(current) > AUTONOMY_LEVELS.index(override.max_level):
            recommended, rule, action = override.max_level, "policy_max_level", "demote"
        elif demote_reason and scenario in recent_demotions:
            rule = f"{demote_reason}_already_demoted_{recent_demotions[scenario]}"
            evidence["demoted_on"] = recent_demotions[scenario]
        elif demote_reason and down and AUTONOMY_LEVELS.index(down) >= AUTONOMY_LEVELS.index(floor):
            recommended, rule, action = down, demote_reason, "demote"
        elif demote_reason:
            rule = f"{demote_reason}_at_floor"
        else:
            streak = passed_days(settings, scenario, day, policy.promotion.consecutive_days)
            evidence["days_passed"] = streak
            evidence["days_required"] = policy.promotion.consecutive_days
            capped = override.max_level and AUTONOMY_LEVELS.index(current) >= AUTONOMY_LEVELS.index(override.max_level)
            if streak >= policy.promotion.consecutive_days and g["next_level"] and not capped:
                recommended, rule, action = g["next_level"], "promote", "promote"
            elif capped and g["all_pass"]:
                rule = "hold_policy_max_level"
            else:
                failing = [k for k in ("enough_reviewed", "accept_ok", "severe_ok", "no_alert", "gate_ok") if not g[k]]
                rule = "hold" + (": " + ", ".join(failing) if failing else f": {streak} of {policy.promotion.consecutive_days} days")
        out.append({"kind": "autonomy", "scenario": scenario, "subject": scenario, "current": current,
                    "recommended": recommended, "action": action, "rule": rule, "evidence": evidence})
    return out
