"""The analyst-facing views of the `signals` schema: drift, gate evaluations, decisions, the
decision log and the approvals ledger."""

from __future__ import annotations

from flywheel.catalog import View


def signal_views() -> list[View]:
    """The views of the `signals` schema."""
    window = {"day": "The run's data day (end of the current window).",
              "current_start": "First day of the current window.",
              "baseline_start": "First day of the baseline window.", "baseline_end": "Last day of the baseline window.",
              "policy_version": "Version of the policy file in force."}
    decision_cols = {
        "decision_id": "Stable id of the decision (same day, subject, action and policy give the same id).",
        "day": "The data day it was decided for.", "kind": "autonomy, gate, audit, prompt_version, model or tool.",
        "scenario": "The scenario ('*' for a tool across scenarios).",
        "subject": "What it is about: the scenario, a version, a model or a tool.",
        "current": "The level in force (autonomy decisions).",
        "recommended": "The recommended level, gate, share or action.",
        "action": "promote, demote, keep, set_gate, no_gate, set_audit_share, roll_back, retire, not_enough_data, allow, require_approval, disable.",
        "rule": "The policy rule that fired.", "evidence": "The figures, thresholds and sample sizes, as JSON.",
        "requires_approval": "True for promotions: they take effect only once a human approves.",
        "effect": "pending_approval, automatic (fail-safe demotion, in force at once), or advisory.",
        "policy_version": "Policy file version.", "policy_digest": "Digest of the effective policy.",
        "window_start": "First day of the current window.", "window_end": "Last day of the current window.",
        "baseline_start": "First day of the baseline window.", "baseline_end": "Last day of the baseline window.",
    }
    return [
        View("signals", "drift",
             "Drift signals per day: each scenario's accepted-as-is and severe-failure rates watched by sequential "
             "monitors over its daily history (the only signals that alert), and per model / prompt version and for "
             "distributions the current window against the baseline (warn at most); with statistic, p and BH q-value, "
             "threshold, sample sizes, severity and how much history there was.",
             "SELECT * FROM {table:signals/drift}",
             {"scenario": "The scenario.", "model": "Model, or '*'.", "prompt_version": "Prompt version, or '*'.",
              "signal": "accepted_as_is_rate, severe_failure_rate, confidence_psi, confidence_ks, input_length_psi, "
                        "calibration_ece, input_mix, volume or failure_cluster_growth.",
              "statistic": "CUSUM log-likelihood ratio (scenario monitors, model and prompt_version '*'), z (rate tests "
                           "per model or version), PSI, KS D, ECE change, share z, volume ratio, or clusters.",
              "p_value": "p-value, where the signal is a test.", "q_value": "Benjamini-Hochberg q-value over the night's tests.",
              "threshold": "The policy threshold the statistic is held against.",
              "baseline_value": "The baseline figure.", "current_value": "The current figure.",
              "baseline_n": "Baseline sample size.", "current_n": "Current sample size.",
              "effect": "current - baseline, where it is a difference.", "direction": "worse or better (rate tests).",
              "severity": "info, warn or alert (only the scenario monitors alert; an alert demotes).",
              "history_days": "Days of daily history the signal had in its lookback (a short history says so).",
              "reference_days": "Monitors: days of the scenario's own history in the reference rate.",
              "reference_bound": "Monitors: the reference rate moved reference_z standard errors to the good side.",
              "episode_start": "Monitors: first day of the current excursion (the same episode night after night).",
              **window}),
        View("signals", "gate_evaluations",
             "Per scenario and day: each promotion gate over the current window, and whether all held.",
             "SELECT * FROM {table:signals/gate_evaluations}",
             {"day": "The data day.", "scenario": "The scenario.", "current_level": "Level in force.",
              "next_level": "The level a promotion would give.", "reviewed": "Reviewed events in the window.",
              "events": "Events in the window.", "accepted_rate": "Accepted-as-is share of reviewed events.",
              "accepted_lo": "Its Wilson lower bound.", "accepted_hi": "Its Wilson upper bound.",
              "severe_rate": "Severe-failure share of events.", "severe_lo": "Its Wilson lower bound.",
              "severe_hi": "Its Wilson upper bound.", "accepted": "Accepted-as-is events in the window.",
              "severe_failures": "Severe failures (rejected, reverted, error) in the window.",
              "operational_failures": "Operational failures (error, timeout, fallback: no usable output) in the window.",
              "operational_rate": "Operational-failure share of events.", "operational_lo": "Its Wilson lower bound.",
              "operational_hi": "Its Wilson upper bound.", "operational_max": "Promotion limit of the operational-failure rate.",
              "accept_target": "Promotion target.", "severe_max": "Promotion limit.",
              "gate_threshold": "Recommended confidence gate.", "gate_coverage": "Its coverage.",
              "enough_reviewed": "Gate: reviewed >= promotion.min_reviewed.", "accept_ok": "Gate: accepted_lo >= accept_target.",
              "severe_ok": "Gate: severe_hi <= severe_max.", "operational_ok": "Gate: operational_hi <= operational_max.",
              "no_alert": "Gate: no alert-level drift.",
              "gate_ok": "Gate: for a move to gated, a confidence gate with enough coverage.",
              "all_pass": "Every gate held.",
              "demote_trigger": "The demotion rule this evidence triggers at the level in force (drift alert, accept "
                                "floor, severe or operational limit), or null; consecutive days with one are one episode."}),
        View("signals", "decisions", "The decisions of each day, as last computed.",
             "SELECT * FROM {table:signals/decisions}", decision_cols),
        View("signals", "decision_log",
             "Append-only: every decision of every run, with the run id and when it was decided; replay any of them.",
             "SELECT * FROM {glob:decisions/log/*/*.parquet}",
             {**decision_cols, "run_id": "The run that decided it.", "decided_at": "When (UTC)."}),
        View("signals", "approvals",
             "Append-only ledger of verdicts: humans' approvals and rejections, and automatic fail-safe demotions.",
             "SELECT * FROM {approvals}",
             {"decision_id": "The decision.", "verdict": "approved, rejected or automatic.", "by": "Who (policy for automatic).",
              "note": "Why.", "kind": "Decision kind.", "scenario": "Scenario.", "level": "The level it set.",
              "previous_level": "The level before.", "day": "The decision's data day.",
              "run_id": "The run that applied it (automatic demotions).", "at": "When recorded (UTC)."}),
    ]
