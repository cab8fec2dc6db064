"""Tests of the OpenTelemetry adapter: OTLP/JSON spans -> contract records, and back."""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from flywheel.contracts import ACTIONS, AUTONOMY_LEVELS, EVENT_STATUSES, TOOL_STATUSES
from flywheel.otlp import OtlpRecord, export_otlp, parse_otlp

FIXTURE = Path(__file__).parent / "fixtures" / "otlp" / "two_traces.json"

RESOURCE_A = {
    "service.name": "refund-service",
    "service.version": "2.4.1",
    "deployment.environment.name": "prod",
    "telemetry.sdk.language": "python",
    "telemetry.sdk.name": "opentelemetry",
    "telemetry.sdk.version": "1.27.0",
}
RESOURCE_B = {"service.name": "support-bot", "telemetry.sdk.language": "nodejs"}


def _parse(doc: Any) -> tuple[list[OtlpRecord], list[OtlpRecord]]:
    return parse_otlp(orjson.dumps(doc))


def _request(*spans: Any, resource: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {"attributes": resource or []}, "scopeSpans": [{"spans": list(spans)}]}]}


def _str(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _chat(span_id: str = "00f067aa0ba902b7", *attrs: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A minimal chat span with extra attributes and span fields."""
    return {
        "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": span_id, "name": "chat",
        "startTimeUnixNano": "1740823200000000000", "endTimeUnixNano": "1740823200500000000",
        "attributes": [_str("gen_ai.operation.name", "chat"), *attrs], **fields,
    }


# ---------------------------------------------------------------------------------------------
# the hand-written exporter-like fixture


@pytest.fixture(scope="module")
def fixture_doc() -> dict[str, Any]:
    return orjson.loads(FIXTURE.read_bytes())


@pytest.fixture(scope="module")
def parsed() -> tuple[list[OtlpRecord], list[OtlpRecord]]:
    return parse_otlp(FIXTURE.read_bytes())


def test_fixture_yields_only_the_ai_spans_by_file_position(parsed: tuple[list[OtlpRecord], list[OtlpRecord]]) -> None:
    events, _ = parsed
    # Spans 1-3 are tool spans, 4 and 9 HTTP spans, 8 an embeddings span: none is an AI event.
    assert [e.ordinal for e in events] == [5, 6, 7]
    assert all(e.error is None for e in events)


def test_fixture_agent_span_with_tool_children(parsed: tuple[list[OtlpRecord], list[OtlpRecord]]) -> None:
    assert parsed[0][0].record == {
        "event_id": "evt-refund-001",
        "occurred_at": "2025-03-01T10:00:00Z",
        "scenario": "refund_request",
        "model": "gpt-4o",
        "prompt_version": "refund-v3",
        "autonomy_level": "gated",
        "input_text": "You are a refunds assistant.\nRefund order A-1001, it arrived broken.",
        "output_text": "I could not issue the refund automatically;\na colleague will review it today.",
        "confidence": 0.82,
        "status": "ok",
        "latency_ms": 1234.5,
        "input_tokens": 512,
        "output_tokens": 64,
        "tool_calls": [
            {"name": "lookup_order", "status": "ok", "arguments": {"order_id": "A-1001"}},
            {"name": "issue_refund", "status": "error", "arguments": {"order_id": "A-1001", "amount": 42.5}},
            {"name": "close_account", "status": "denied"},
        ],
        "decision_path": {"route": "auto_refund", "threshold": 0.8, "gated_by": ["amount"]},
        "trace_id": "5b8efff798038103d269b633813fc60c",
        "attributes": {
            **RESOURCE_A,
            "gen_ai.provider.name": "openai",
            "gen_ai.agent.name": "refund-agent",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.max_tokens": 1024,
            "gen_ai.response.finish_reasons": ["stop"],
            "server.address": "api.openai.com",
            "server.port": 443,
        },
    }


def test_fixture_timeout_span(parsed: tuple[list[OtlpRecord], list[OtlpRecord]]) -> None:
    # ERROR status given by enum name, error.type timeout, indexed gen_ai.prompt.<n>.content,
    # upper-case hex trace id, an intValue written as a JSON number.
    assert parsed[0][1].record == {
        "event_id": "evt-status-002",
        "occurred_at": "2025-03-01T10:05:00.250Z",
        "scenario": "order_status",
        "model": "gpt-4o-mini",
        "autonomy_level": "assist",
        "input_text": "You are a support agent.\nWhere is order B-2002?",
        "status": "timeout",
        "latency_ms": 30000.0,
        "input_tokens": 88,
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "attributes": {**RESOURCE_B, "gen_ai.system": "openai", "error.type": "timeout"},
    }


def test_fixture_fallback_span(parsed: tuple[list[OtlpRecord], list[OtlpRecord]]) -> None:
    # flywheel.status and flywheel.output_text win over the OK status and the output messages;
    # structured (arrayValue) input messages; the model only as gen_ai.response.model; no event id.
    assert parsed[0][2].record == {
        "event_id": "0af7651916cd43dd8448eb211c80319c-53995c3f42cd8ad8",
        "occurred_at": "2025-03-01T10:05:00.123456789Z",
        "scenario": "return_request",
        "model": "gpt-4o-2024-08-06",
        "autonomy_level": "autonomous",
        "input_text": "I want to return my blender.",
        "output_text": "A human agent will follow up on your return within 24 hours.",
        "confidence": 0.31,
        "status": "fallback",
        "latency_ms": 2500.0,
        "decision_path": "fallback:human_queue",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "attributes": {**RESOURCE_B, "gen_ai.provider.name": "openai"},
    }


def test_fixture_interventions(parsed: tuple[list[OtlpRecord], list[OtlpRecord]]) -> None:
    _, interventions = parsed
    # Span events are numbered over every span event in the file (exceptions and retries too).
    assert [i.ordinal for i in interventions] == [3, 5]
    assert [i.record for i in interventions] == [
        {
            "intervention_id": "int-9001",
            "event_id": "evt-refund-001",
            "occurred_at": "2025-03-02T08:30:00Z",
            "action": "edited",
            "reviewer_id": "rev-17",
            "final_text": "Your refund of $42.50 has been issued.",
            "reason_code": "tool_failure",
            "comment": "Issued the refund by hand.",
            "review_seconds": 95.5,
        },
        {
            "intervention_id": "int-9002",
            "event_id": "0af7651916cd43dd8448eb211c80319c-53995c3f42cd8ad8",
            "occurred_at": "2025-03-03T16:45:10.500Z",
            "action": "rejected",
            "reviewer_id": "rev-04",
            "reason_code": "wrong_policy",
            "review_seconds": 40,
        },
    ]


def test_fixture_raw_is_the_source_span_and_span_event(
    parsed: tuple[list[OtlpRecord], list[OtlpRecord]], fixture_doc: dict[str, Any]
) -> None:
    events, interventions = parsed
    agent_span = fixture_doc["resourceSpans"][0]["scopeSpans"][1]["spans"][0]
    assert orjson.loads(events[0].raw) == agent_span
    assert "\n" not in events[0].raw and ", " not in events[0].raw[:200]
    assert orjson.loads(interventions[0].raw) == agent_span["events"][1]


# ---------------------------------------------------------------------------------------------
# round trip


def _events() -> list[dict[str, Any]]:
    return [
        {
            "event_id": "e1", "occurred_at": "2025-03-01T10:00:00Z", "scenario": "refund_request",
            "model": "gpt-4o", "prompt_version": "v3", "autonomy_level": "gated",
            "input_text": "Refund A-1001\nplease", "output_text": "Done.", "confidence": 0.82,
            "status": "ok", "latency_ms": 1234.5, "input_tokens": 512, "output_tokens": 64,
            "tool_calls": [
                {"name": "lookup_order", "status": "ok", "arguments": {"order_id": "A-1001"}},
                {"name": "issue_refund", "status": "error", "arguments": "not json {"},
                {"name": "close_account", "status": "denied", "arguments": None},
                {"name": "notify", "status": "ok"},
            ],
            "decision_path": {"route": "auto", "steps": [1, 2]},
            "trace_id": "5b8efff798038103d269b633813fc60c",
            "attributes": {"service.name": "refund-service", "gen_ai.response.model": "gpt-4o-2024-08-06",
                           "tags": ["a", "b"], "nested": {"k": 1, "f": 0.5, "b": True, "n": None}},
        },
        {
            "event_id": "e2", "occurred_at": "2025-03-01T10:05:00.123456789Z", "scenario": "order_status",
            "model": "gpt-4o-mini", "autonomy_level": "assist", "status": "timeout", "latency_ms": 30000,
            "decision_path": "escalate", "trace_id": "0af7651916cd43dd8448eb211c80319c",
        },
        {
            "event_id": "e3", "occurred_at": "2025-03-01T10:06:00.000001Z", "scenario": "return_request",
            "model": "gpt-4o", "autonomy_level": "autonomous", "confidence": 1, "status": "fallback",
            "latency_ms": 0.000001, "output_text": "", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        },
        {
            "event_id": "e4", "occurred_at": "2025-03-01T10:07:00.250Z", "scenario": "refund_request",
            "model": "gpt-4o", "autonomy_level": "shadow", "status": "error", "latency_ms": 0.1234567,
            "tool_calls": [], "trace_id": "4bf92f3577b34da6a3ce929d0e0e4737",
        },
    ]


def _interventions() -> list[dict[str, Any]]:
    return [
        {"intervention_id": "i1", "event_id": "e1", "occurred_at": "2025-03-02T08:30:00Z", "action": "edited",
         "reviewer_id": "rev-17", "final_text": "Refund issued.", "reason_code": "tone", "comment": "ok",
         "review_seconds": 95.5},
        {"intervention_id": "i2", "event_id": "e-elsewhere", "occurred_at": "2025-03-02T09:00:00.500Z",
         "action": "accepted"},
        {"intervention_id": "i3", "event_id": "e2", "occurred_at": "2025-03-02T10:00:00Z", "action": "escalated",
         "review_seconds": 12},
        {"intervention_id": "i4", "event_id": "e-elsewhere", "occurred_at": "2025-03-04T00:00:00.000000001Z",
         "action": "reverted"},
    ]


def _round_trip(events: list[dict[str, Any]], interventions: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    parsed_events, parsed_interventions = parse_otlp(orjson.dumps(export_otlp(events, interventions)))
    assert all(r.error is None for r in parsed_events + parsed_interventions)
    return [r.record for r in parsed_events], [r.record for r in parsed_interventions]


def _by_id(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: str(r.get("intervention_id")))


def test_round_trip_gives_back_the_records() -> None:
    events, interventions = _events(), _interventions()
    back_events, back_interventions = _round_trip(copy.deepcopy(events), copy.deepcopy(interventions))
    assert back_events == events
    # Interventions come back grouped by the span they hang on.
    assert [i["intervention_id"] for i in back_interventions] == ["i1", "i3", "i2", "i4"]
    assert _by_id(back_interventions) == _by_id(interventions)


def test_fixture_survives_export_and_parse_again(parsed: tuple[list[OtlpRecord], list[OtlpRecord]]) -> None:
    events = [r.record for r in parsed[0] if r.record is not None]
    interventions = [r.record for r in parsed[1] if r.record is not None]
    back_events, back_interventions = _round_trip(copy.deepcopy(events), copy.deepcopy(interventions))
    assert back_events == events
    assert back_interventions == interventions


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def _timestamp(draw: st.DrawFn) -> str:
    """An RFC 3339 UTC timestamp already in the parser's normal form."""
    t = draw(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)))
    ns = draw(st.sampled_from([0, t.microsecond * 1000, t.microsecond * 1000 + draw(st.integers(1, 999))]))
    frac = "" if ns == 0 else f".{ns // 1_000_000:03d}" if ns % 1_000_000 == 0 else \
        f".{ns // 1000:06d}" if ns % 1000 == 0 else f".{ns:09d}"
    return f"{t:%Y-%m-%dT%H:%M:%S}{frac}Z"


