"""OpenTelemetry as teams already emit it: plain GenAI and OpenInference spans mapped through the
sources file, pinned field by field; the sources file's validation; OTLP protobuf files; and plain
spans landing end to end without being quarantined."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from conftest import query, run_pipeline
from flywheel.ingest.validate import validate_record
from flywheel.otlp import OtlpRecord, parse_otlp
from flywheel.sources import SourcesError, load_sources

START = 1740823200000000000  # 2025-03-01T10:00:00Z
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OI_TRACE = "0af7651916cd43dd8448eb211c80319c"


def _v(value: Any) -> dict[str, Any]:
    """A Python value as an OTLP/JSON AnyValue."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_v(x) for x in value]}}
    return {"stringValue": value}


def _attrs(**kv: Any) -> list[dict[str, Any]]:
    """Attributes from keyword arguments; `__` in a name stands for a dot."""
    return [{"key": k.replace("__", "."), "value": _v(v)} for k, v in kv.items()]


def _kv(pairs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _v(v)} for k, v in pairs.items()]


def _span(span_id: str, name: str, attrs: dict[str, Any], *, trace: str = TRACE, parent: str | None = None,
          ms: int = 1500, **fields: Any) -> dict[str, Any]:
    span = {"traceId": trace, "spanId": span_id, "name": name, "kind": 3,
            "startTimeUnixNano": str(START), "endTimeUnixNano": str(START + ms * 1_000_000),
            "attributes": _kv(attrs), **fields}
    if parent:
        span["parentSpanId"] = parent
    return span


def _doc(*resources: tuple[dict[str, Any], list[dict[str, Any]]]) -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {"attributes": _kv(res)}, "scopeSpans": [{"spans": spans}]}
                              for res, spans in resources]}


def _records(records: list[OtlpRecord]) -> list[dict[str, Any] | None]:
    return [r.record for r in records]


# ---------------------------------------------------------------------------------------------
# a plain OpenTelemetry GenAI chat span: only gen_ai.* and the resource's service.name

SUPPORT = {"service.name": "support-bot", "service.version": "1.4.0", "telemetry.sdk.language": "python"}


