"""The analyst-facing views of the `failures` schema, with a description of every column."""

from __future__ import annotations

from flywheel.catalog import View
from flywheel.sql import load_sql

_CLUSTER = {
    "cluster_id": "The failure cluster: a stable id, kept from night to night; a rerun gives every cluster the id a clean run gives.",
    "label": "The cluster's name: its three most distinctive terms and edits (c-TF-IDF against the other clusters), "
             "edits in words (\"numbers changed / human replaced 'sie' with 'du'\"); with none, what its events "
             "share (\"rejected without a reason (refund_request)\"). Distinct among the clusters of a night.",
}
_BIRTH = {
    "born_date": "The night the cluster was founded.",
    "born_run": "The run that last built the night it was founded.",
}


def _cluster_columns() -> dict[str, str]:
    return {
        "event_date": "The night of this snapshot (clusters as known after it).",
        **_CLUSTER,
        "terms": "Its five most distinctive terms, best first: words of reason codes, comments, statuses and system "
                 "messages, and edit tokens of what the human changed (\"sub:sie>du\", \"ins:nicht\", "
                 "\"flag:numbers\", \"len:added_5_12\"; digits written as 0 in edited spans).",
        "exemplars": "A few founding events: event_id, event_date, summary of their evidence (reason, comment, the "
                     "diff of draft and shipped text \"[-Sie-]{+du+}\", status, system, outcome), cosine to the "
                     "founding group.",
        **_BIRTH,
        "size_total": "Failing events assigned to it up to and including this night.",
        "events": "Failing events assigned to it this night.",
        "last_seen": "The last night it received events.",
        "is_new": "True on the night it was born.",
    }


