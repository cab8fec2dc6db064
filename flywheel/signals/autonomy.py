"""Autonomy decisions: per scenario, the current level and the recommended one.

Every day each scenario's promotion gates are evaluated over the current window and stored
(`signals.gate_evaluations`): enough reviewed events; the Wilson lower bound of accepted-as-is at
or above `promotion.accept_target`; the Wilson upper bound of the severe-failure rate (rejected,
reverted, error) at or below `promotion.severe_max`; the Wilson upper bound of the operational
failure rate (error, timeout, fallback: the AI gave no usable output) at or below
`promotion.operational_max`; no alert-level drift; and, when the next level is `gated`, a
confidence gate with coverage of at least `promotion.gate_min_coverage`.

The level in force when day D is decided is the approvals ledger's latest entry for a day before D
(`ledger.levels_before`), else the level the logs show: re-deciding an old day sees the level it
was decided under, not today's.

The recommendation, in order:
1. above the scenario's `max_level` override: demote to it (rule `policy_max_level`);
2. a demotion trigger (`demote_trigger`): any alert-level drift (at any level above shadow), or,
   where the AI acts alone (gated, autonomous), the accepted-as-is upper bound below
   `demotion.accept_floor`, the severe-failure lower bound above `demotion.severe_limit` or the
   operational-failure lower bound above `demotion.operational_limit`: demote one level at once;
   automatic when `demotion.automatic` (fail safe), recorded as such. One episode, one demotion:
   while a trigger has held on every day since the scenario's last automatic demotion, it is not
   demoted again unless the events that act alone at the level it reached (above the gate when
   gated), on the days after that demotion alone, breach a rate limit (rule `..._new_evidence`);
   otherwise it keeps (rule `..._same_episode_since_<day>`). A day without a trigger ends the episode;
3. every gate held on each of the last `promotion.consecutive_days` days, at the level in force
   (after a promotion the streak starts again): promote one level (rule `promote`), pending a
   human's approval;
4. otherwise keep (rule `hold`, with the gates that failed).
The promotion and demotion bounds are apart (hysteresis), so a scenario between them keeps its level.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from flywheel.config import Settings
from flywheel.contracts import AUTONOMY_LEVELS
from flywheel.engine import connect
from flywheel.objectstore import polars_options, url
from flywheel.signals.drift import existing_partitions, windows
from flywheel.signals.policy import Policy
from flywheel.sql import load_sql
from flywheel.stats import wilson_interval
from flywheel.store import Layout, write_parquet_atomic
from flywheel.tables import CALIBRATION, DAILY_RATES, EVENT_OUTCOMES, GATE_EVALUATIONS

GATE_CHECKS = ("enough_reviewed", "accept_ok", "severe_ok", "operational_ok", "no_alert", "gate_ok")


def level_up(level: str) -> str | None:
    """The autonomy level above `level`, or None at the top."""
    i = AUTONOMY_LEVELS.index(level)
    return AUTONOMY_LEVELS[i + 1] if i + 1 < len(AUTONOMY_LEVELS) else None


def _level_down(level: str) -> str | None:
    i = AUTONOMY_LEVELS.index(level)
    return AUTONOMY_LEVELS[i - 1] if i > 0 else None


def window_counts(settings: Settings, policy: Policy, day: date, start: date | None = None) -> pl.DataFrame:
    """Per scenario over the current window (or the days `start` .. `day`): events, reviewed,
    accepted, severe failures, errors, timeouts, fallbacks, actions taken alone, the level seen most
    in the logs, mean review seconds, and mean daily volume and actions taken alone."""
    layout = Layout(settings.store)
    files = existing_partitions(layout, DAILY_RATES.path, start or windows(policy, day)["current_start"], day)
    if not files:
        return pl.DataFrame()
    with connect(settings) as con:
        return con.sql(load_sql("autonomy_window"), params={"files": files}).pl()


def calibration_gates(settings: Settings, day: date) -> dict[str, dict]:
    """The recommended confidence gate per scenario (all models) for the window ending at `day`."""
    path = Layout(settings.store).table(CALIBRATION.path, day)
    if not path.exists():
        return {}
    frame = pl.read_parquet(url(path), storage_options=polars_options(path))
    if frame.height == 0 or "model" not in frame.columns:
        return {}
    return {r["scenario"]: r for r in frame.filter(pl.col("model") == "*").iter_rows(named=True)}


def _bounds(k: int, n: int) -> tuple[float | None, float | None]:
    if not n:
        return None, None
    lo, hi = wilson_interval(k, n)
    return float(lo), float(hi)


def scenario_gates(counts: dict, policy: Policy, current_level: str, gate: dict | None, alerted: bool,
                   target: float) -> dict:
    """Every promotion gate of one scenario over one window, as a row of `signals.gate_evaluations`
    (without day and scenario), and the demotion trigger that holds at `current_level`.

    `counts` holds the window's sums: events, reviewed, accepted, severe_failures, and errors,
    timeouts, fallbacks (operational failures: the AI gave no usable output, `004` section 6).
    `gate` is the calibration row (gate_threshold, gate_coverage) or None; `alerted` whether an
    alert-level drift signal fired. Pure: the benchmark and the backtest call it as the run does.
    """
    events, reviewed = int(counts.get("events") or 0), int(counts.get("reviewed") or 0)
    accepted, severe = int(counts.get("accepted") or 0), int(counts.get("severe_failures") or 0)
    operational = sum(int(counts.get(k) or 0) for k in ("errors", "timeouts", "fallbacks"))
    acc_lo, acc_hi = _bounds(accepted, reviewed)
    sev_lo, sev_hi = _bounds(severe, events)
    op_lo, op_hi = _bounds(operational, events)
    nxt = level_up(current_level)
    gate = gate or {}
    needs_gate = nxt == "gated"
    row = {
        "current_level": current_level, "next_level": nxt, "reviewed": reviewed, "events": events,
        "accepted": accepted, "severe_failures": severe,
        "accepted_rate": accepted / reviewed if reviewed else None, "accepted_lo": acc_lo, "accepted_hi": acc_hi,
        "severe_rate": severe / events if events else None, "severe_lo": sev_lo, "severe_hi": sev_hi,
        "operational_failures": operational, "operational_rate": operational / events if events else None,
        "operational_lo": op_lo, "operational_hi": op_hi,
        "accept_target": target, "severe_max": policy.promotion.severe_max,
        "operational_max": policy.promotion.operational_max,
        "gate_threshold": gate.get("gate_threshold"), "gate_coverage": gate.get("gate_coverage"),
        "enough_reviewed": reviewed >= policy.promotion.min_reviewed,
        "accept_ok": acc_lo is not None and acc_lo >= target,
        "severe_ok": sev_hi is not None and sev_hi <= policy.promotion.severe_max,
        "operational_ok": op_hi is not None and op_hi <= policy.promotion.operational_max,
        "no_alert": not alerted,
        "gate_ok": (not needs_gate) or (gate.get("gate_threshold") is not None
                                        and (gate.get("gate_coverage") or 0) >= policy.promotion.gate_min_coverage),
    }
    row["all_pass"] = all(row[k] for k in GATE_CHECKS)
    row["demote_trigger"] = demote_trigger(row, policy, alerted)
    return row


def demote_trigger(row: dict, policy: Policy, alerted: bool) -> str | None:
    """The rule that demotes a scenario at `row["current_level"]` on this evidence, or None:
    an alert-level drift (above shadow); where the AI acts alone (gated, autonomous), the
    accepted-as-is upper bound below `demotion.accept_floor`, the severe-failure lower bound above
    `demotion.severe_limit`, or the operational-failure (error, timeout, fallback) lower bound above
    `demotion.operational_limit`."""
    level = row["current_level"]
    if level == "shadow":
        return None
    if alerted:
        return "demote_drift_alert"
    return rate_trigger(row, policy)


def rate_trigger(row: dict, policy: Policy) -> str | None:
    """The rate-based demotion rule that holds on `row`'s counts where the AI acts alone, or None."""
    if row["current_level"] not in ("gated", "autonomous"):
        return None
    d = policy.demotion
    if row["reviewed"] >= d.min_reviewed and row["accepted_hi"] is not None and row["accepted_hi"] < d.accept_floor:
        return "demote_accept_floor"
    if row["events"] >= d.min_reviewed and row["severe_lo"] is not None and row["severe_lo"] > d.severe_limit:
        return "demote_severe_limit"
    if row["events"] >= d.min_reviewed and row["operational_lo"] is not None and row["operational_lo"] > d.operational_limit:
        return "demote_operational_limit"
    return None


