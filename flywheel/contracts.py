"""The input contracts: the fields of an AI audit event and of a human intervention.

This module is the single source of truth for field names, types, enums and the quarantine reason
codes. The parser, the generator, the Great Expectations suites (kept equal by a test) and the JSON
Schemas in `docs/schemas/` are all derived from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

AUTONOMY_LEVELS: tuple[str, ...] = ("shadow", "assist", "gated", "autonomous")
EVENT_STATUSES: tuple[str, ...] = ("ok", "error", "timeout", "fallback")
TOOL_STATUSES: tuple[str, ...] = ("ok", "error", "denied")
ACTIONS: tuple[str, ...] = ("accepted", "edited", "rejected", "escalated", "reverted")

UNVERSIONED = "unversioned"

# An intervention may be stamped a little before its event by a reviewer's clock; beyond this it
# is quarantined as `intervention_before_event`.
CLOCK_SKEW_TOLERANCE = timedelta(minutes=5)

# A record larger than this (bytes, as it came in) is quarantined whole as `record_too_large`.
MAX_RECORD_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Field:
    """One field of a contract.

    `kind` is one of: string, timestamp, number, integer, enum, json (object or string),
    object (JSON object), tool_calls.
    """

    name: str
    kind: str
    required: bool = False
    enum: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""


EVENT_FIELDS: tuple[Field, ...] = (
    Field("event_id", "string", True, description="Unique id of the AI invocation."),
    Field("occurred_at", "timestamp", True, description="When the AI ran; RFC 3339 with an offset or Z; stored as UTC."),
    Field("scenario", "string", True, description="The category of work, e.g. refund_request."),
    Field("model", "string", True, description="The model, as OpenTelemetry's gen_ai.request.model."),
    Field("prompt_version", "string", description=f"Prompt version; missing means '{UNVERSIONED}'."),
    Field("autonomy_level", "enum", True, AUTONOMY_LEVELS, description="The level the AI ran at."),
    Field("input_text", "string", description="What the AI was given."),
    Field("output_text", "string", description="What the AI produced."),
    Field("confidence", "number", minimum=0.0, maximum=1.0, description="The AI's confidence in [0, 1]."),
    Field("status", "enum", True, EVENT_STATUSES, description="ok, error, timeout, or fallback (the AI failed and a fallback path served)."),
    Field("latency_ms", "number", minimum=0.0, description="Latency in milliseconds."),
    Field("input_tokens", "integer", minimum=0, description="gen_ai.usage.input_tokens."),
    Field("output_tokens", "integer", minimum=0, description="gen_ai.usage.output_tokens."),
    Field("tool_calls", "tool_calls", description="Tools called: a list of {name, status: ok/error/denied, arguments}."),
    Field("decision_path", "json", description="How the product acted on the output (JSON object or string)."),
    Field("trace_id", "string", description="Trace id, to join with traces."),
    Field("attributes", "object", description="Anything else, as a JSON object."),
)

INTERVENTION_FIELDS: tuple[Field, ...] = (
    Field("intervention_id", "string", True, description="Unique id of the human intervention."),
    Field("event_id", "string", True, description="The AI event it acts on; may arrive days after its event, or before it."),
    Field("occurred_at", "timestamp", True, description="When the human acted; RFC 3339 with an offset or Z; stored as UTC."),
    Field("action", "enum", True, ACTIONS, description="accepted, edited, rejected, escalated, or reverted (a human undid an action the AI took alone)."),
    Field("reviewer_id", "string", description="Who reviewed."),
    Field("final_text", "string", description="What the human shipped; required when action is edited."),
    Field("reason_code", "string", description="The reviewer's reason code."),
    Field("comment", "string", description="The reviewer's free-text comment."),
    Field("review_seconds", "number", minimum=0.0, description="Time the review took, in seconds."),
)

CONTRACTS: dict[str, tuple[Field, ...]] = {"events": EVENT_FIELDS, "interventions": INTERVENTION_FIELDS}
ID_FIELD: dict[str, str] = {"events": "event_id", "interventions": "intervention_id"}

# Quarantine reason codes, in the order a record is checked: a record gets the first that applies
# as its `reason_code`; its `reason` text lists every problem found.
REASONS: dict[str, str] = {
    "bad_file": "the whole file could not be read (not gzip, corrupt Parquet, unreadable CSV, wrong schema)",
    "not_utf8": "the record's bytes are not valid UTF-8",
    "record_too_large": f"the record is larger than {MAX_RECORD_BYTES} bytes",
    "bad_row": "a CSV row whose number of columns differs from its header",
    "invalid_json": "not a JSON object (truncated line, syntax error, NaN/Infinity, an array or scalar)",
    "missing_field": "a required field is missing, null or empty (final_text for edited)",
    "wrong_type": "a field has the wrong type (a string where a number belongs, a fraction where an integer belongs)",
    "bad_timestamp": "a timestamp that is not RFC 3339 with an offset or Z",
    "out_of_range": "a number out of its range (confidence outside [0, 1], a negative latency, token count or review time)",
    "unknown_enum": "a value outside its enum (autonomy_level, status, action, tool call status)",
    "conflicting_duplicate": "the id was already stored with different content; the first copy seen is kept",
    "intervention_before_event": "the intervention is stamped before its event (beyond the clock-skew tolerance)",
}


def event_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one AI audit event."""
    return _schema("AI audit event", EVENT_FIELDS, extra={})