def _optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


_TOOL_CALL = st.builds(lambda required, optional: {**required, **optional},
                       st.fixed_dictionaries({"status": st.sampled_from(TOOL_STATUSES)}),
                       _optional(name=st.text(max_size=10), arguments=_JSON))
_EVENT = st.builds(
    lambda required, optional: {**required, **optional},
    st.fixed_dictionaries({
        "event_id": st.text(max_size=12), "status": st.sampled_from(EVENT_STATUSES),
        "trace_id": st.binary(min_size=16, max_size=16).filter(any).map(bytes.hex),
    }),
    _optional(
        occurred_at=_timestamp(), scenario=st.text(max_size=10), model=st.text(max_size=10),
        prompt_version=st.text(max_size=5), autonomy_level=st.sampled_from(AUTONOMY_LEVELS),
        input_text=st.text(), output_text=st.text(), confidence=st.floats(0, 1) | st.integers(0, 1),
        latency_ms=st.floats(-1e9, 1e9) | st.integers(0, 10**9), input_tokens=st.integers(0, 2**40),
        output_tokens=st.integers(0, 2**40), tool_calls=st.lists(_TOOL_CALL, max_size=3),
        decision_path=st.dictionaries(st.text(max_size=5), _JSON, max_size=3)
        | st.text(max_size=10).filter(lambda t: not t.lstrip().startswith("{")),
        attributes=st.dictionaries(st.text(max_size=8).map(lambda k: "app." + k), _JSON, min_size=1, max_size=3),
    ),
)