def _plain_chat(span_id: str = "00f067aa0ba902b7", **extra: Any) -> dict[str, Any]:
    return _span(span_id, "chat gpt-4o-mini", {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
        "gen_ai.input.messages": json.dumps([
            {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
            {"role": "user", "parts": [{"type": "text", "content": "Where is order B-2002?"}]},
        ]),
        "gen_ai.output.messages": json.dumps([
            {"role": "assistant", "parts": [{"type": "text", "content": "It ships tomorrow."}], "finish_reason": "stop"},
        ]),
        **extra,
    })


PLAIN_RECORD = {
    "event_id": f"{TRACE}-00f067aa0ba902b7",
    "occurred_at": "2025-03-01T10:00:00Z",
    "scenario": "support-bot",            # resource service.name (no gen_ai.agent.name)
    "model": "gpt-4o-mini",               # gen_ai.request.model
    "prompt_version": "1.4.0",            # resource service.version
    "autonomy_level": "assist",           # the stated default
    "input_text": "Be brief.\nWhere is order B-2002?",
    "output_text": "It ships tomorrow.",
    "status": "ok",
    "latency_ms": 1500.0,
    "input_tokens": 120,
    "output_tokens": 30,
    "trace_id": TRACE,
    "attributes": {**SUPPORT, "gen_ai.provider.name": "openai", "gen_ai.response.model": "gpt-4o-mini-2024-07-18"},
}


def test_plain_genai_chat_span_is_a_valid_event() -> None:
    events, interventions = parse_otlp(orjson.dumps(_doc((SUPPORT, [_plain_chat()]))))
    assert _records(events) == [PLAIN_RECORD]
    assert interventions == []
    row, problems = validate_record("events", events[0].record)
    assert problems == []
    assert row is not None and (row["scenario"], row["autonomy_level"]) == ("support-bot", "assist")


@pytest.mark.parametrize(
    ("resource", "extra", "scenario"),
    [
        (SUPPORT, {"gen_ai.agent.name": "refund-agent"}, "refund-agent"),  # gen_ai.agent.name first
        (SUPPORT, {"gen_ai.agent.name": ""}, "support-bot"),               # "" counts as no value
        ({"telemetry.sdk.language": "python"}, {}, "chat gpt-4o-mini"),    # no service.name: the span name
    ],
)
def test_scenario_candidates_in_order(resource: dict[str, Any], extra: dict[str, Any], scenario: str) -> None:
    events, _ = parse_otlp(orjson.dumps(_doc((resource, [_plain_chat(**extra)]))))
    assert events[0].record["scenario"] == scenario


def test_flywheel_attributes_override_the_mapping_field_by_field() -> None:
    full = _plain_chat("1111111111111111", **{
        "gen_ai.agent.name": "agent-x", "flywheel.scenario": "refund_request", "flywheel.autonomy_level": "gated",
        "flywheel.prompt_version": "refund-v3", "flywheel.confidence": 0.9, "flywheel.model": "my-finetune"})
    partial = _plain_chat("2222222222222222", **{"flywheel.confidence": 0.25})
    events, _ = parse_otlp(orjson.dumps(_doc((SUPPORT, [full, partial]))))
    first, second = _records(events)
    assert {k: first[k] for k in ("scenario", "autonomy_level", "prompt_version", "confidence", "model")} == {
        "scenario": "refund_request", "autonomy_level": "gated", "prompt_version": "refund-v3", "confidence": 0.9,
        "model": "my-finetune"}
    # gen_ai.agent.name was not used, so it stays an attribute; the flywheel.* ones never do.
    assert first["attributes"] == {**PLAIN_RECORD["attributes"], "gen_ai.agent.name": "agent-x"}
    # One flywheel.* attribute does not turn the mapping off for the other fields.
    assert {k: second[k] for k in ("scenario", "autonomy_level", "prompt_version", "confidence", "model")} == {
        "scenario": "support-bot", "autonomy_level": "assist", "prompt_version": "1.4.0", "confidence": 0.25,
        "model": "gpt-4o-mini"}


# ---------------------------------------------------------------------------------------------
# OpenInference


RAG = {"service.name": "rag-app"}


def _oi_doc() -> dict[str, Any]:
    chain = _span("9999999999999999", "RunnableSequence", {"openinference.span.kind": "CHAIN",
                                                           "input.value": "Refund A-1001"}, trace=OI_TRACE)
    llm = _span("1111111111111111", "ChatCompletion", {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o",
        "llm.provider": "openai",
        "llm.system": "openai",
        "llm.prompt_template.version": "refund-v2",
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "You answer refunds.",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.contents.0.message_content.type": "text",
        "llm.input_messages.1.message.contents.0.message_content.text": "Refund A-1001",
        "llm.input_messages.1.message.contents.1.message_content.type": "image",
        "llm.input_messages.1.message.contents.1.message_content.image.image.url": "https://example.com/box.png",
        "llm.input_messages.2.message.role": "tool",
        "llm.input_messages.2.message.content": '{"status": "delivered"}',
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "Refund issued.",
        "llm.token_count.prompt": 50,
        "llm.token_count.completion": 7,
        "llm.token_count.total": 57,
        "input.value": '{"messages": "the raw request"}',
        "input.mime_type": "application/json",
        "output.value": "Refund issued.",
    }, trace=OI_TRACE, parent="9999999999999999", ms=250)
    lookup = _span("2222222222222222", "lookup_order", {
        "openinference.span.kind": "TOOL", "tool.name": "lookup_order",
        "tool.description": "Finds an order", "input.value": '{"order_id": "A-1001"}'},
        trace=OI_TRACE, parent="1111111111111111", ms=20)
    refund = _span("3333333333333333", "issue_refund", {
        "openinference.span.kind": "TOOL", "tool.name": "issue_refund", "input.value": "A-1001"},
        trace=OI_TRACE, parent="1111111111111111", ms=20,
        events=[{"timeUnixNano": str(START), "name": "exception",
                 "attributes": _kv({"exception.type": "PermissionError", "exception.message": "no"})}])
    elsewhere = _span("4444444444444444", "other_tool", {"openinference.span.kind": "TOOL", "tool.name": "x"},
                      trace=OI_TRACE, parent="9999999999999999")
    return _doc((RAG, [chain, llm, lookup, refund, elsewhere]))


OI_RECORD = {
    "event_id": f"{OI_TRACE}-1111111111111111",
    "occurred_at": "2025-03-01T10:00:00Z",
    "scenario": "rag-app",
    "model": "gpt-4o",
    "prompt_version": "refund-v2",
    "autonomy_level": "assist",
    # system + the user's text part; the image part and the tool-result message are skipped
    "input_text": "You answer refunds.\nRefund A-1001",
    "output_text": "Refund issued.",
    "status": "ok",
    "latency_ms": 250.0,
    "input_tokens": 50,
    "output_tokens": 7,
    "tool_calls": [
        {"name": "lookup_order", "status": "ok", "arguments": {"order_id": "A-1001"}},
        {"name": "issue_refund", "status": "error", "arguments": "A-1001"},  # exception event; not JSON
    ],
    "trace_id": OI_TRACE,
    "attributes": {"service.name": "rag-app", "llm.provider": "openai", "llm.system": "openai",
                   "llm.prompt_template.version": "refund-v2", "llm.token_count.total": 57},
}


def test_openinference_llm_span_with_tool_children() -> None:
    events, _ = parse_otlp(orjson.dumps(_oi_doc()))
    # span 1 is a CHAIN (not an event by default), 3-5 are TOOL spans
    assert [e.ordinal for e in events] == [2]
    assert events[0].record == OI_RECORD
    assert validate_record("events", events[0].record)[1] == []


def test_openinference_agent_values_and_exceptions() -> None:
    agent = _span("5555555555555555", "agent run", {
        "openinference.span.kind": "AGENT", "agent.name": "researcher", "llm.model_name": "claude-x",
        "input.value": "find the order", "output.value": "found it"}, ms=3000)
    timed_out = _span("6666666666666666", "ChatCompletion", {"openinference.span.kind": "LLM", "llm.model_name": "m"},
                      status={"code": "STATUS_CODE_ERROR"},
                      events=[{"name": "exception", "attributes": _kv({"exception.type": "openai.APITimeoutError"})}])
    handled = _span("7777777777777777", "ChatCompletion", {"openinference.span.kind": "LLM", "llm.model_name": "m"},
                    status={"code": 1}, events=[{"name": "exception", "attributes": _kv({"exception.type": "KeyError"})}])
    unset = _span("8888888888888888", "ChatCompletion", {"openinference.span.kind": "LLM", "llm.model_name": "m"},
                  events=[{"name": "exception", "attributes": "unreadable"}])
    events, _ = parse_otlp(orjson.dumps(_doc((RAG, [agent, timed_out, handled, unset]))))
    first = events[0].record
    assert (first["scenario"], first["model"], first["input_text"], first["output_text"], first["latency_ms"]) == (
        "researcher", "claude-x", "find the order", "found it", 3000.0)
    assert "attributes" in first and first["attributes"] == {"service.name": "rag-app", "agent.name": "researcher"}
    assert [e.record["status"] for e in events] == ["ok", "timeout", "ok", "error"]


# ---------------------------------------------------------------------------------------------
# the sources file


def test_custom_sources_file_merges_over_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "version: 1\n"
        "otlp:\n"
        "  event_spans:\n"
        "    openinference.span.kind: [LLM, CHAIN]\n"
        "  fields:\n"
        "    scenario:\n"
        "      - attribute: app.workflow\n"
        "      - default: general\n"
        "    confidence:\n"
        "      - attribute: app.confidence\n"
        "    autonomy_level:\n"
        "      - resource: app.autonomy\n"
        "      - default: gated\n")
    chain = _span("1111111111111111", "triage", {"openinference.span.kind": "CHAIN", "app.workflow": "triage",
                                                 "app.confidence": 0.7})
    doc = _doc(({"service.name": "svc", "app.autonomy": "autonomous"}, [chain]),
               ({"service.name": "svc", "service.version": "9"}, [_plain_chat("2222222222222222")]))
    monkeypatch.setenv("FLYWHEEL_SOURCES", str(path))
    events, _ = parse_otlp(orjson.dumps(doc))
    by_env = _records(events)
    assert [{k: r.get(k) for k in ("scenario", "model", "prompt_version", "confidence", "autonomy_level")}
            for r in by_env] == [
        # CHAIN counts now; it has no model (the validator will say so)
        {"scenario": "triage", "model": None, "prompt_version": None, "confidence": 0.7, "autonomy_level": "autonomous"},
        # model and prompt_version keep the default's candidates
        {"scenario": "general", "model": "gpt-4o-mini", "prompt_version": "9", "confidence": None,
         "autonomy_level": "gated"},
    ]
    # the same file given directly, not through the environment
    monkeypatch.delenv("FLYWHEEL_SOURCES")
    assert _records(parse_otlp(orjson.dumps(doc), load_sources(path).otlp)[0]) == by_env
    # and without it the default applies: the CHAIN span is no event
    assert [r["scenario"] for r in _records(parse_otlp(orjson.dumps(doc))[0])] == ["svc"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\notlp:\n  fields:\n    autonomy_level:\n      - default: rogue\n",
         "otlp.fields.autonomy_level: the default must be one of shadow, assist, gated, autonomous, got 'rogue'"),
        ("version: 1\notlp:\n  fields:\n    scenario:\n      - attribute: a\n        resource: b\n",
         "otlp.fields.scenario[0]: a candidate has exactly one of attribute, resource, span, default "
         "(got attribute, resource)"),
        ("version: 1\notlp:\n  feilds: {}\n", "otlp.feilds: Extra inputs are not permitted"),
        ("version: 2\n", "version: Input should be 1"),
        ("version: 1\notlp:\n  fields:\n    confidence:\n      - default: 1.5\n",
         "otlp.fields.confidence: the default must be a number in [0, 1], got 1.5"),
        ("version: 1\notlp:\n  fields:\n    scenario: [{span: title}]\n",
         "otlp.fields.scenario[0].span: Input should be 'name'"),
        ("version: 1\notlp:\n  tool_spans:\n    gen_ai.operation.name: []\n",
         "otlp.tool_spans: gen_ai.operation.name: list at least one value"),
        ("otlp: [unclosed\n", "is not YAML"),
        ("- a list\n", "must be a mapping (version: 1, otlp: ...), not a list"),
    ],
)
def test_bad_sources_file_is_refused_with_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    with pytest.raises(SourcesError) as err:
        load_sources(path)
    assert str(err.value).startswith(f"sources file {path}")
    assert message in str(err.value)


