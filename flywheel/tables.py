"""The table registry: every table flywheel stores and every view an analyst queries, declared once.

A `Table` is a day-partitioned set of Parquet files in the store: its path (relative to the
store: `<path>/event_date=<day>/data.parquet`, or its own `files` glob), its Arrow schema (its
builder makes the frame with it or with `polars_schema()`; `None` where the columns are what the
builder's SQL selects: event_outcomes, the rate marts, cluster_daily, the decision log), the asset
that writes it (`asset_key`, a tuple of strings: this library never imports Dagster; assets build
`dg.AssetKey(table.asset_key)`) and, when analysts read it as it is, its view: the description
and column docs of `<asset_key[0]>.<view_name>` (the asset key's name unless `view_name` says
otherwise). A `View` that is not one table as it is (a union, a join, the latest snapshot) is
declared on its own. From here the rest is derived: the modules that build a table write
`layout.table(TABLE.path, day)`; the catalog (flywheel.catalog) creates `views()` in this order
with their comments, and reads each ingest table through its `slot`, or an empty file of its
schema when it has no file yet (`SOURCE_SCHEMAS`); the assets take their keys from `asset_key`.

Every asset that writes a table ends by calling `flywheel.catalog.build_catalog`, which
republishes the analysts' database only when a view's definition changed (a table's first file,
the approvals ledger appearing, a change here): the views read the store through globs, so a new
day of a table that already has files needs no rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa

from flywheel.contracts import EVENT_FIELDS, INTERVENTION_FIELDS, Field
from flywheel.schemas import DUPLICATES, QUARANTINE, STAGED, STORED
from flywheel.sql import load_sql


@dataclass(frozen=True)
class View:
    """One analyst-facing view: its SQL body (with `{name}` slots for sources) and its docs."""

    schema: str
    name: str
    description: str
    sql: str
    columns: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    """One stored table: where its files are, their schema, the asset that writes them, and its view."""

    path: str
    asset_key: tuple[str, ...]
    schema: pa.Schema | None = None
    description: str = ""  # "": no view of its own (analysts read it through another view)
    columns: dict[str, str] = field(default_factory=dict)
    view_name: str | None = None  # default: the asset key's name
    slot: str | None = None  # the `{slot}` the catalog's SQL reads it through (ingest tables)
    files: str | None = None  # glob of its files relative to the store, when not day partitions

    def polars_schema(self) -> dict[str, pl.DataType]:
        """Its schema as polars dtypes, for the builders that make it as a polars frame."""
        if self.schema is None:
            raise ValueError(f"{self.path}: its columns are what its builder selects; no schema is declared")
        return dict(pl.from_arrow(self.schema.empty_table()).schema)

    @property
    def view(self) -> View | None:
        """Its analyst view (`SELECT *` over its files), or None."""
        if not self.description:
            return None
        source = self.slot or (f"glob:{self.files}" if self.files else f"table:{self.path}")
        return View(self.asset_key[0], self.view_name or self.asset_key[-1], self.description,
                    f"SELECT * FROM {{{source}}}", self.columns)


def _columns(**types: pa.DataType) -> pa.Schema:
    return pa.schema(list(types.items()))


_STR, _DATE, _INT, _FLOAT, _BOOL = pa.string(), pa.date32(), pa.int64(), pa.float64(), pa.bool_()


def _contract_docs(fields: tuple[Field, ...]) -> dict[str, str]:
    return {f.name: f.description for f in fields}


# --- ingest: written by the ingest/events and ingest/interventions assets ------------------------

_SOURCE_DOCS = {
    "event_date": "The UTC date of the event (the partition key).",
    "source_file": "The landing file the record came from, relative to the landing folder.",
    "source_line": "The record's line in that file (CSV: the row's last line; Parquet: row number; OTLP: span ordinal).",
    "record_hash": "Digest of the record's stored content (DuckDB's 64-bit hash, 16 hex digits; 32-digit blake2b in stores before December 2026); copies of an id with equal hashes are exact duplicates, others are compared field by field.",
}
_EVENTS_ASSET = ("ingest", "events")
_INTERVENTIONS_ASSET = ("ingest", "interventions")

EVENTS = Table(
    "events", _EVENTS_ASSET, STORED["events"], slot="events",
    description="AI audit events as stored: one row per AI invocation, deduplicated, UTC.",
    columns={**_contract_docs(EVENT_FIELDS),
             "decision_path": "How the product acted on the output, as JSON text.",
             "attributes": "Anything else the producer sent, as JSON text (unknown top-level fields land here too).",
             "tool_calls": "Tools called: list of {name, status (ok/error/denied), arguments as JSON text}.",
             **_SOURCE_DOCS})
INTERVENTIONS = Table(
    "interventions", _INTERVENTIONS_ASSET, STORED["interventions"], slot="interventions",
    description="Human interventions as stored, each attached to its event's day; one row per intervention.",
    columns={**_contract_docs(INTERVENTION_FIELDS),
             "event_date": "The UTC date of the intervention's event (the partition key).",
             **{k: v for k, v in _SOURCE_DOCS.items() if k != "event_date"}})
# The landing sync (in ingest/events) stages both kinds: valid records per file and day, and what
# it rejected while reading.
STAGED_EVENTS = Table("staging/events", _EVENTS_ASSET, STAGED["events"], slot="staged_events",
                      files="staging/events/*/*.parquet")
STAGED_INTERVENTIONS = Table("staging/interventions", _EVENTS_ASSET, STAGED["interventions"],
                             slot="staged_interventions", files="staging/interventions/*/*.parquet")
STAGED_QUARANTINE = Table("staging/quarantine", _EVENTS_ASSET, QUARANTINE, slot="staged_quarantine",
                          files="staging/quarantine/*.parquet")
QUARANTINE_EVENTS = Table("quarantine/events", _EVENTS_ASSET, QUARANTINE, slot="quarantine_events")
QUARANTINE_INTERVENTIONS = Table("quarantine/interventions", _INTERVENTIONS_ASSET, QUARANTINE,
                                 slot="quarantine_interventions")
DUPLICATES_EVENTS = Table("duplicates/events", _EVENTS_ASSET, DUPLICATES, slot="duplicates_events")
DUPLICATES_INTERVENTIONS = Table("duplicates/interventions", _INTERVENTIONS_ASSET, DUPLICATES,
                                 slot="duplicates_interventions")

_INGEST_VIEWS = [
    View("ingest", "quarantine",
         "Every input record that was not stored, with why: rejected at read time or while building a day.",
         "SELECT *, 'read' AS stage FROM {staged_quarantine} "
         "UNION ALL BY NAME SELECT *, 'partition' AS stage FROM {quarantine_events} "
         "UNION ALL BY NAME SELECT *, 'partition' AS stage FROM {quarantine_interventions}",
         {"record_kind": "events or interventions.",
          "source_file": "The landing file, relative to the landing folder.",
          "source_line": "Line (or row, or span) in that file; null for a whole bad file.",
          "reason_code": "Why, as a code (see the README's quarantine reasons).",
          "reason": "Why, in words, listing every problem found.",
          "raw": "The record as it came in (for partition-stage rows: as normalised).",
          "stage": "read: rejected while reading the file; partition: while building a day."}),
    View("ingest", "duplicates", "Exact duplicate records dropped, each pointing at the copy that was kept.",
         "SELECT * FROM {duplicates_events} UNION ALL BY NAME SELECT * FROM {duplicates_interventions}",
         {"record_kind": "events or interventions.", "record_id": "The duplicated id.",
          "source_file": "Where the dropped copy came from.", "source_line": "Its line.",
          "kept_file": "Where the kept copy came from.", "kept_line": "Its line."}),
    View("ingest", "landing_files", "Every landing file read, with what was read from it.",
         load_sql("landing_files_view"),
         {"path": "Path relative to the landing folder.", "file_id": "Stable id of the path.",
          "folder": "events, interventions or otlp.", "size_bytes": "File size when last read.",
          "event_days": "UTC days of the valid events read from it.",
          "intervention_days": "UTC days of the valid interventions read from it.",
          "seq": "Order in which files were first seen; earlier files win duplicate ids.",
          "format": "jsonl, csv, parquet or otlp.", "sha256": "Content digest when last read.",
          "records_read": "Records read (a whole bad file counts as one).",
          "staged_events": "Valid events read.", "staged_interventions": "Valid interventions read.",
          "quarantined_at_read": "Records rejected while reading.",
          "bad_file": "Why the whole file was rejected, if it was."}),
    View("ingest", "pending_interventions",
         "Valid interventions whose event has not been stored yet; they join when it arrives.",
         load_sql("pending_interventions_view"),
         {"intervention_id": "The intervention.", "event_id": "The event it waits for.",
          "occurred_at": "When the human acted (UTC).", "action": "What the human did.",
          "source_file": "Its landing file.", "source_line": "Its line."}),
    View("ingest", "file_reconciliation",
         "Per landing file: records read = stored + duplicates + quarantined + pending.",
         load_sql("file_reconciliation_view"),
         {"path": "Landing file.", "records_read": "Records read.",
          "stored": "Stored as events or interventions.", "duplicates": "Exact duplicates dropped.",
          "quarantined": "Quarantined, at read or partition time.",
          "pending": "Valid but not stored yet: interventions waiting for their event, or days not built yet.",
          "balanced": "records_read = stored + duplicates + quarantined + pending."}),
]


# --- outcomes: written by the outcomes/* assets, from the stored events and interventions --------

_GROUP = {
    "event_date": "The UTC day of the events.",
    "scenario": "The category of work.",
    "model": "The model.",
    "prompt_version": "The prompt version ('unversioned' when not logged).",
    "autonomy_level": "The level the AI ran at: shadow, assist, gated, autonomous.",
}

# rate -> its words; the same rates as flywheel.outcomes.rates.RATES (tests/test_tables.py)
RATE_WORDS = {
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
    for name, words in RATE_WORDS.items():
        docs[name] = words + " (null when the denominator is 0)."
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

EVENT_OUTCOMES = Table(
    "outcomes/event_outcomes", ("outcomes", "event_outcomes"),
    description="One row per event with its resolved outcome: the latest intervention wins (ties: the more severe "
                "action, then the larger intervention_id); accepted with a changed final_text counts as edited.",
    columns={**_GROUP, "event_id": "The event.", "occurred_at": "When the AI ran (UTC).",
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
             "edit_class": "light or heavy (at or above FLYWHEEL_HEAVY_EDIT_THRESHOLD on characters); edited events only."})

DAILY_RATES = Table(
    "outcomes/daily_rates", ("outcomes", "daily_rates"),
    description="Per scenario x model x prompt_version x autonomy_level x day: outcome counts and rates with 95% Wilson "
                "intervals, edit magnitude, review time, failures, latency and tokens.",
    columns={**_GROUP, **_COUNTS, **_rate_docs(),
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
             "confidence_mean": "Mean confidence."})

ROLLING_RATES = Table(
    "outcomes/rolling_rates", ("outcomes", "rolling_rates"),
    description="Per scenario, the 7- and 28-day windows ending at each day, summed from the daily counts, with rates "
                "and 95% Wilson intervals.",
    columns={"window_end": "Last day of the window.", "window_start": "First day of the window.",
             "window_days": "7 or 28.", "scenario": "The category of work.",
             "days_with_data": "Days of the window with events.", **_COUNTS, **_rate_docs()})

RECOVERY = Table(
    "outcomes/recovery", ("outcomes", "recovery"),
    schema=_columns(event_date=_DATE, scenario=_STR, failure_runs=_INT, recovered_runs=_INT, open_runs=_INT,
                    recovery_seconds_mean=_FLOAT, recovery_seconds_max=_FLOAT),
    description="Per scenario and day: runs of failures (error, timeout, reverted) starting that day and the time until "
                "the next successful event.",
    columns={"event_date": "Day the runs started.", "scenario": "The category of work.",
             "failure_runs": "Runs of consecutive failures that started this day.",
             "recovered_runs": "Runs followed by a success by the end of the next day.",
             "open_runs": "Runs with no success yet.",
             "recovery_seconds_mean": "Mean time from a run's first failure to the next success (s).",
             "recovery_seconds_max": "Longest such time (s)."})

CALIBRATION = Table(
    "outcomes/calibration", ("outcomes", "calibration"),
    schema=_columns(window_end=_DATE, window_start=_DATE, scenario=_STR, model=_STR, events=_INT,
                    reviewed_with_confidence=_INT, accepted_as_is_rate=_FLOAT, mean_confidence=_FLOAT, ece=_FLOAT,
                    brier=_FLOAT, roc_auc=_FLOAT, gate_target=_FLOAT, gate_status=_STR, gate_threshold=_FLOAT,
                    gate_sample_size=_INT, gate_accepted_rate=_FLOAT, gate_lower_bound=_FLOAT, gate_delta=_FLOAT,
                    gate_p_value=_FLOAT, gate_weighting=_STR, gate_coverage=_FLOAT),
    description="Per scenario x model (model '*' = all models) over the calibration window ending at each day: does "
                "confidence predict accepted-as-is? ECE, Brier, ROC AUC, and the recommended confidence gate.",
    columns={"window_end": "Last day of the window.", "window_start": "First day of the window.",
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
             "gate_coverage": "Share of the window's events at or above the threshold: what the AI could do alone."})

RELIABILITY_BINS = Table(
    "outcomes/reliability_bins", ("outcomes", "reliability_bins"),
    schema=_columns(window_end=_DATE, window_start=_DATE, scenario=_STR, model=_STR, bin=_INT, conf_lo=_FLOAT,
                    conf_hi=_FLOAT, mean_confidence=_FLOAT, observed_rate=_FLOAT, n=_INT),
    description="The reliability diagram behind outcomes.calibration: equal-count confidence bins with their observed "
                "accepted-as-is rate.",
    columns={"window_end": "Last day of the window.", "window_start": "First day of the window.",
             "scenario": "The category of work.", "model": "The model, or '*'.", "bin": "Bin number, 1 = lowest confidence.",
             "conf_lo": "Lowest confidence in the bin.", "conf_hi": "Highest confidence in the bin.",
             "mean_confidence": "Mean confidence in the bin.", "observed_rate": "Accepted-as-is share in the bin.",
             "n": "Events in the bin."})

# --- failures: written by the failures/* assets, from outcomes/event_outcomes -----------------------

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


ASSIGNMENTS = Table(
    "failures/assignments", ("failures", "assignments"),
    schema=_columns(event_id=_STR, event_date=_DATE, scenario=_STR, model=_STR, prompt_version=_STR, status=_STR,
                    outcome=_STR, cluster_id=_INT, similarity=_FLOAT, matched_as=_STR, fitted=_BOOL, run_id=_STR),
    description="One row per failing event (rejected, escalated, reverted, heavily edited, or status error / timeout / "
                "fallback) with the failure cluster it joined and how.",
    columns={"event_id": "The event.", "event_date": "The UTC day of the event (the night that assigned it).",
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
             "run_id": "The run that assigned it."})

# failures.clusters: the latest night's snapshot of failures/clusters
_LATEST_CLUSTERS = View(
    "failures", "clusters",
    "The failure clusters as known after the latest night: name, distinctive terms, examples, birth, size.",
    load_sql("failure_clusters_latest_view"),
    _cluster_columns())

_EXEMPLAR = pa.struct([("event_id", _STR), ("event_date", _DATE), ("summary", _STR), ("similarity", _FLOAT)])

CLUSTERS = Table(
    "failures/clusters", ("failures", "clusters"), view_name="cluster_snapshots",
    schema=_columns(event_date=_DATE, cluster_id=_INT, label=_STR, terms=pa.list_(_STR), exemplars=pa.list_(_EXEMPLAR),
                    born_date=_DATE, born_run=_STR, size_total=_INT, events=_INT, last_seen=_DATE, is_new=_BOOL),
    description="The failure clusters as known after each night (one row per cluster and night).",
    columns=_cluster_columns())

CLUSTER_HISTORY = Table(
    "failures/cluster_history", ("failures", "cluster_history"),
    schema=_columns(event_date=_DATE, run_id=_STR, cluster_id=_INT, label=_STR, born=_BOOL, born_date=_DATE,
                    born_run=_STR, events=_INT, events_existing=_INT, events_founding=_INT, events_new=_INT,
                    events_unmatched=_INT, size_total=_INT),
    description="Per night and cluster born or seen that night: how its events were matched; a row with a null "
                "cluster_id counts the events that fit no cluster.",
    columns={"event_date": "The night.", "run_id": "The run that built it.", **_CLUSTER,
             "born": "True when the cluster was born this night.", **_BIRTH,
             "events": "Failing events of the night assigned to it.",
             "events_existing": "Of which joined it as a cluster known before the night.",
             "events_founding": "Of which founded it this night.",
             "events_new": "Of which joined it the night it was born, by similarity (not in the founding group).",
             "events_unmatched": "Null-cluster row only: the night's failing events that fit no cluster.",
             "size_total": "Events assigned to the cluster up to and including the night."})

CLUSTER_DAILY = Table(
    "failures/cluster_daily", ("failures", "cluster_daily"),
    description="Per day, scenario and failure cluster: events, share of the scenario's failures, baseline share over "
                "the previous days, growth ratio, the exact test of growth with its q-value over the night, and whether "
                "the cluster is new (and persists) or growing (significantly).",
    columns={"event_date": "The day.", "scenario": "The category of work.", **_CLUSTER,
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
                           "times the baseline share, and past its new_days."})

EDIT_PATTERNS = Table(
    "failures/edit_patterns", ("failures", "edit_patterns"),
    schema=_columns(event_date=_DATE, scenario=_STR, kind=_STR, before=_STR, after=_STR, token=_STR, description=_STR,
                    events=_INT, edited_events=_INT, share=_FLOAT),
    description="Per day and scenario, what the humans changed in the AI's drafts: each substitution, insertion, "
                "deletion, move, flag and length change, with how many of the scenario's edited events show it "
                "(every event whose final text differs from its draft, light edits too; text redacted first).",
    columns={"event_date": "The UTC day of the events.", "scenario": "The category of work.",
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
             "share": "events / edited_events."})

# --- signals: written by the signals/* assets (one step), from outcomes and failures ------------

_WINDOW = {"day": "The run's data day (end of the current window).",
          "current_start": "First day of the current window.",
          "baseline_start": "First day of the baseline window.", "baseline_end": "Last day of the baseline window.",
          "policy_version": "Version of the policy file in force."}
_DECISION_COLUMNS = {
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


DRIFT = Table(
    "signals/drift", ("signals", "drift"),
    # the signal rows, then the window they were computed over (DRIFT_WINDOW_COLUMNS, the same for every row)
    schema=_columns(scenario=_STR, model=_STR, prompt_version=_STR, signal=_STR, statistic=_FLOAT, p_value=_FLOAT,
                    q_value=_FLOAT, threshold=_FLOAT, baseline_value=_FLOAT, current_value=_FLOAT, baseline_n=_INT,
                    current_n=_INT, effect=_FLOAT, direction=_STR, severity=_STR, history_days=_INT,
                    reference_days=_INT, reference_bound=_FLOAT, episode_start=_DATE,
                    day=_DATE, current_start=_DATE, baseline_start=_DATE, baseline_end=_DATE, policy_version=_STR),
    description="Drift signals per day: each scenario's accepted-as-is and severe-failure rates watched by sequential "
                "monitors over its daily history (the only signals that alert), and per model / prompt version and for "
                "distributions the current window against the baseline (warn at most); with statistic, p and BH q-value, "
                "threshold, sample sizes, severity and how much history there was.",
    columns={"scenario": "The scenario.", "model": "Model, or '*'.", "prompt_version": "Prompt version, or '*'.",
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
             **_WINDOW})

DRIFT_WINDOW_COLUMNS = ("day", "current_start", "baseline_start", "baseline_end", "policy_version")

GATE_EVALUATIONS = Table(
    "signals/gate_evaluations", ("signals", "gate_evaluations"),
    schema=_columns(day=_DATE, scenario=_STR, current_level=_STR, next_level=_STR, reviewed=_INT, events=_INT, accepted=_INT,
                    severe_failures=_INT, accepted_rate=_FLOAT, accepted_lo=_FLOAT, accepted_hi=_FLOAT,
                    severe_rate=_FLOAT, severe_lo=_FLOAT, severe_hi=_FLOAT, operational_failures=_INT,
                    operational_rate=_FLOAT, operational_lo=_FLOAT, operational_hi=_FLOAT, accept_target=_FLOAT,
                    severe_max=_FLOAT, operational_max=_FLOAT, gate_threshold=_FLOAT, gate_coverage=_FLOAT,
                    enough_reviewed=_BOOL, accept_ok=_BOOL, severe_ok=_BOOL, operational_ok=_BOOL, no_alert=_BOOL,
                    gate_ok=_BOOL, all_pass=_BOOL, demote_trigger=_STR),
    description="Per scenario and day: each promotion gate over the current window, and whether all held.",
    columns={"day": "The data day.", "scenario": "The scenario.", "current_level": "Level in force.",
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
                               "floor, severe or operational limit), or null; consecutive days with one are one episode."})

DECISIONS = Table(
    "signals/decisions", ("signals", "decisions"),
    schema=_columns(decision_id=_STR, day=_DATE, kind=_STR, scenario=_STR, subject=_STR, current=_STR, recommended=_STR,
                    action=_STR, rule=_STR, evidence=_STR, requires_approval=_BOOL, effect=_STR, policy_version=_STR,
                    policy_digest=_STR, window_start=_DATE, window_end=_DATE, baseline_start=_DATE, baseline_end=_DATE),
    description="The decisions of each day, as last computed.",
    columns=_DECISION_COLUMNS)

# one file per day and run: decisions/log/day=<day>/run=<run_id>.parquet (flywheel.signals.ledger)
DECISION_LOG = Table(
    "decisions/log", ("signals", "decisions"), view_name="decision_log", files="decisions/log/*/*.parquet",
    description="Append-only: every decision of every run, with the run id and when it was decided; replay any of them.",
    columns={**_DECISION_COLUMNS, "run_id": "The run that decided it.", "decided_at": "When (UTC)."})

# The approvals ledger (JSON Lines, not day partitions), appended by `flywheel decisions approve/reject` and
# fail-safe demotions (flywheel.signals.ledger); the catalog reads it as the `{approvals}` slot.
APPROVALS_LEDGER = "decisions/approvals.jsonl"
_APPROVALS = View(
    "signals", "approvals",
    "Append-only ledger of verdicts: humans' approvals and rejections, and automatic fail-safe demotions.",
    "SELECT * FROM {approvals}",
    {"decision_id": "The decision.", "verdict": "approved, rejected or automatic.", "by": "Who (policy for automatic).",
     "note": "Why.", "kind": "Decision kind.", "scenario": "Scenario.", "level": "The level it set.",
     "previous_level": "The level before.", "day": "The decision's data day.",
     "run_id": "The run that applied it (automatic demotions).", "at": "When recorded (UTC)."})


# --- the registry -------------------------------------------------------------------------------

TABLES: tuple[Table, ...] = (
    EVENTS, INTERVENTIONS, STAGED_EVENTS, STAGED_INTERVENTIONS, STAGED_QUARANTINE, QUARANTINE_EVENTS,
    QUARANTINE_INTERVENTIONS, DUPLICATES_EVENTS, DUPLICATES_INTERVENTIONS,
    EVENT_OUTCOMES, DAILY_RATES, ROLLING_RATES, RECOVERY, CALIBRATION, RELIABILITY_BINS,
    ASSIGNMENTS, CLUSTERS, CLUSTER_HISTORY, CLUSTER_DAILY, EDIT_PATTERNS,
    DRIFT, GATE_EVALUATIONS, DECISIONS, DECISION_LOG,
)

# The ingest tables the catalog's SQL reads through a `{slot}` -> the schema of the empty file read
# in place of a table with no file yet (`_schema/<slot>.parquet`).
SOURCE_SCHEMAS: dict[str, pa.Schema] = {t.slot: t.schema for t in TABLES if t.slot and t.schema is not None}


def _view(table: Table) -> View:
    view = table.view
    assert view is not None, f"{table.path} has no view of its own"
    return view


def views(schema: str | None = None) -> list[View]:
    """Every analyst view (of `schema` only, when given), in the catalog's creation order: per schema
    (ingest, outcomes, failures, signals), the tables' own views and the views derived from them."""
    every = [
        _view(EVENTS), _view(INTERVENTIONS), *_INGEST_VIEWS,
        *(_view(t) for t in (EVENT_OUTCOMES, DAILY_RATES, ROLLING_RATES, RECOVERY, CALIBRATION, RELIABILITY_BINS)),
        _view(ASSIGNMENTS), _LATEST_CLUSTERS, *(_view(t) for t in (CLUSTERS, CLUSTER_HISTORY, CLUSTER_DAILY, EDIT_PATTERNS)),
        *(_view(t) for t in (DRIFT, GATE_EVALUATIONS, DECISIONS, DECISION_LOG)), _APPROVALS,
    ]
    return [v for v in every if schema is None or v.schema == schema]