@settings(max_examples=150, deadline=None)
@given(events=st.lists(_EVENT, max_size=4), data=st.data())
def test_round_trip_property(events: list[dict[str, Any]], data: st.DataObject) -> None:
    event_ids = [e["event_id"] for e in events] + ["not-exported"]
    intervention = st.builds(
        lambda required, optional: {**required, **optional},
        st.fixed_dictionaries({"intervention_id": st.text(max_size=8), "event_id": st.sampled_from(event_ids),
                               "occurred_at": _timestamp(), "action": st.sampled_from(ACTIONS)}),
        _optional(reviewer_id=st.text(max_size=5), final_text=st.text(), reason_code=st.text(max_size=5),
                  comment=st.text(), review_seconds=st.floats(0, 1e6) | st.integers(0, 10**6)),
    )
    interventions = data.draw(st.lists(intervention, max_size=4))
    back_events, back_interventions = _round_trip(copy.deepcopy(events), copy.deepcopy(interventions))
    assert back_events == events

    def key(r: dict[str, Any]) -> bytes:
        return orjson.dumps(r, option=orjson.OPT_SORT_KEYS)

    assert sorted(back_interventions, key=key) == sorted(interventions, key=key)


def test_placeholder_span_yields_only_its_interventions() -> None:
    doc = export_otlp([], [{"intervention_id": "i9", "event_id": "e-late", "occurred_at": "2025-03-02T08:30:00Z",
                            "action": "accepted"}])
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert len(spans) == 1
    assert {"key": "flywheel.placeholder", "value": {"boolValue": True}} in spans[0]["attributes"]
    events, interventions = _parse(doc)
    assert events == []
    assert [i.record for i in interventions] == [
        {"intervention_id": "i9", "event_id": "e-late", "occurred_at": "2025-03-02T08:30:00Z", "action": "accepted"}
    ]