def test_bad_sources_file_fails_the_parse_not_the_landing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_SOURCES", str(tmp_path / "missing.yaml"))
    with pytest.raises(SourcesError, match="missing.yaml .FLYWHEEL_SOURCES. does not exist") as err:
        parse_otlp(orjson.dumps(_doc((SUPPORT, [_plain_chat()]))))
    # readers.py turns a ValueError into a bad_file quarantine; a bad configuration is no bad file
    assert not isinstance(err.value, ValueError)
    monkeypatch.delenv("FLYWHEEL_SOURCES")
    monkeypatch.setenv("FLYWHEEL_DUCKDB_MEMORY", "lots")
    with pytest.raises(SourcesError, match="the configuration is not valid: FLYWHEEL_DUCKDB_MEMORY"):
        parse_otlp(orjson.dumps(_doc((SUPPORT, [_plain_chat()]))))


# ---------------------------------------------------------------------------------------------
# OTLP protobuf


def _any(value: Any) -> AnyValue:
    """An OTLP/JSON AnyValue object as the protobuf AnyValue."""
    if "stringValue" in value:
        return AnyValue(string_value=value["stringValue"])
    if "intValue" in value:
        return AnyValue(int_value=int(value["intValue"]))
    if "doubleValue" in value:
        return AnyValue(double_value=value["doubleValue"])
    if "boolValue" in value:
        return AnyValue(bool_value=value["boolValue"])
    if "arrayValue" in value:
        return AnyValue(array_value=ArrayValue(values=[_any(v) for v in value["arrayValue"]["values"]]))
    return AnyValue(kvlist_value=KeyValueList(values=_kvs(value["kvlistValue"]["values"])))