def evaluate_gates(settings: Settings, policy: Policy, day: date, drift: pl.DataFrame,
                   current_levels: dict[str, str]) -> pl.DataFrame:
    """Write and return the promotion gate evaluation of every scenario for `day` (with its schema
    when there is none)."""
    counts = window_counts(settings, policy, day)
    gates = calibration_gates(settings, day)
    alerts = set(drift.filter(pl.col("severity") == "alert")["scenario"].to_list()) if drift.height else set()
    rows = []
    for r in counts.iter_rows(named=True) if counts.height else []:
        scenario = r["scenario"]
        target = policy.for_scenario(scenario).accept_target or policy.promotion.accept_target
        current = current_levels.get(scenario, r["logged_level"])
        rows.append({"day": day, "scenario": scenario,
                     **scenario_gates(r, policy, current, gates.get(scenario), scenario in alerts, target)})
    frame = pl.DataFrame(rows, schema=GATE_EVALUATIONS.polars_schema())
    write_parquet_atomic(frame.to_arrow(), Layout(settings.store).table(GATE_EVALUATIONS.path, day))
    return frame


_STREAK_COLUMNS = ("scenario", "current_level", "all_pass", "demote_trigger")


def _gate_rows(settings: Settings, scenario: str, days: list[date]) -> dict[date, dict | None]:
    """The scenario's stored gate evaluation on each of `days` (None where it has none)."""
    layout = Layout(settings.store)
    stored = set(layout.days(GATE_EVALUATIONS.path, min(days), max(days))) if days else set()
    out: dict[date, dict | None] = {}
    for d in days:
        path = layout.table(GATE_EVALUATIONS.path, d)
        row = None
        if d in stored:  # only what the streak and the episode read, not the whole evaluation
            scan = pl.scan_parquet(url(path), storage_options=polars_options(path))
            frame = scan.select([c for c in _STREAK_COLUMNS if c in scan.collect_schema()]).collect()
            if frame.height and "scenario" in frame.columns:
                part = frame.filter(pl.col("scenario") == scenario)
                row = part.row(0, named=True) if part.height else None
        out[d] = row
    return out