def test_round_trip_keeps_values_the_validator_must_reject() -> None:
    events = [
        {"event_id": "d1", "occurred_at": "yesterday", "scenario": "", "model": 7, "autonomy_level": "rogue",
         "confidence": "high", "status": "maybe", "latency_ms": "12", "input_tokens": 1.5,
         "output_tokens": -3, "input_text": 42, "tool_calls": [{"name": "x", "status": "exploded", "arguments": 1},
                                                                {"status": "ok"}],
         "decision_path": ["not", "an", "object"], "trace_id": "not-a-hex-id"},
        {"event_id": "d2", "occurred_at": "2025-03-01T10:00:00Z", "scenario": "s", "model": "m",
         "autonomy_level": "assist", "status": "ok", "latency_ms": -5.0,
         "tool_calls": [{"name": "y"}], "attributes": {"error.type": "TimeoutError"},
         "trace_id": "5B8EFFF798038103D269B633813FC60C"},
        {"event_id": "d3", "occurred_at": "2025-03-01T10:00:00Z", "status": ["ok"], "tool_calls": "none",
         "trace_id": "0af7651916cd43dd8448eb211c80319c"},
    ]
    interventions = [
        {"intervention_id": 5, "event_id": "d1", "occurred_at": "2025-13-45T99:00:00Z", "action": "shrugged",
         "review_seconds": "long", "final_text": ""},
    ]
    back_events, back_interventions = _round_trip(copy.deepcopy(events), copy.deepcopy(interventions))
    assert back_events == events
    assert back_interventions == interventions