def failure_views() -> list[View]:
    """The views of the `failures` schema."""
    return [
        View("failures", "assignments",
             "One row per failing event (rejected, escalated, reverted, heavily edited, or status error / timeout / "
             "fallback) with the failure cluster it joined and how.",
             "SELECT * FROM {table:failures/assignments}",
             {"event_id": "The event.", "event_date": "The UTC day of the event (the night that assigned it).",
              "scenario": "The category of work.", "model": "The model.", "prompt_version": "The prompt version.",
              "status": "ok, error, timeout, fallback.",
              "outcome": "Its resolved outcome (outcomes.event_outcomes).",
              "cluster_id": "The failure cluster it joined; null when it fits none.",
              "similarity": "Cosine similarity to the group or cluster centroid it joined (for an unmatched event: "
                            "to the nearest one).",
              "matched_as": "existing: joined a cluster known before this night; founding: in the group that founded a "
                            "cluster this night; new: joined a cluster born this night; unmatched: fits none.",
              "fitted": "True when the night's fit saw the event (large nights fit a sample; the rest is assigned "
                        "by similarity).",
              "run_id": "The run that assigned it."}),
        View("failures", "clusters",
             "The failure clusters as known after the latest night: name, distinctive terms, examples, birth, size.",
             load_sql("failure_clusters_latest_view"),
             _cluster_columns()),
        View("failures", "cluster_snapshots",
             "The failure clusters as known after each night (one row per cluster and night).",
             "SELECT * FROM {table:failures/clusters}",
             _cluster_columns()),
        View("failures", "cluster_history",
             "Per night and cluster born or seen that night: how its events were matched; a row with a null "
             "cluster_id counts the events that fit no cluster.",
             "SELECT * FROM {table:failures/cluster_history}",
             {"event_date": "The night.", "run_id": "The run that built it.", **_CLUSTER,
              "born": "True when the cluster was born this night.", **_BIRTH,
              "events": "Failing events of the night assigned to it.",
              "events_existing": "Of which joined it as a cluster known before the night.",
              "events_founding": "Of which founded it this night.",
              "events_new": "Of which joined it the night it was born, by similarity (not in the founding group).",
              "events_unmatched": "Null-cluster row only: the night's failing events that fit no cluster.",
              "size_total": "Events assigned to the cluster up to and including the night."}),
        View("failures", "cluster_daily",
             "Per day, scenario and failure cluster: events, share of the scenario's failures, baseline share over "
             "the previous days, growth ratio, the exact test of growth with its q-value over the night, and whether "
             "the cluster is new (and persists) or growing (significantly).",
             "SELECT * FROM {table:failures/cluster_daily}",
             {"event_date": "The day.", "scenario": "The category of work.", **_CLUSTER,
              "events": "The cluster's failing events in the scenario that day.",
              "scenario_failures": "All failing events of the scenario that day (unmatched included).",
              "share": "events / scenario_failures.",
              "baseline_events": "The cluster's events in the scenario over the baseline window (the 7 days before), "
                                 "on the days since its birth.",
              "baseline_failures": "The scenario's failing events over the baseline window, on the days since the "
                                   "cluster's birth.",
              "baseline_days": "Days of the baseline window since the cluster's birth with failing events in the "
                               "scenario.",
              "baseline_share": "baseline_events / baseline_failures (null without baseline failures).",
              "growth_ratio": "share / baseline_share (null when the baseline share is 0 or null).",
              "born_date": "The night the cluster was founded.",
              "failures_before_birth": "The scenario's failing events in the baseline window before the cluster's "
                                       "birth (0: nothing it could have been new against).",
              "nights_seen": "Nights since its birth, this one included, with at least min_events (5) of its events "
                             "in the scenario.",
              "dispersion": "The scenario's day-to-day variation of cluster shares over the baseline window, relative "
                            "to chance (Pearson chi-square per degree of freedom, at least 1); the test's counts are "
                            "divided by it.",
              "p_value": "One-sided Fisher exact test that the share is above the baseline share (counts divided by "
                         "dispersion); null without failures today or in the baseline since its birth.",
              "q_value": "p_value adjusted by Benjamini-Hochberg over every tested scenario and cluster of the night.",
              "is_new": "Born within new_days (1) before the day, seen on new_nights (2) nights with min_events "
                        "events, in a scenario with failures before its birth: a new failure mode that persists.",
              "is_growing": "q_value at or below 0.05, at least min_events events, share at least growth_factor (2) "
                            "times the baseline share, and past its new_days."}),
        View("failures", "edit_patterns",
             "Per day and scenario, what the humans changed in the AI's drafts: each substitution, insertion, "
             "deletion, move, flag and length change, with how many of the scenario's edited events show it "
             "(every event whose final text differs from its draft, light edits too; text redacted first).",
             "SELECT * FROM {table:failures/edit_patterns}",
             {"event_date": "The UTC day of the events.", "scenario": "The category of work.",
              "kind": "substitution (before -> after), insertion (the human added `after`: the AI omitted it), "
                      "deletion (the human deleted `before`: the AI added it), move (`before` moved elsewhere), "
                      "flag (`before` names it: numbers, dates, names, urls, code, punctuation_only, casing_only, "
                      "whitespace_only, copy_of_input, rewrite) or length (`before` added/removed: the net token "
                      "change, or rewrote/inserted/deleted/moved: an edit of more than 4 tokens; `after` its "
                      "bucket: 1, 2_4, 5_12, 13_plus).",
              "before": "The draft's span (tokens joined by one space, lower-cased; CJK and other unsegmented "
                        "scripts one character per token); the flag name for flag; the direction for length.",
              "after": "The final text's span, likewise; the length bucket for length; empty otherwise.",
              "token": "The pattern as the failure features name it: sub:sie>du, ins:nicht, del:bitte, mov:heute, "
                       "flag:numbers, len:added_5_12 (spans joined with _).",
              "description": "The pattern in words: human replaced 'sie' with 'du', numbers changed, ...",
              "events": "Distinct edited events of the scenario that day with this pattern.",
              "edited_events": "Events of the scenario that day whose final text differs from the draft.",
              "share": "events / edited_events."}),
    ]
