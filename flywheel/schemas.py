"""Arrow schemas of the stored tables: the Parquet system of record and the staging files.

Column order here is the column order analysts see. `staged` schemas add `ingest_seq`, the
order in which landing files were first seen, used to decide which copy of a duplicated id wins.
"""

from __future__ import annotations

import pyarrow as pa

UTC_TS = pa.timestamp("us", tz="UTC")
TOOL_CALL = pa.struct([("name", pa.string()), ("status", pa.string()), ("arguments", pa.string())])

_SOURCE = [
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_line", pa.int64(), nullable=False),
    pa.field("record_hash", pa.string(), nullable=False),
]

EVENTS = pa.schema([
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("occurred_at", UTC_TS, nullable=False),
    pa.field("event_date", pa.date32(), nullable=False),
    pa.field("scenario", pa.string(), nullable=False),
    pa.field("model", pa.string(), nullable=False),
    pa.field("prompt_version", pa.string(), nullable=False),
    pa.field("autonomy_level", pa.string(), nullable=False),
    pa.field("input_text", pa.string()),
    pa.field("output_text", pa.string()),
    pa.field("confidence", pa.float64()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("latency_ms", pa.float64()),
    pa.field("input_tokens", pa.int64()),
    pa.field("output_tokens", pa.int64()),
    pa.field("tool_calls", pa.list_(TOOL_CALL)),
    pa.field("decision_path", pa.string()),
    pa.field("trace_id", pa.string()),
    pa.field("attributes", pa.string()),
    *_SOURCE,
])

INTERVENTIONS = pa.schema([
    pa.field("intervention_id", pa.string(), nullable=False),
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("occurred_at", UTC_TS, nullable=False),
    pa.field("event_date", pa.date32()),
    pa.field("action", pa.string(), nullable=False),
    pa.field("reviewer_id", pa.string()),
    pa.field("final_text", pa.string()),
    pa.field("reason_code", pa.string()),
    pa.field("comment", pa.string()),
    pa.field("review_seconds", pa.float64()),
    *_SOURCE,
])

QUARANTINE = pa.schema([
    pa.field("record_kind", pa.string(), nullable=False),
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_line", pa.int64()),
    pa.field("reason_code", pa.string(), nullable=False),
    pa.field("reason", pa.string(), nullable=False),
    pa.field("raw", pa.string()),
])

DUPLICATES = pa.schema([
    pa.field("record_kind", pa.string(), nullable=False),
    pa.field("record_id", pa.string(), nullable=False),
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_line", pa.int64(), nullable=False),
    pa.field("kept_file", pa.string(), nullable=False),
    pa.field("kept_line", pa.int64(), nullable=False),
])

INGEST_SEQ = pa.field("ingest_seq", pa.int64(), nullable=False)

STORED = {"events": EVENTS, "interventions": INTERVENTIONS}
STAGED = {kind: schema.append(INGEST_SEQ) for kind, schema in STORED.items()}