def test_round_trip_normalisation() -> None:
    events = [
        {"event_id": "n1", "occurred_at": "2025-03-01T11:00:00.25+01:00", "scenario": "s", "model": "m",
         "autonomy_level": "assist", "prompt_version": None, "attributes": {},
         "decision_path": '{"route": "auto"}'},
        {"occurred_at": "2025-03-01T10:00:00Z", "scenario": "s", "model": "m", "autonomy_level": "assist",
         "status": "ok"},
    ]
    back, _ = _round_trip(events, [])
    assert back[0] == {
        "event_id": "n1",
        "occurred_at": "2025-03-01T10:00:00.250Z",  # UTC with Z, 0/3/6/9 fractional digits
        "scenario": "s", "model": "m", "autonomy_level": "assist",
        "status": "ok",  # OTLP has no 'unknown' status: a missing one reads back as ok
        "decision_path": {"route": "auto"},  # JSON-object text becomes the object
        "trace_id": back[0]["trace_id"],  # a missing trace id is invented
    }  # and null fields and empty attributes come back absent
    assert len(back[0]["trace_id"]) == 32 and int(back[0]["trace_id"], 16)
    # A missing event id becomes <traceId>-<spanId>.
    assert back[1]["event_id"] == f"{back[1]['trace_id']}-{back[1]['event_id'].split('-')[1]}"
    assert len(back[1]["event_id"]) == 32 + 1 + 16


def test_export_is_plain_otlp_json() -> None:
    doc = export_otlp(_events()[:1], _interventions()[:1])
    orjson.dumps(doc)
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    chat, tools = spans[0], spans[1:]
    assert chat["name"] == "chat gpt-4o" and chat["kind"] == 3
    assert chat["traceId"] == "5b8efff798038103d269b633813fc60c" and len(chat["spanId"]) == 16
    assert chat["startTimeUnixNano"] == "1740823200000000000"
    assert chat["endTimeUnixNano"] == "1740823201234500000"
    attrs = {a["key"]: a["value"] for a in chat["attributes"]}
    assert attrs["gen_ai.operation.name"] == {"stringValue": "chat"}
    assert attrs["gen_ai.usage.input_tokens"] == {"intValue": "512"}
    assert attrs["flywheel.confidence"] == {"doubleValue": 0.82}
    assert orjson.loads(attrs["gen_ai.input.messages"]["stringValue"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Refund A-1001\nplease"}]}
    ]
    assert "flywheel.status" not in attrs and "flywheel.latency_ms" not in attrs
    assert [t["name"] for t in tools] == ["execute_tool lookup_order", "execute_tool issue_refund",
                                          "execute_tool close_account", "execute_tool notify"]
    assert {t["parentSpanId"] for t in tools} == {chat["spanId"]}
    assert tools[1]["status"] == {"code": 2}
    assert chat["events"][0]["name"] == "flywheel.intervention"
    assert chat["events"][0]["timeUnixNano"] == "1740904200000000000"


def test_export_rejects_attributes_that_collide_with_mapped_ones() -> None:
    event = {**_events()[1], "attributes": {"flywheel.scenario": "other"}}
    with pytest.raises(ValueError, match="flywheel.scenario"):
        export_otlp([event], [])


# ---------------------------------------------------------------------------------------------
# malformed input


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"{\"resourceSpans\": [", "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"event_id": "e1", "scenario": "s"}', "no resourceSpans"),
        (b'{"resourceLogs": []}', "resourceLogs"),
        (b'{"resourceSpans": {}}', "no resourceSpans list"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": 5}]}]}', r"resourceSpans\[0\].scopeSpans\[0\]"),
        (b'{"resourceSpans": [{"resource": {"attributes": 1}, "scopeSpans": []}]}', "resource"),
    ],
)
def test_not_otlp_raises(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_otlp(data)


def test_span_that_is_not_an_object_is_an_error_record() -> None:
    good = _chat("00f067aa0ba902b7", _str("flywheel.scenario", "s"))
    events, interventions = _parse(_request(_chat("1111111111111111"), 42, good))
    assert [e.ordinal for e in events] == [1, 2, 3]  # in file order, error records included
    assert events[1] == OtlpRecord(2, None, "42", "span 2: not an object but a JSON int")
    assert events[2].error is None and events[2].record["scenario"] == "s"
    assert interventions == []


def test_span_with_unreadable_attributes_is_an_error_record() -> None:
    span = _chat()
    span["attributes"].append({"value": {"stringValue": "no key"}})
    events, _ = _parse(_request(span))
    assert events[0].record is None
    assert events[0].error == "span 1: attributes[1] is not a {key, value} object"
    assert orjson.loads(events[0].raw) == span


def test_broken_span_events() -> None:
    span = _chat("00f067aa0ba902b7", _str("flywheel.event_id", "e1"), events=[
        "junk",
        {"name": "flywheel.intervention", "attributes": {"flywheel.intervention.id": "i1"}},
        {"name": "exception", "attributes": "ignored: not an intervention"},
    ])
    events, interventions = _parse(_request(span))
    assert events[0].record is not None
    assert [(i.ordinal, i.record, i.error) for i in interventions] == [
        (1, None, "span event 1: not an object but a JSON str"),
        (2, None, "span event 2: attributes is not a list"),
    ]


def test_wrong_types_are_passed_on_for_the_validator() -> None:
    span = _chat("00f067aa0ba902b7",
                 _str("flywheel.confidence", "0.9"),
                 {"key": "flywheel.scenario", "value": {"intValue": "12"}},
                 {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "many"}},
                 startTimeUnixNano="soon")
    record = _parse(_request(span))[0][0].record
    assert record["confidence"] == "0.9"
    assert record["scenario"] == 12
    assert record["input_tokens"] == "many"
    assert record["occurred_at"] == "soon"
    assert "latency_ms" not in record


