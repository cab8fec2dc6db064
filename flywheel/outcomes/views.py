"""The analyst-facing views of the `outcomes` schema, with a description of every column."""

from __future__ import annotations

from flywheel.catalog import View
from flywheel.outcomes.rates import RATES

_GROUP = {
    "event_date": "The UTC day of the events.",
    "scenario": "The category of work.",
    "model": "The model.",
    "prompt_version": "The prompt version ('unversioned' when not logged).",
    "autonomy_level": "The level the AI ran at: shadow, assist, gated, autonomous.",
}

_RATE_WORDS = {
    "accepted_as_is_rate": "Share of reviewed events accepted as they were",
    "edited_rate": "Share of reviewed events edited (including accepted with changed text)",
    "rejected_rate": "Share of reviewed events rejected",
    "escalated_rate": "Share of reviewed events escalated",
    "reverted_rate": "Share of reviewed events whose action a human reverted",
    "intervention_rate": "Intervention frequency: share of events a human touched",
    "error_rate": "Share of events with status error",
    "timeout_rate": "Share of events with status timeout",
    "fallback_rate": "Share of events served by a fallback path",
    "severe_failure_rate": "Share of events rejected, reverted or in error",
}


def _rate_docs() -> dict[str, str]:
    docs: dict[str, str] = {}
    for name in RATES:
        docs[name] = _RATE_WORDS[name] + " (null when the denominator is 0)."
        docs[f"{name}_lo"] = f"Lower bound of the 95% Wilson interval of {name}."
        docs[f"{name}_hi"] = f"Upper bound of the 95% Wilson interval of {name}."
    return docs


_COUNTS = {
    "events": "Events.",
    "reviewed": "Events a human touched (any intervention).",
    "accepted": "Final outcome accepted as-is.",
    "edited": "Final outcome edited (including accepted with a changed final_text).",
    "rejected": "Final outcome rejected.",
    "escalated": "Final outcome escalated.",
    "reverted": "Final outcome reverted (a human undid an action the AI took alone).",
    "acted_alone": "Unreviewed: the AI acted alone (autonomous, or gated at/above its gate).",
    "awaiting_review": "Unreviewed: waiting for a human (shadow, assist, gated below the gate, failures routed to a human).",
    "errors": "Events with status error.",
    "timeouts": "Events with status timeout.",
    "fallbacks": "Events with status fallback.",
    "severe_failures": "Events rejected, reverted, or in error.",
}