def intervention_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one human intervention, with final_text required for edited."""
    return _schema("Human intervention", INTERVENTION_FIELDS, extra={
        "allOf": [{
            "if": {"properties": {"action": {"const": "edited"}}, "required": ["action"]},
            "then": {"required": ["final_text"], "properties": {"final_text": {"type": "string", "minLength": 1}}},
        }],
    })


_TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"


def _field_schema(f: Field) -> dict[str, Any]:
    if f.kind == "string":
        out: dict[str, Any] = {"type": "string"}
        if f.required:
            out["minLength"] = 1
    elif f.kind == "timestamp":
        out = {"type": "string", "format": "date-time", "pattern": _TIMESTAMP_PATTERN}
    elif f.kind in ("number", "integer"):
        out = {"type": f.kind}
        if f.minimum is not None:
            out["minimum"] = f.minimum
        if f.maximum is not None:
            out["maximum"] = f.maximum
    elif f.kind == "enum":
        out = {"type": "string", "enum": list(f.enum)}
    elif f.kind == "json":
        out = {"type": ["object", "string"]}
    elif f.kind == "object":
        out = {"type": "object"}
    elif f.kind == "tool_calls":
        out = {"type": "array", "items": {
            "type": "object",
            "required": ["name", "status"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "status": {"type": "string", "enum": list(TOOL_STATUSES)},
                "arguments": {},
            },
        }}
    else:  # pragma: no cover - guarded by the field table above
        raise ValueError(f"unknown field kind {f.kind!r}")
    if not f.required:
        out = {"anyOf": [out, {"type": "null"}]}
    out["description"] = f.description
    return out


def _schema(title: str, fields: tuple[Field, ...], extra: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "required": [f.name for f in fields if f.required],
        "properties": {f.name: _field_schema(f) for f in fields},
        "additionalProperties": True,
    }
    if extra.get("allOf"):
        schema["allOf"] = extra["allOf"]
    return schema


def write_json_schemas(folder: Path) -> list[Path]:
    """Write `event.schema.json` and `intervention.schema.json` into `folder`; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, schema in (("event", event_json_schema()), ("intervention", intervention_json_schema())):
        path = folder / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2) + "\n")
        out.append(path)
    return out


if __name__ == "__main__":  # python -m flywheel.contracts docs/schemas
    import sys

    for written in write_json_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")):
        print(written)