# ---------------------------------------------------------------------------------------------
# details of the mapping


@pytest.mark.parametrize(
    ("code", "error_type", "expected"),
    [
        (0, None, "ok"),
        (1, None, "ok"),
        (2, None, "error"),
        ("STATUS_CODE_ERROR", None, "error"),
        (0, "RateLimitError", "error"),
        (0, "TimeoutError", "timeout"),
        (2, "openai.APITimeoutError", "timeout"),
        (2, "DEADLINE_EXCEEDED", "timeout"),
        (2, "504", "timeout"),
        (2, "500", "error"),
        (0, "_OTHER", "error"),
    ],
)
def test_status_inference(code: Any, error_type: str | None, expected: str) -> None:
    attrs = [_str("error.type", error_type)] if error_type else []
    record = _parse(_request(_chat("00f067aa0ba902b7", *attrs, status={"code": code})))[0][0].record
    assert record["status"] == expected


def test_attribute_value_types() -> None:
    span = _chat("00f067aa0ba902b7",
                 {"key": "i", "value": {"intValue": "-9007199254740993"}},
                 {"key": "d", "value": {"doubleValue": 3}},
                 {"key": "nan", "value": {"doubleValue": "NaN"}},
                 {"key": "b", "value": {"boolValue": False}},
                 {"key": "bytes", "value": {"bytesValue": "AAE="}},
                 {"key": "empty", "value": {}},
                 {"key": "arr", "value": {"arrayValue": {"values": [{"intValue": "1"}, {"stringValue": "x"}]}}},
                 {"key": "empty_arr", "value": {"arrayValue": {}}},
                 {"key": "kv", "value": {"kvlistValue": {"values": [_str("a", "b")]}}})
    attrs = _parse(_request(span))[0][0].record["attributes"]
    nan = attrs.pop("nan")
    assert nan != nan
    assert attrs == {"i": -9007199254740993, "d": 3.0, "b": False, "bytes": "AAE=", "empty": None,
                     "arr": [1, "x"], "empty_arr": [], "kv": {"a": "b"}}
    assert isinstance(attrs["d"], float)