def outcome_views() -> list[View]:
    """The views of the `outcomes` schema."""
    return [
        View("outcomes", "event_outcomes",
             "One row per event with its resolved outcome: the latest intervention wins (ties: the more severe "
             "action, then the larger intervention_id); accepted with a changed final_text counts as edited.",
             "SELECT * FROM {table:outcomes/event_outcomes}",
             {**_GROUP, "event_id": "The event.", "occurred_at": "When the AI ran (UTC).",
              "status": "ok, error, timeout, fallback.", "confidence": "The AI's confidence.",
              "latency_ms": "Latency in ms.", "input_tokens": "Input tokens.", "output_tokens": "Output tokens.",
              "input_chars": "Length of the input text in characters.",
              "decision_gate": "The confidence gate logged in decision_path, if any.",
              "n_interventions": "How many interventions the event has.",
              "final_intervention_id": "The intervention that decided the outcome.",
              "final_action": "Its action as logged.", "final_action_at": "When it happened (UTC).",
              "reason_code": "Its reason code.", "comment": "Its comment.",
              "review_seconds_total": "Review time summed over all the event's interventions.",
              "outcome": "accepted, edited, rejected, escalated, reverted, acted_alone or awaiting_review.",
              "accepted_with_changes": "True when the action was accepted but the final_text differs from the output.",
              "edit_distance_chars": "Normalised Levenshtein distance between output and shipped text, in characters "
                                     "(edited events; shadow events accepted as-is give 0).",
              "edit_distance_words": "The same distance in words.",
              "edit_class": "light or heavy (at or above FLYWHEEL_HEAVY_EDIT_THRESHOLD on characters); edited events only."}),
        View("outcomes", "daily_rates",
             "Per scenario x model x prompt_version x autonomy_level x day: outcome counts and rates with 95% Wilson "
             "intervals, edit magnitude, review time, failures, latency and tokens.",
             "SELECT * FROM {table:outcomes/daily_rates}",
             {**_GROUP, **_COUNTS, **_rate_docs(),
              "accepted_with_changes": "Events accepted with a changed final_text (counted as edited).",
              "edits_light": "Edited events with a light edit.", "edits_heavy": "Edited events with a heavy edit.",
              "edit_magnitude_mean": "Mean character edit distance of edited events.",
              "edit_magnitude_p50": "Median character edit distance of edited events.",
              "edit_magnitude_p90": "90th percentile character edit distance of edited events.",
              "shadow_distance_mean": "Shadow events: mean distance between the AI's output and what the human shipped.",
              "review_seconds_p50": "Median review time per reviewed event (s).",
              "review_seconds_p90": "90th percentile review time per reviewed event (s).",
              "review_seconds_sum": "Total review time (s).",
              "latency_ms_p50": "Median latency (ms).", "latency_ms_p95": "95th percentile latency (ms).",
              "input_tokens_sum": "Input tokens.", "output_tokens_sum": "Output tokens.",
              "tokens_per_event_mean": "Mean input + output tokens per event.",
              "confidence_mean": "Mean confidence."}),
        View("outcomes", "rolling_rates",
             "Per scenario, the 7- and 28-day windows ending at each day, summed from the daily counts, with rates "
             "and 95% Wilson intervals.",
             "SELECT * FROM {table:outcomes/rolling_rates}",
             {"window_end": "Last day of the window.", "window_start": "First day of the window.",
              "window_days": "7 or 28.", "scenario": "The category of work.",
              "days_with_data": "Days of the window with events.", **_COUNTS, **_rate_docs()}),
        View("outcomes", "recovery",
             "Per scenario and day: runs of failures (error, timeout, reverted) starting that day and the time until "
             "the next successful event.",
             "SELECT * FROM {table:outcomes/recovery}",
             {"event_date": "Day the runs started.", "scenario": "The category of work.",
              "failure_runs": "Runs of consecutive failures that started this day.",
              "recovered_runs": "Runs followed by a success by the end of the next day.",
              "open_runs": "Runs with no success yet.",
              "recovery_seconds_mean": "Mean time from a run's first failure to the next success (s).",
              "recovery_seconds_max": "Longest such time (s)."}),
        View("outcomes", "calibration",
             "Per scenario x model (model '*' = all models) over the calibration window ending at each day: does "
             "confidence predict accepted-as-is? ECE, Brier, ROC AUC, and the recommended confidence gate.",
             "SELECT * FROM {table:outcomes/calibration}",
             {"window_end": "Last day of the window.", "window_start": "First day of the window.",
              "scenario": "The category of work.", "model": "The model, or '*' for all models.",
              "events": "All events in the window (the volume coverage is a share of).",
              "reviewed_with_confidence": "Reviewed events with a confidence: the calibration sample.",
              "accepted_as_is_rate": "Accepted-as-is share of that sample.",
              "mean_confidence": "Mean confidence of that sample.",
              "ece": "Expected calibration error over equal-count bins.",
              "brier": "Brier score of confidence against accepted-as-is.",
              "roc_auc": "ROC AUC of confidence for accepted-as-is (null with one class only).",
              "gate_target": "The accepted-as-is rate the events at or above the gate must have (policy gate.target).",
              "gate_status": "threshold, or none when no confidence threshold is certified.",
              "gate_threshold": "The lowest threshold certified by fixed-sequence exact tests from the top.",
              "gate_sample_size": "Reviewed events at or above it.",
              "gate_accepted_rate": "Their accepted-as-is rate (weighted by events per stratum: see gate_weighting).",
              "gate_lower_bound": "Its lower confidence bound at 1 - gate_delta (Clopper-Pearson).",
              "gate_delta": "Allowed probability that the gate's true accepted-as-is rate is below target (policy gate.delta).",
              "gate_p_value": "Smallest level at which the test at the gate rejects 'rate below target'.",
              "gate_weighting": "unweighted, or inverse_probability when audited events above the gate in force are "
                                "weighted by their events.",
              "gate_coverage": "Share of the window's events at or above the threshold: what the AI could do alone."}),
        View("outcomes", "reliability_bins",
             "The reliability diagram behind outcomes.calibration: equal-count confidence bins with their observed "
             "accepted-as-is rate.",
             "SELECT * FROM {table:outcomes/reliability_bins}",
             {"window_end": "Last day of the window.", "window_start": "First day of the window.",
              "scenario": "The category of work.", "model": "The model, or '*'.", "bin": "Bin number, 1 = lowest confidence.",
              "conf_lo": "Lowest confidence in the bin.", "conf_hi": "Highest confidence in the bin.",
              "mean_confidence": "Mean confidence in the bin.", "observed_rate": "Accepted-as-is share in the bin.",
              "n": "Events in the bin."}),
    ]
