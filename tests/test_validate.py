"""Record validation against the contracts: each rule, normalisation, and the reason codes."""

from datetime import datetime, timezone

import pytest

from flywheel.contracts import REASONS
from flywheel.ingest.validate import parse_timestamp, primary_reason, validate_record

EVENT = {
    "event_id": "e1", "occurred_at": "2026-03-01T23:30:00-02:00", "scenario": "refund_request",
    "model": "m1", "autonomy_level": "assist", "status": "ok", "confidence": 0.8,
    "latency_ms": 120, "input_tokens": 10, "output_tokens": 20,
    "tool_calls": [{"name": "lookup", "status": "denied", "arguments": {"id": 1}}],
    "decision_path": {"route": "human_review"}, "attributes": {"team": "support"},
}
INTERVENTION = {"intervention_id": "i1", "event_id": "e1", "occurred_at": "2026-03-02T10:00:00Z",
                "action": "edited", "final_text": "Fixed", "review_seconds": 30}


def test_valid_event_is_normalised():
    row, problems = validate_record("events", EVENT)
    assert problems == []
    assert row["occurred_at"] == datetime(2026, 3, 2, 1, 30, tzinfo=timezone.utc)  # offset applied
    assert row["prompt_version"] == "unversioned"
    assert row["latency_ms"] == 120.0 and isinstance(row["latency_ms"], float)
    assert row["tool_calls"] == [{"name": "lookup", "status": "denied", "arguments": '{"id":1}'}]
    assert row["decision_path"] == '{"route":"human_review"}'
    assert row["attributes"] == '{"team":"support"}'


def test_unknown_top_level_fields_are_kept_in_attributes():
    row, _ = validate_record("events", {**EVENT, "tenant": "acme"})
    assert row["attributes"] == '{"team":"support","tenant":"acme"}'


def test_record_hash_ignores_offset_spelling_but_not_content():
    a, _ = validate_record("events", EVENT)
    b, _ = validate_record("events", {**EVENT, "occurred_at": "2026-03-02T01:30:00Z"})
    c, _ = validate_record("events", {**EVENT, "output_text": "different"})
    assert a["record_hash"] == b["record_hash"] != c["record_hash"]


@pytest.mark.parametrize("change, code", [
    ({"event_id": None}, "missing_field"),
    ({"scenario": ""}, "missing_field"),
    ({"confidence": "high"}, "wrong_type"),
    ({"input_tokens": 12.5}, "wrong_type"),
    ({"latency_ms": True}, "wrong_type"),
    ({"occurred_at": "2026-03-01T10:00:00"}, "bad_timestamp"),
    ({"occurred_at": "yesterday"}, "bad_timestamp"),
    ({"occurred_at": "2026-02-30T10:00:00Z"}, "bad_timestamp"),
    ({"confidence": 1.7}, "out_of_range"),
    ({"latency_ms": -5}, "out_of_range"),
    ({"confidence": float("nan")}, "out_of_range"),
    ({"status": "crashed"}, "unknown_enum"),
    ({"autonomy_level": "full"}, "unknown_enum"),
    ({"tool_calls": [{"name": "x", "status": "maybe"}]}, "unknown_enum"),
    ({"tool_calls": "lookup"}, "wrong_type"),
    ({"attributes": "not an object"}, "wrong_type"),
])
def test_each_event_rule_has_its_reason(change, code):
    row, problems = validate_record("events", {**EVENT, **change})
    assert row is None
    assert primary_reason(problems) == code
    assert code in REASONS


def test_first_reason_in_contract_order_names_the_record_and_all_are_listed():
    row, problems = validate_record("events", {**EVENT, "status": "crashed", "event_id": None})
    assert primary_reason(problems) == "missing_field"
    assert {p.code for p in problems} == {"missing_field", "unknown_enum"}


def test_edited_without_final_text_is_missing_field():
    row, problems = validate_record("interventions", {**INTERVENTION, "final_text": None})
    assert row is None and primary_reason(problems) == "missing_field"
    assert "final_text" in problems[0].message


@pytest.mark.parametrize("change, code", [
    ({"action": "approved"}, "unknown_enum"),
    ({"review_seconds": -1}, "out_of_range"),
    ({"event_id": ""}, "missing_field"),
])
def test_intervention_rules(change, code):
    row, problems = validate_record("interventions", {**INTERVENTION, **change})
    assert row is None and primary_reason(problems) == code


def test_loose_mode_reads_numbers_and_json_from_text():
    cells = {k: (str(v) if not isinstance(v, (dict, list)) else None) for k, v in EVENT.items()}
    cells["tool_calls"] = '[{"name": "lookup", "status": "ok"}]'
    cells["attributes"] = '{"a": 1}'
    cells["decision_path"] = "auto"
    row, problems = validate_record("events", cells, loose=True)
    assert problems == []
    assert row["confidence"] == 0.8 and row["input_tokens"] == 10
    assert row["tool_calls"] == [{"name": "lookup", "status": "ok", "arguments": None}]
    assert row["decision_path"] == '"auto"'  # a plain string is kept as a JSON string
    strict_row, strict_problems = validate_record("events", {**EVENT, "confidence": "0.8"})
    assert strict_row is None and primary_reason(strict_problems) == "wrong_type"


def test_parse_timestamp_handles_nanoseconds_and_naive_datetimes():
    assert parse_timestamp("2026-03-01T10:00:00.123456789Z") == datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)
    assert isinstance(parse_timestamp(datetime(2026, 3, 1)), str)  # no offset: an error text


def test_json_nested_too_deeply_to_store_is_a_reason_not_a_crash():
    nested: object = 1
    for _ in range(300):
        nested = [nested]
    row, problems = validate_record("events", {**EVENT, "attributes": {"x": nested}})
    assert row is None and primary_reason(problems) == "invalid_json" and "nested" in problems[0].message


def test_a_value_json_cannot_hold_is_named_not_called_too_deep():
    """Found in review: a decimal or bytes inside a JSON field (a Parquet struct can hold them) was
    quarantined as "nested too deeply"; the message now names what orjson could not write."""
    from decimal import Decimal

    deep: list = []
    for _ in range(300):
        deep = [deep]
    for value, words in ((Decimal("1.5"), "not JSON serializable: decimal.Decimal"), (b"x", "serializable: bytes"),
                         (2**70, "64-bit range"), (deep, "nested too deeply to store")):
        row, problems = validate_record("events", {**EVENT, "attributes": {"v": value}})
        assert row is None and [p.code for p in problems] == ["invalid_json"], value
        assert words in problems[0].message, problems