def _kvs(items: list[dict[str, Any]] | str) -> list[KeyValue]:
    return [KeyValue(key=a["key"], value=_any(a["value"])) for a in items] if isinstance(items, list) else []


_STATUS = {"STATUS_CODE_ERROR": 2, 2: 2, 1: 1, 0: 0}


def _proto(doc: dict[str, Any]) -> ExportTraceServiceRequest:
    """The hand-written OTLP/JSON test document built with opentelemetry-proto's classes."""
    out = ExportTraceServiceRequest()
    for rs in doc["resourceSpans"]:
        spans = []
        for s in rs["scopeSpans"][0]["spans"]:
            span = Span(trace_id=bytes.fromhex(s["traceId"]), span_id=bytes.fromhex(s["spanId"]), name=s["name"],
                        kind=s["kind"], start_time_unix_nano=int(s["startTimeUnixNano"]),
                        end_time_unix_nano=int(s["endTimeUnixNano"]), attributes=_kvs(s["attributes"]),
                        events=[Span.Event(time_unix_nano=int(e.get("timeUnixNano", 0)), name=e["name"],
                                           attributes=_kvs(e["attributes"])) for e in s.get("events", [])])
            if "parentSpanId" in s:
                span.parent_span_id = bytes.fromhex(s["parentSpanId"])
            if "status" in s:
                span.status.CopyFrom(Status(code=_STATUS[s["status"]["code"]]))
            spans.append(span)
        out.resource_spans.append(ResourceSpans(resource=Resource(attributes=_kvs(rs["resource"]["attributes"])),
                                                scope_spans=[ScopeSpans(spans=spans)]))
    return out


