"""The published JSON Schemas match the contracts, and agree with the validator on examples."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from flywheel.contracts import event_json_schema, intervention_json_schema
from flywheel.ingest.validate import validate_record
from test_validate import EVENT, INTERVENTION

ROOT = Path(__file__).resolve().parents[1]


def test_committed_schemas_are_generated_from_the_contracts():
    assert json.loads((ROOT / "docs/schemas/event.schema.json").read_text()) == event_json_schema()
    assert json.loads((ROOT / "docs/schemas/intervention.schema.json").read_text()) == intervention_json_schema()


@pytest.mark.parametrize("kind, record", [
    ("events", EVENT),
    ("events", {**EVENT, "confidence": 1.5}),
    ("events", {**EVENT, "status": "crashed"}),
    ("events", {**EVENT, "occurred_at": "2026-03-01T10:00:00"}),
    ("events", {k: v for k, v in EVENT.items() if k != "scenario"}),
    ("events", {**EVENT, "input_tokens": 1.5}),
    ("events", {**EVENT, "tool_calls": [{"name": "t", "status": "weird"}]}),
    ("interventions", INTERVENTION),
    ("interventions", {**INTERVENTION, "final_text": None}),
    ("interventions", {**INTERVENTION, "action": "approved"}),
    ("interventions", {**INTERVENTION, "review_seconds": -2}),
])
def test_schema_and_validator_agree(kind, record):
    schema = event_json_schema() if kind == "events" else intervention_json_schema()
    by_schema = jsonschema.Draft202012Validator(schema).is_valid(record)
    row, _ = validate_record(kind, record)
    assert by_schema == (row is not None)