def passed_days(settings: Settings, scenario: str, day: date, n: int, level: str | None = None) -> int:
    """How many of the `n` days ending at `day` had every promotion gate pass for `scenario` (at
    `level` when given: a promotion's streak starts again at the level it reached)."""
    rows = _gate_rows(settings, scenario, [day - timedelta(days=i) for i in range(n)])
    return sum(1 for r in rows.values() if r is not None and r.get("all_pass")
               and (level is None or r.get("current_level") == level))


def in_episode(settings: Settings, scenario: str, demoted_on: date, day: date) -> bool:
    """Whether the demotion of `demoted_on` is still the scenario's current episode on `day`: a
    demotion trigger held on every day from `demoted_on` to the day before `day` (a day without a
    gate evaluation for the scenario brings no evidence either way and does not end it)."""
    days = [demoted_on + timedelta(days=i) for i in range((day - demoted_on).days)]
    rows = _gate_rows(settings, scenario, days)
    return all(r is None or r.get("demote_trigger") is not None for r in rows.values())


def recommend_levels(settings: Settings, policy: Policy, day: date, gates: pl.DataFrame,
                     drift: pl.DataFrame, last_demotions: dict[str, str] | None = None) -> list[dict]:
    """One autonomy recommendation per scenario, with its rule and evidence (`autonomy_rule`).

    `last_demotions` maps a scenario to the day (ISO) of its latest automatic demotion before `day`.
    While that demotion's episode lasts (`in_episode`), the same evidence does not demote again:
    only a rate trigger on the days after the demotion alone (new evidence, at the new level) does.
    The evidence holds every input of the rule, so `autonomy_rule` can replay it (`explain`).
    """
    last_demotions = last_demotions or {}
    out = []
    for g in gates.iter_rows(named=True) if gates.height else []:
        scenario, current = g["scenario"], g["current_level"]
        alerts = drift.filter((pl.col("scenario") == scenario) & (pl.col("severity") == "alert")) if drift.height else drift
        evidence = {k: g[k] for k in EVIDENCE_FIELDS}
        evidence["alerts"] = [f"{r['signal']} ({r['model']}/{r['prompt_version']}): {r['baseline_value']} -> {r['current_value']}"
                              for r in alerts.iter_rows(named=True)] if alerts.height else []
        evidence["days_passed"] = passed_days(settings, scenario, day, policy.promotion.consecutive_days, current)
        evidence["days_required"] = policy.promotion.consecutive_days
        episode = None
        if g["demote_trigger"] and scenario in last_demotions:
            demoted_on = date.fromisoformat(last_demotions[scenario])
            if in_episode(settings, scenario, demoted_on, day):
                episode = {"demoted_on": demoted_on.isoformat(), "new_evidence": None, "since_demotion": None}
                counts = acting_alone_since(settings, scenario, current, g["gate_threshold"], demoted_on, day)
                if counts is not None:
                    row = scenario_gates(counts, policy, current, None, False, g["accept_target"])
                    episode["new_evidence"] = rate_trigger(row, policy)
                    episode["since_demotion"] = {"acting_alone_at": current, "gate_threshold": g["gate_threshold"],
                                                 **{k: row[k] for k in ("reviewed", "events", "accepted_hi",
                                                                        "severe_lo", "operational_lo")}}
        evidence["episode"] = episode
        recommended, rule, action = autonomy_rule(scenario, g, policy, evidence["days_passed"], episode)
        out.append({"kind": "autonomy", "scenario": scenario, "subject": scenario, "current": current,
                    "recommended": recommended, "action": action, "rule": rule, "evidence": evidence})
    return out