def test_base64_ids_are_read_as_hex() -> None:
    span = _chat(traceId="CvdlGRbNQ92ESOshHIAxnA==")
    span["spanId"] = "APBnqgupArc="
    record = _parse(_request(span))[0][0].record
    assert record["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert record["event_id"] == "0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7"


def test_collector_file_exporter_json_lines() -> None:
    # The Collector's file exporter writes one request per line; a tool span usually ends, and
    # so is exported, before its parent.
    tool = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "1111111111111111",
            "parentSpanId": "00f067aa0ba902b7",
            "attributes": [_str("gen_ai.operation.name", "execute_tool"), _str("gen_ai.tool.name", "search")]}
    data = orjson.dumps(_request(tool)) + b"\n\n" + orjson.dumps(_request(_chat())) + b"\n"
    events, _ = parse_otlp(data)
    assert [(e.ordinal, e.record["tool_calls"]) for e in events] == [(2, [{"name": "search", "status": "ok"}])]
    with pytest.raises(ValueError, match="line 3: not JSON"):
        parse_otlp(orjson.dumps(_request(tool)) + b"\n\n" + b'{"resourceSpans": [')


def test_tool_spans_of_other_parents_are_not_tool_calls() -> None:
    other = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "2222222222222222",
             "parentSpanId": "9999999999999999", "attributes": [_str("gen_ai.operation.name", "execute_tool")]}
    other_trace = {**other, "traceId": "5b8efff798038103d269b633813fc60c", "parentSpanId": "00f067aa0ba902b7"}
    record = _parse(_request(other, _chat(), other_trace))[0][0].record
    assert "tool_calls" not in record


def test_messages_in_older_shapes() -> None:
    span = _chat("00f067aa0ba902b7",
                 _str("gen_ai.prompt", '[{"role": "user", "content": "old style"}]'),
                 _str("gen_ai.completion", "plain completion text"),
                 _str("gen_ai.prompt.0.content", "ignored: gen_ai.prompt wins"))
    record = _parse(_request(span))[0][0].record
    assert record["input_text"] == "old style"
    assert record["output_text"] == "plain completion text"
    assert "attributes" not in record


def test_interventions_on_any_span_take_the_event_id_they_are_given() -> None:
    reviewer_span = {
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "3333333333333333", "name": "POST /review",
        "attributes": [_str("flywheel.event_id", "e-from-span")],
        "events": [
            {"timeUnixNano": "1740904200000000000", "name": "flywheel.intervention",
             "attributes": [_str("flywheel.intervention.id", "i1"), _str("flywheel.intervention.action", "accepted")]},
            {"name": "flywheel.intervention",
             "attributes": [_str("flywheel.intervention.id", "i2"),
                            _str("flywheel.intervention.event_id", "e-explicit"),
                            _str("flywheel.intervention.occurred_at", "2025-03-02T08:30:00+02:00")]},
        ],
    }
    events, interventions = _parse(_request(reviewer_span))
    assert events == []
    assert [i.record for i in interventions] == [
        {"intervention_id": "i1", "event_id": "e-from-span", "occurred_at": "2025-03-02T08:30:00Z",
         "action": "accepted"},
        {"intervention_id": "i2", "event_id": "e-explicit", "occurred_at": "2025-03-02T08:30:00+02:00"},
    ]


def test_flywheel_attribute_overrides_any_field() -> None:
    span = _chat("00f067aa0ba902b7",
                 _str("gen_ai.request.model", "gpt-4o"), _str("flywheel.model", "my-finetune"),
                 _str("flywheel.occurred_at", "2025-01-01T00:00:00Z"),
                 {"key": "flywheel.latency_ms", "value": {"doubleValue": 7.5}},
                 _str("flywheel.tool_calls", '[{"name": "t", "status": "ok"}]'))
    record = _parse(_request(span))[0][0].record
    assert record["model"] == "my-finetune"
    assert record["occurred_at"] == "2025-01-01T00:00:00Z"
    assert record["latency_ms"] == 7.5
    assert record["tool_calls"] == [{"name": "t", "status": "ok"}]
    assert "attributes" not in record