def _with_review(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with a flywheel.intervention span event on its first resource's first span."""
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["events"] = [
        {"timeUnixNano": str(START + 3_600_000_000_000), "name": "flywheel.intervention",
         "attributes": _kv({"flywheel.intervention.id": "i1", "flywheel.intervention.action": "accepted"})}]
    return doc


def _framed(*messages: ExportTraceServiceRequest) -> bytes:
    """The Collector file exporter's `format: proto`: each message after its 4-byte big-endian length."""
    out = b""
    for m in messages:
        body = m.SerializeToString()
        out += len(body).to_bytes(4, "big") + body
    return out


def _summary(parsed: tuple[list[OtlpRecord], list[OtlpRecord]]) -> list[list[tuple[int, Any, str | None]]]:
    return [[(r.ordinal, r.record, r.error) for r in records] for records in parsed]


def test_protobuf_gives_the_records_of_its_json_form() -> None:
    plain = _with_review(_doc((SUPPORT, [_plain_chat()])))
    oi = _oi_doc()
    both = {"resourceSpans": plain["resourceSpans"] + oi["resourceSpans"]}
    from_json = parse_otlp(orjson.dumps(both))
    assert [e.record for e in from_json[0]] == [PLAIN_RECORD, OI_RECORD]
    assert [i.record for i in from_json[1]] == [{"intervention_id": "i1", "event_id": PLAIN_RECORD["event_id"],
                                                 "occurred_at": "2025-03-01T11:00:00Z", "action": "accepted"}]
    # one request, as an OTLP/HTTP protobuf body
    one = parse_otlp(_proto(both).SerializeToString())
    assert _summary(one) == _summary(from_json)
    # the file exporter's length-prefixed messages, the tool spans in another message than the
    # first resource; ordinals run on across messages as they do across JSON lines
    framed = parse_otlp(_framed(_proto(plain), _proto(oi)))
    assert _summary(framed) == _summary(from_json)
    # the quarantine's raw copy is OTLP/JSON, ids in hex
    assert orjson.loads(framed[0][1].raw)["spanId"] == "1111111111111111"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x0a\x03abc", "nor OTLP protobuf: not an ExportTraceServiceRequest"),
        (b"\x12\x03abc", "nor OTLP protobuf: fields an ExportTraceServiceRequest does not have"),
        (b"\x00\x00\x00\x05\x0a\x03", "nor OTLP protobuf"),   # a frame cut short
        (b"\xff\xfe{}", "not JSON"),
    ],
)
def test_bytes_that_are_neither_json_nor_protobuf(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_otlp(data)


# ---------------------------------------------------------------------------------------------
# end to end: plain spans in the landing folder


def test_plain_genai_spans_land_and_are_stored_not_quarantined(settings: Any) -> None:
    tool = _span("3333333333333333", "execute_tool lookup_order", {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"}, parent="00f067aa0ba902b7")
    http = _span("4444444444444444", "GET /orders", {"http.request.method": "GET"})
    agent = _span("5555555555555555", "invoke_agent refund-agent", {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "refund-agent",
        "gen_ai.request.model": "gpt-4o"}, trace="5b8efff798038103d269b633813fc60c")
    doc = _doc((SUPPORT, [tool, _plain_chat(), http, agent]))
    (settings.landing / "otlp" / "spans.json").write_bytes(orjson.dumps(doc))
    run_pipeline(settings)
    assert query(settings, "SELECT count(*) FROM ingest.quarantine") == [(0,)]
    rows = query(settings, "SELECT event_id, scenario, model, prompt_version, autonomy_level, status, tool_calls "
                           "FROM ingest.events ORDER BY event_id")
    assert [r[:6] for r in rows] == [
        (f"{TRACE}-00f067aa0ba902b7", "support-bot", "gpt-4o-mini", "1.4.0", "assist", "ok"),
        ("5b8efff798038103d269b633813fc60c-5555555555555555", "refund-agent", "gpt-4o", "1.4.0", "assist", "ok"),
    ]
    assert "lookup_order" in str(rows[0][6])


def test_docs_show_the_shipped_default_sources_file() -> None:
    import yaml

    from flywheel.sources import default_path

    docs = (Path(__file__).parents[1] / "docs" / "otlp.md").read_text()
    block = docs.split("## The sources file", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == yaml.safe_load(default_path().read_text())


def test_a_changed_sources_file_is_read_again(tmp_path: Path) -> None:
    import os

    path = tmp_path / "sources.yaml"
    path.write_text("version: 1\notlp:\n  fields:\n    autonomy_level: [{default: gated}]\n")
    assert load_sources(path).otlp.fields.autonomy_level[0].default == "gated"
    path.write_text("version: 1\notlp:\n  fields:\n    autonomy_level: [{default: shadow}]\n")
    os.utime(path, ns=(1, 1))  # a different modification time, however fast the rewrite
    assert load_sources(path).otlp.fields.autonomy_level[0].default == "shadow"


def test_exported_spans_keep_the_sources_file_off() -> None:
    from flywheel.otlp import export_otlp

    event = {"event_id": "e1", "occurred_at": "2025-03-01T10:00:00Z", "model": "m", "status": "ok",
             "attributes": {"gen_ai.agent.name": "agent-x"}}
    events, _ = parse_otlp(orjson.dumps(export_otlp([event], [])))
    # no scenario from gen_ai.agent.name or the span name, no default autonomy level: the record
    # comes back as it went out (with an invented trace id)
    record = events[0].record
    assert record == {**event, "trace_id": record["trace_id"]}
    assert len(record["trace_id"]) == 32


def test_a_bad_sources_file_stops_the_sync_and_quarantines_nothing(settings: Any, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.ingest.sync import sync_landing

    bad = tmp_path / "sources.yaml"
    bad.write_text("version: 1\notlp:\n  fields:\n    autonomy_level: [{default: rogue}]\n")
    monkeypatch.setenv("FLYWHEEL_SOURCES", str(bad))
    (settings.landing / "otlp" / "spans.json").write_bytes(orjson.dumps(_doc((SUPPORT, [_plain_chat()]))))
    with pytest.raises(SourcesError, match="autonomy_level: the default must be one of"):
        sync_landing(settings)
    monkeypatch.delenv("FLYWHEEL_SOURCES")
    run_pipeline(settings)  # fixed: the same file is read then, and stored
    assert query(settings, "SELECT count(*) FROM ingest.quarantine") == [(0,)]
    assert query(settings, "SELECT autonomy_level FROM ingest.events") == [("assist",)]


def test_protobuf_file_lands_like_its_json_form(settings: Any) -> None:
    doc = _with_review(_doc((SUPPORT, [_plain_chat()])))
    (settings.landing / "otlp" / "traces.pb").write_bytes(_framed(_proto(doc)))  # as the file exporter writes it
    run_pipeline(settings)
    assert query(settings, "SELECT count(*) FROM ingest.quarantine") == [(0,)]
    assert query(settings, "SELECT event_id, scenario, model, autonomy_level, input_tokens FROM ingest.events") == [
        (f"{TRACE}-00f067aa0ba902b7", "support-bot", "gpt-4o-mini", "assist", 120)]
    assert query(settings, "SELECT intervention_id, event_id, action FROM ingest.interventions") == [
        ("i1", f"{TRACE}-00f067aa0ba902b7", "accepted")]


def test_the_landing_sensor_sees_the_days_of_a_protobuf_file(tmp_path: Path) -> None:
    """peek_days (what the landing sensor runs days for) reads a length-prefixed protobuf file's
    days too; it found none before (its look-up only searched JSON field names)."""
    from flywheel.ingest.peek import peek_days

    path = tmp_path / "traces.pb"
    path.write_bytes(_framed(_proto(_with_review(_doc((SUPPORT, [_plain_chat()]))))))
    assert peek_days(path, "otlp") == {date(2025, 3, 1)}
