"""The in-memory column layout of generated records, shared by the simulator, the defect maker and
the writers.

Events are held as a polars frame with the contract fields plus two alternative encodings of the
nested fields: `tool_calls` (list of {name, status, arguments as JSON text}, the Parquet shape)
beside `tool_calls_json` (JSON array text with `arguments` as objects, for JSONL and CSV), and
`decision_path` (a JSON object's text, or a plain string written raw in CSV/Parquet) beside
`decision_path_json` (always JSON text, for JSONL). Columns starting with `_` are internal (times
in epoch ms, delivery days) and never written.
"""

from __future__ import annotations

import polars as pl

TOOL_CALL_DTYPE = pl.Struct({"name": pl.String, "status": pl.String, "arguments": pl.String})

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String(),
    "occurred_at": pl.String(),
    "scenario": pl.String(),
    "model": pl.String(),
    "prompt_version": pl.String(),
    "autonomy_level": pl.String(),
    "input_text": pl.String(),
    "output_text": pl.String(),
    "confidence": pl.Float64(),
    "status": pl.String(),
    "latency_ms": pl.Float64(),
    "input_tokens": pl.Int64(),
    "output_tokens": pl.Int64(),
    "tool_calls": pl.List(TOOL_CALL_DTYPE),
    "tool_calls_json": pl.String(),
    "decision_path": pl.String(),
    "decision_path_json": pl.String(),
    "trace_id": pl.String(),
    "attributes": pl.String(),
}

INTERVENTION_SCHEMA: dict[str, pl.DataType] = {
    "intervention_id": pl.String(),
    "event_id": pl.String(),
    "occurred_at": pl.String(),
    "action": pl.String(),
    "reviewer_id": pl.String(),
    "final_text": pl.String(),
    "reason_code": pl.String(),
    "comment": pl.String(),
    "review_seconds": pl.Float64(),
}

SCHEMAS: dict[str, dict[str, pl.DataType]] = {"events": EVENT_SCHEMA, "interventions": INTERVENTION_SCHEMA}

# Per family, the nested fields as written in JSONL (column holding JSON text) and in CSV/Parquet.
JSON_TEXT_COLUMNS: dict[str, dict[str, str]] = {
    "events": {"tool_calls": "tool_calls_json", "decision_path": "decision_path_json", "attributes": "attributes"},
    "interventions": {},
}
CELL_COLUMNS: dict[str, dict[str, str]] = {
    "events": {"tool_calls": "tool_calls_json", "decision_path": "decision_path", "attributes": "attributes"},
    "interventions": {},
}


def public(frame: pl.DataFrame, family: str) -> pl.DataFrame:
    """The frame restricted to its family's schema columns, in schema order."""
    return frame.select(list(SCHEMAS[family]))