def acting_alone_since(settings: Settings, scenario: str, level: str, gate: float | None, demoted_on: date,
                       day: date) -> dict | None:
    """The counts of the scenario's events from the day after `demoted_on` to `day` that act alone
    at `level`: all of them when autonomous, those at or above the confidence `gate` when gated;
    None when nothing acts alone there (assist, shadow, or gated without a gate). Only these can
    be new evidence against the level a demotion reached: the rest are reviewed before they act."""
    if level not in ("gated", "autonomous") or (level == "gated" and gate is None):
        return None
    layout = Layout(settings.store)
    files = existing_partitions(layout, EVENT_OUTCOMES.path, demoted_on + timedelta(days=1), day)
    if not files:
        return None
    with connect(settings) as con:
        rel = con.execute(load_sql("acting_alone_counts"), {
            "files": files, "scenario": scenario, "all": level == "autonomous", "gate": gate if gate is not None else 0.0})
        names = [d[0] for d in rel.description]
        return dict(zip(names, rel.fetchone()))


# What an autonomy decision's evidence keeps of its gate row: with the counts, the alerts, the
# streak and the episode, everything `autonomy_rule` reads.
EVIDENCE_FIELDS = ("reviewed", "events", "accepted", "severe_failures", "operational_failures", "accepted_rate",
                   "accepted_lo", "accepted_hi", "severe_rate", "severe_lo", "severe_hi", "operational_rate",
                   "operational_lo", "operational_hi", "accept_target", "severe_max", "operational_max",
                   "gate_threshold", "gate_coverage", *GATE_CHECKS, "demote_trigger")


def autonomy_rule(scenario: str, g: dict, policy: Policy, days_passed: int, episode: dict | None) -> tuple[str, str, str]:
    """(recommended level, rule, action) for one scenario from its gate row `g` (current_level,
    next_level, the GATE_CHECKS, all_pass, demote_trigger), the days its gates passed in a row and
    its demotion episode ({demoted_on, new_evidence} while the last demotion's episode lasts, else
    None). Pure: the nightly run, the backtest and `decisions explain` all decide through it."""
    current = g["current_level"]
    override = policy.for_scenario(scenario)
    floor = override.min_level or "shadow"
    down = _level_down(current)
    demote_reason = g["demote_trigger"]
    held = None
    if demote_reason and episode is not None:
        if episode.get("new_evidence"):
            demote_reason = f"{episode['new_evidence']}_new_evidence"
        else:
            held = f"{demote_reason}_same_episode_since_{episode['demoted_on']}"
            demote_reason = None
    if override.max_level and AUTONOMY_LEVELS.index(current) > AUTONOMY_LEVELS.index(override.max_level):
        return override.max_level, "policy_max_level", "demote"
    if demote_reason and down and AUTONOMY_LEVELS.index(down) >= AUTONOMY_LEVELS.index(floor):
        return down, demote_reason, "demote"
    if demote_reason:
        return current, f"{demote_reason}_at_floor", "keep"
    if held:
        return current, held, "keep"
    required = policy.promotion.consecutive_days
    capped = override.max_level and AUTONOMY_LEVELS.index(current) >= AUTONOMY_LEVELS.index(override.max_level)
    if days_passed >= required and g["next_level"] and not capped:
        return g["next_level"], "promote", "promote"
    if capped and g["all_pass"]:
        return current, "hold_policy_max_level", "keep"
    failing = [k for k in GATE_CHECKS if not g[k]]
    return current, "hold" + (": " + ", ".join(failing) if failing else f": {days_passed} of {required} days"), "keep"
