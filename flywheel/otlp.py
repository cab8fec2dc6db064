"""The OpenTelemetry input adapter: OTLP traces (JSON or protobuf) <-> flywheel contract records.

A product instrumented with OpenTelemetry's GenAI semantic conventions already emits one span
per model call (`gen_ai.operation.name` = chat, text_completion, generate_content or
invoke_agent) with `execute_tool` child spans for the tools it ran; one instrumented with
OpenInference emits LLM / AGENT spans with TOOL child spans. `parse_otlp` reads an OTLP trace
export (one `ExportTraceServiceRequest` as JSON, the OpenTelemetry Collector file exporter's
JSON Lines of them, one request as binary protobuf, or the file exporter's length-prefixed
protobuf messages; which one is told from the bytes) and maps every such span to an AI audit
event, and every span event named `flywheel.intervention` to a human intervention, shaped
exactly like a JSON Lines contract record. Where scenario, model, prompt version, confidence and
autonomy level come from when a span has no `flywheel.<field>` attribute is the sources file's
`otlp` section (flywheel/sources), so plain GenAI or OpenInference spans are events too. It maps
faithfully and does not judge: contract rules (a missing scenario, a confidence of 7) are the
downstream validator's business, so a value OTLP carries with the wrong type is passed on as it
is. Only a span whose OTLP structure is broken (not an object, unreadable attributes) comes back
as an error record, and only a file that is not OTLP traces at all raises `ValueError`.
`export_otlp` is the inverse, for the sample-data generator and tests. The mapping is
documented, as tables, in docs/otlp.md.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from flywheel.contracts import EVENT_FIELDS, INTERVENTION_FIELDS
from flywheel.sources import MAPPED_FIELDS, Candidate, OtlpSource, sources_from_env

TOOL_OPERATION = "execute_tool"
INTERVENTION_EVENT = "flywheel.intervention"
PLACEHOLDER = "flywheel.placeholder"
TOOL_STATUS = "flywheel.tool.status"

OPERATION = "gen_ai.operation.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
OLD_PROMPT = "gen_ai.prompt"  # before gen_ai.input.messages; also gen_ai.prompt.<n>.content
OLD_COMPLETION = "gen_ai.completion"
ERROR_TYPE = "error.type"
TOOL_NAME = "gen_ai.tool.name"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
EXCEPTION_EVENT = "exception"
EXCEPTION_TYPE = "exception.type"
# export_otlp marks its spans so: their fields are exactly their flywheel.* and OpenTelemetry
# attributes, and the sources file's fallbacks (defaults, service.name, the span name) stay off.
EXACT = "flywheel.exact"

# OpenInference (https://github.com/Arize-ai/openinference/blob/main/spec/semantic_conventions.md)
OI_SPAN_KIND = "openinference.span.kind"
OI_MODEL = "llm.model_name"
OI_INPUT_VALUE = "input.value"
OI_OUTPUT_VALUE = "output.value"
OI_INPUT_MIME = "input.mime_type"
OI_OUTPUT_MIME = "output.mime_type"
OI_PROMPT_TOKENS = "llm.token_count.prompt"
OI_COMPLETION_TOKENS = "llm.token_count.completion"
OI_INPUT_MESSAGES = "llm.input_messages"
OI_OUTPUT_MESSAGES = "llm.output_messages"
OI_PROMPTS = "llm.prompts"  # legacy completions API: llm.prompts.<n>.prompt.text
OI_CHOICES = "llm.choices"  # llm.choices.<n>.completion.text
OI_TOOL_NAME = "tool.name"

# Every event field but `attributes` may be set verbatim by a `flywheel.<field>` span attribute,
# which wins over the value derived from OpenTelemetry's own attributes and span fields.
EVENT_ATTRS: dict[str, str] = {f.name: f"flywheel.{f.name}" for f in EVENT_FIELDS if f.name != "attributes"}
# Intervention fields are span-event attributes `flywheel.intervention.<field>` (the id is `.id`).
INTERVENTION_ATTRS: dict[str, str] = {
    f.name: "flywheel.intervention.id" if f.name == "intervention_id" else f"flywheel.intervention.{f.name}"
    for f in INTERVENTION_FIELDS
}

# Span attributes that become event fields and so are not copied into `attributes`.
_CONSUMED = frozenset(EVENT_ATTRS.values()) | {
    PLACEHOLDER, EXACT, OPERATION, REQUEST_MODEL, INPUT_TOKENS, OUTPUT_TOKENS,
    INPUT_MESSAGES, OUTPUT_MESSAGES, OLD_PROMPT, OLD_COMPLETION,
    OI_SPAN_KIND, OI_INPUT_VALUE, OI_OUTPUT_VALUE, OI_INPUT_MIME, OI_OUTPUT_MIME, OI_PROMPT_TOKENS, OI_COMPLETION_TOKENS,
}
_CONSUMED_PREFIXES = (OLD_PROMPT + ".", OLD_COMPLETION + ".", OI_INPUT_MESSAGES + ".", OI_OUTPUT_MESSAGES + ".",
                      OI_PROMPTS + ".", OI_CHOICES + ".")
# On an exported (exact) span the model is the first of these present; the sources file is not read.
_EXACT_CANDIDATES: dict[str, list[Candidate]] = {
    "model": [Candidate(attribute=k) for k in (REQUEST_MODEL, RESPONSE_MODEL, OI_MODEL)],
}

STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "UNSET": 0, "STATUS_CODE_OK": 1, "OK": 1, "STATUS_CODE_ERROR": 2, "ERROR": 2}
_TIMEOUT = re.compile(r"time[_\s-]?d?[_\s-]?out|deadline[_\s-]?exceeded|^(408|504)$", re.IGNORECASE)
_HEX = re.compile(r"[0-9a-fA-F]+")
_INT = re.compile(r"[+-]?\d+")
_TS = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$")
# gen_ai.prompt.<n>.content / gen_ai.completion.<n>.content, as older instrumentations flatten messages.
_INDEXED_CONTENT = {key: re.compile(re.escape(key) + r"\.(\d+)\.content") for key in (OLD_PROMPT, OLD_COMPLETION)}
# OpenInference's flattened messages: <prefix>.<i>.message.content, or the parts of a multimodal
# message <prefix>.<i>.message.contents.<j>.message_content.text (with .message_content.type).
_OI_CONTENT = {key: re.compile(re.escape(key) + r"\.(\d+)\.message\.(?:content|contents\.(\d+)\.message_content\.text)")
               for key in (OI_INPUT_MESSAGES, OI_OUTPUT_MESSAGES)}
_OI_LEGACY = {OI_PROMPTS: re.compile(re.escape(OI_PROMPTS) + r"\.(\d+)\.prompt\.text"),
              OI_CHOICES: re.compile(re.escape(OI_CHOICES) + r"\.(\d+)\.completion\.text")}
_TOOL_ROLES = frozenset({"tool", "function"})
# The Collector's file exporter (format: proto) writes each message after its length, 4 bytes big-endian.
_FRAME = 4
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NS = 1_000_000_000


class _Absent:
    """Marks a field that has no value, as distinct from a JSON null."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


class _Broken(Exception):
    """An OTLP structure that cannot be read; the message says where."""


@dataclass(frozen=True)
class OtlpRecord:
    """One record out of an OTLP file.

    `ordinal`: the 1-based position of the span in the file (events; every span counts, GenAI
    or not) or of the span event (interventions; every span event of every span counts).
    `record`: the contract record, or None when `error` says why the span could not be mapped.
    `raw`: the source span or span event as compact JSON, for the quarantine table.
    """

    ordinal: int
    record: dict[str, Any] | None
    raw: str
    error: str | None = None


@dataclass
class _Span:
    """A span whose OTLP structure could be read, with its attributes decoded."""

    ordinal: int
    source: dict[str, Any]
    attrs: dict[str, Any]
    resource_attrs: dict[str, Any]
    trace_id: Any
    span_id: Any
    parent_id: Any
    status_code: int
    name: Any = None
    exceptions: tuple[Any, ...] = ()  # exception.type of each `exception` span event ("" if unreadable)

    @property
    def is_placeholder(self) -> bool:
        return _flag(self.attrs.get(PLACEHOLDER))

    @property
    def is_exact(self) -> bool:
        return _flag(self.attrs.get(EXACT))

    def is_event(self, source: OtlpSource) -> bool:
        if self.is_placeholder:
            return False
        return source.matches("event_spans", self.attrs) or EVENT_ATTRS["scenario"] in self.attrs

    def is_tool(self, source: OtlpSource) -> bool:
        return source.matches("tool_spans", self.attrs)


def _flag(value: Any) -> bool:
    """A boolean attribute that may come as text."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


# ---------------------------------------------------------------------------------------------
# parse


def parse_otlp(data: bytes, source: OtlpSource | None = None) -> tuple[list[OtlpRecord], list[OtlpRecord]]:
    """The AI events and human interventions in an OTLP trace export, JSON or protobuf.

    `source` says which spans count and where the mapped fields come from; None reads the sources
    file named by FLYWHEEL_SOURCES, else the default (flywheel.sources.SourcesError if it is bad).
    Raises ValueError, saying why, when `data` is not OTLP traces at all.
    """
    if source is None:
        source = sources_from_env().otlp
    spans: list[_Span] = []
    events: list[OtlpRecord] = []
    interventions: list[OtlpRecord] = []
    span_events: list[tuple[int, Any, _Span | None]] = []
    for ordinal, obj, resource_attrs in _iter_spans(_load_requests(data)):
        raw_events = obj.get("events") if isinstance(obj, dict) else None
        try:
            span = _read_span(ordinal, obj, resource_attrs)
        except _Broken as exc:
            events.append(OtlpRecord(ordinal, None, _dump(obj), f"span {ordinal}: {exc}"))
            span = None
        else:
            spans.append(span)
        # A broken span is quarantined whole, span events included; they still count.
        for raw_event in raw_events if isinstance(raw_events, list) else []:
            span_events.append((len(span_events) + 1, raw_event, span))
    children = _tool_children(spans, source)
    event_ids: dict[int, Any] = {}
    for span in spans:
        if span.is_event(source):
            record = _map_event(span, children.get((span.trace_id, span.span_id), []), source)
            event_ids[span.ordinal] = record.get("event_id", ABSENT)
            events.append(OtlpRecord(span.ordinal, record, _dump(span.source)))
    events.sort(key=lambda r: r.ordinal)
    for ordinal, raw_event, owner in span_events:
        if owner is None:
            continue
        rec = _span_event_record(ordinal, raw_event, owner, event_ids)
        if rec is not None:
            interventions.append(rec)
    return events, interventions


def _load_requests(data: bytes) -> list[tuple[str, Any]]:
    """The ExportTraceServiceRequest objects in `data`, each with where it is (for messages).

    JSON when the first character that is not white space is `{` or `[`; else protobuf if the
    bytes are OTLP protobuf; else the JSON parser's error is the one reported.
    """
    if not data.removeprefix(codecs.BOM_UTF8).strip():
        raise ValueError("the file is empty")
    if data.removeprefix(codecs.BOM_UTF8).lstrip()[:1] not in (b"{", b"["):
        try:
            return _protobuf_requests(data)
        except _NotProtobuf as exc:
            proto_error = str(exc)
        try:
            return _json_requests(data)
        except ValueError as exc:
            raise ValueError(f"{exc} (nor OTLP protobuf: {proto_error})") from None
    return _json_requests(data)


def _json_requests(data: bytes) -> list[tuple[str, Any]]:
    """The ExportTraceServiceRequest objects of OTLP/JSON `data` (one document, or one a line)."""
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return [("", orjson.loads(data))]
    except orjson.JSONDecodeError as exc:
        whole_error = exc
    # The Collector's file exporter writes one ExportTraceServiceRequest per line.
    lines = [(n, line) for n, line in enumerate(data.splitlines(), 1) if line.strip()]
    if len(lines) < 2:
        raise ValueError(f"not JSON: {whole_error}")
    docs: list[tuple[str, Any]] = []
    for n, line in lines:
        try:
            docs.append((f"line {n}: ", orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            if not docs:
                raise ValueError(f"not JSON: {whole_error}") from None
            raise ValueError(f"line {n}: not JSON: {exc}") from None
    return docs


class _NotProtobuf(Exception):
    """Bytes that are not OTLP protobuf traces; the message says why."""


def _protobuf_requests(data: bytes) -> list[tuple[str, Any]]:
    """The requests of OTLP protobuf `data`, as the OTLP/JSON objects they stand for.

    `data` is either one ExportTraceServiceRequest (an OTLP/HTTP protobuf body) or the Collector
    file exporter's `format: proto` output: each request after its length as a 4-byte big-endian
    integer. Raises _NotProtobuf when it is neither, or holds no spans' resource at all.
    """
    from google.protobuf.message import DecodeError
    from google.protobuf.unknown_fields import UnknownFieldSet
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    chunks = _frames(data)
    framed = chunks is not None
    out: list[tuple[str, Any]] = []
    for n, chunk in enumerate(chunks if chunks is not None else [data], 1):
        where = f"message {n}: " if framed else ""
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(chunk)
        except DecodeError:
            raise _NotProtobuf(f"{where}not an ExportTraceServiceRequest") from None
        if len(UnknownFieldSet(request)):
            raise _NotProtobuf(f"{where}fields an ExportTraceServiceRequest does not have")
        out.append((where, _request_dict(request)))
    if not any(doc.get("resourceSpans") for _, doc in out):
        raise _NotProtobuf("no resourceSpans")
    return out


def _frames(data: bytes) -> list[bytes] | None:
    """The messages of length-prefixed `data`, or None unless the lengths tile it exactly."""
    chunks: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + _FRAME > len(data):
            return None
        size = int.from_bytes(data[pos:pos + _FRAME], "big")
        pos += _FRAME
        if pos + size > len(data):
            return None
        chunks.append(data[pos:pos + size])
        pos += size
    return chunks


def _request_dict(request: Any) -> dict[str, Any]:
    """A protobuf ExportTraceServiceRequest as its OTLP/JSON object (hex ids, camelCase keys)."""
    from google.protobuf.json_format import MessageToDict

    doc = MessageToDict(request)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                # protobuf's own JSON mapping writes bytes as base64; OTLP/JSON writes ids as hex.
                for key, nbytes in (("traceId", 16), ("spanId", 8), ("parentSpanId", 8)):
                    if key in span:
                        span[key] = _normalize_id(span[key], nbytes)
    return doc


def _iter_spans(requests: list[tuple[str, Any]]) -> Iterator[tuple[int, Any, dict[str, Any]]]:
    """Every span in file order: (1-based ordinal, the span as given, its resource's attributes)."""
    ordinal = 0
    for where, doc in requests:
        if not isinstance(doc, dict):
            raise ValueError(f"{where}not an OTLP trace export: a JSON {type(doc).__name__}, not an object")
        resource_spans = doc.get("resourceSpans")
        if not isinstance(resource_spans, list):
            found = ", ".join(sorted(map(str, doc))[:5]) or "none"
            raise ValueError(f"{where}not an OTLP trace export: no resourceSpans list (keys: {found})")
        for i, rs in enumerate(resource_spans):
            path = f"{where}resourceSpans[{i}]"
            if not isinstance(rs, dict):
                raise ValueError(f"{path} is not an object")
            resource = rs.get("resource") or {}
            if not isinstance(resource, dict):
                raise ValueError(f"{path}.resource is not an object")
            try:
                resource_attrs = _decode_attributes(resource.get("attributes"), "attributes")
            except _Broken as exc:
                raise ValueError(f"{path}.resource: {exc}") from None
            # `instrumentationLibrarySpans` is the name before OTLP 0.15.
            scope_spans = rs.get("scopeSpans", rs.get("instrumentationLibrarySpans")) or []
            if not isinstance(scope_spans, list):
                raise ValueError(f"{path}.scopeSpans is not a list")
            for j, ss in enumerate(scope_spans):
                spans = (ss.get("spans") or []) if isinstance(ss, dict) else None
                if not isinstance(spans, list):
                    raise ValueError(f"{path}.scopeSpans[{j}] is not an object with a spans list")
                for span in spans:
                    ordinal += 1
                    yield ordinal, span, resource_attrs


def _read_span(ordinal: int, obj: Any, resource_attrs: dict[str, Any]) -> _Span:
    """A span's structure read and its attributes decoded; raises _Broken if it cannot be."""
    if not isinstance(obj, dict):
        raise _Broken(f"not an object but a JSON {type(obj).__name__}")
    if not isinstance(obj.get("events") or [], list):  # proto3 JSON: null is an empty list
        raise _Broken("events is not a list")
    status = obj.get("status") or {}
    if not isinstance(status, dict):
        raise _Broken("status is not an object")
    exceptions = tuple(_exception_type(e) for e in obj.get("events") or []
                       if isinstance(e, dict) and e.get("name") == EXCEPTION_EVENT)
    return _Span(
        ordinal=ordinal,
        source=obj,
        attrs=_decode_attributes(obj.get("attributes"), "attributes"),
        resource_attrs=resource_attrs,
        trace_id=_normalize_id(obj.get("traceId"), 16),
        span_id=_normalize_id(obj.get("spanId"), 8),
        parent_id=_normalize_id(obj.get("parentSpanId"), 8),
        status_code=_status_code(status.get("code")),
        name=obj.get("name"),
        exceptions=exceptions,
    )


def _exception_type(event: dict[str, Any]) -> Any:
    """The exception.type of an `exception` span event; "" when it has none or cannot be read."""
    try:
        value = _decode_attributes(event.get("attributes"), "attributes").get(EXCEPTION_TYPE)
    except _Broken:
        return ""
    return "" if value is None else value


def _tool_children(spans: list[_Span], source: OtlpSource) -> dict[tuple[Any, Any], list[_Span]]:
    """Tool spans (execute_tool, OpenInference TOOL, ...) by (traceId, parentSpanId), in file order."""
    out: dict[tuple[Any, Any], list[_Span]] = {}
    for span in spans:
        if span.is_tool(source) and isinstance(span.trace_id, str) and isinstance(span.parent_id, str):
            out.setdefault((span.trace_id, span.parent_id), []).append(span)
    return out


def _map_event(span: _Span, tools: list[_Span], mapping: OtlpSource) -> dict[str, Any]:
    """The AI audit event an AI span stands for."""
    attrs = span.attrs
    source = span.source
    mapped, model_key = _mapped_fields(span, mapping)
    derived: dict[str, Any] = {
        "event_id": f"{span.trace_id}-{span.span_id}"
        if isinstance(span.trace_id, str) and isinstance(span.span_id, str) else ABSENT,
        "occurred_at": _timestamp(source.get("startTimeUnixNano")),
        **mapped,
        "input_text": _text(attrs, INPUT_MESSAGES, OLD_PROMPT, OI_INPUT_MESSAGES, OI_PROMPTS, OI_INPUT_VALUE),
        "output_text": _text(attrs, OUTPUT_MESSAGES, OLD_COMPLETION, OI_OUTPUT_MESSAGES, OI_CHOICES, OI_OUTPUT_VALUE),
        "status": _infer_status(span.status_code, attrs.get(ERROR_TYPE), span.exceptions),
        "latency_ms": _latency(source.get("startTimeUnixNano"), source.get("endTimeUnixNano")),
        "input_tokens": attrs.get(INPUT_TOKENS, attrs.get(OI_PROMPT_TOKENS, ABSENT)),
        "output_tokens": attrs.get(OUTPUT_TOKENS, attrs.get(OI_COMPLETION_TOKENS, ABSENT)),
        "tool_calls": [_map_tool_call(t) for t in tools] if tools else ABSENT,
        "trace_id": span.trace_id if span.trace_id is not None else ABSENT,
    }
    record: dict[str, Any] = {}
    for name, key in EVENT_ATTRS.items():
        if key in attrs:
            value = attrs[key]
            if name == "decision_path":
                value = _json_if(value, dict)
            elif name == "tool_calls":
                value = _json_if(value, list)
            record[name] = value
        elif derived.get(name, ABSENT) is not ABSENT:
            record[name] = derived[name]
    consumed = _CONSUMED | ({model_key} if model_key is not None else set())
    extra = {k: v for k, v in {**span.resource_attrs, **attrs}.items()
             if k not in consumed and not k.startswith(_CONSUMED_PREFIXES)}
    if extra:
        record["attributes"] = extra
    return record


def _mapped_fields(span: _Span, mapping: OtlpSource) -> tuple[dict[str, Any], str | None]:
    """The sources file's values of scenario, model, prompt_version, confidence and autonomy_level
    (a field with no candidate that has a value is left out), and the span attribute the model
    came from (it is not copied into `attributes`). `flywheel.<field>` attributes win over these
    in `_map_event`. An exported (exact) span reads only its model attributes."""
    out: dict[str, Any] = {}
    model_key: str | None = None
    for name in MAPPED_FIELDS:
        candidates = _EXACT_CANDIDATES.get(name, []) if span.is_exact else mapping.candidates(name)
        for candidate in candidates:
            value = _candidate_value(span, candidate)
            # An exported span gives its values back verbatim, "" included.
            if value is not None and (value != "" or span.is_exact):
                out[name] = value
                if name == "model" and candidate.attribute is not None:
                    model_key = candidate.attribute
                break
    return out, model_key


def _candidate_value(span: _Span, candidate: Candidate) -> Any:
    """What one candidate gives for `span`: an attribute, a resource attribute, the name or a default."""
    if candidate.attribute is not None:
        return span.attrs.get(candidate.attribute)
    if candidate.resource is not None:
        return span.resource_attrs.get(candidate.resource)
    if candidate.span is not None:
        return span.name if isinstance(span.name, str) else None
    return candidate.default


def _map_tool_call(span: _Span) -> dict[str, Any]:
    """One tool call from an execute_tool span: {name, status, arguments}."""
    attrs = span.attrs
    call: dict[str, Any] = {}
    name_key = TOOL_NAME if TOOL_NAME in attrs else OI_TOOL_NAME
    if name_key in attrs:
        call["name"] = attrs[name_key]
    if TOOL_STATUS in attrs:
        call["status"] = attrs[TOOL_STATUS]
    else:
        status = _infer_status(span.status_code, attrs.get(ERROR_TYPE), span.exceptions)
        call["status"] = "ok" if status == "ok" else "error"
    arguments_key = TOOL_ARGUMENTS if TOOL_ARGUMENTS in attrs else OI_INPUT_VALUE  # OpenInference: the tool's input
    if arguments_key in attrs:
        call["arguments"] = _json_if(attrs[arguments_key], object)
    return call


def _span_event_record(ordinal: int, raw_event: Any, span: _Span, event_ids: dict[int, Any]) -> OtlpRecord | None:
    """The intervention a span event stands for, an error record, or None if it is another event."""
    if not isinstance(raw_event, dict):
        return OtlpRecord(ordinal, None, _dump(raw_event),
                          f"span event {ordinal}: not an object but a JSON {type(raw_event).__name__}")
    if raw_event.get("name") != INTERVENTION_EVENT:
        return None
    try:
        attrs = _decode_attributes(raw_event.get("attributes"), "attributes")
    except _Broken as exc:
        return OtlpRecord(ordinal, None, _dump(raw_event), f"span event {ordinal}: {exc}")
    span_event_id = event_ids.get(span.ordinal, span.attrs.get(EVENT_ATTRS["event_id"], ABSENT))
    derived = {"event_id": span_event_id, "occurred_at": _timestamp(raw_event.get("timeUnixNano"))}
    record: dict[str, Any] = {}
    for name, key in INTERVENTION_ATTRS.items():
        if key in attrs:
            record[name] = attrs[key]
        elif derived.get(name, ABSENT) is not ABSENT:
            record[name] = derived[name]
    return OtlpRecord(ordinal, record, _dump(raw_event))


def _decode_attributes(items: Any, where: str) -> dict[str, Any]:
    """An OTLP attribute list [{key, value: AnyValue}] as a dict."""
    if items is None:
        return {}
    if not isinstance(items, list):
        raise _Broken(f"{where} is not a list")
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise _Broken(f"{where}[{i}] is not a {{key, value}} object")
        out[item["key"]] = _decode_value(item.get("value"), f"{where}[{i}].value")
    return out


def _decode_value(value: Any, where: str) -> Any:
    """An OTLP AnyValue as a Python value; a malformed scalar is passed on as given."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Broken(f"{where} is not an AnyValue object")
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:  # int64: a decimal string in OTLP/JSON, a number is accepted too
        v = value["intValue"]
        if isinstance(v, str) and _INT.fullmatch(v.strip()):
            return int(v)
        return int(v) if isinstance(v, float) and v.is_integer() else v
    if "doubleValue" in value:  # "NaN", "Infinity", "-Infinity" come as strings
        v = value["doubleValue"]
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        try:
            return float(v) if isinstance(v, str) else v
        except ValueError:
            return v
    if "arrayValue" in value:
        array = value["arrayValue"] or {}
        values = (array.get("values") or []) if isinstance(array, dict) else None
        if not isinstance(values, list):
            raise _Broken(f"{where}.arrayValue is not an object with a values list")
        return [_decode_value(v, f"{where}.arrayValue.values[{i}]") for i, v in enumerate(values)]
    if "kvlistValue" in value:
        kvlist = value["kvlistValue"] or {}
        if not isinstance(kvlist, dict):
            raise _Broken(f"{where}.kvlistValue is not an object")
        return _decode_attributes(kvlist.get("values"), f"{where}.kvlistValue.values")
    if "bytesValue" in value:
        return value["bytesValue"]  # base64 text, kept as text
    return None


def _normalize_id(value: Any, nbytes: int) -> Any:
    """A trace or span id as lowercase hex; base64 ids (protobuf's own JSON mapping) are converted.

    None when absent or empty; any other value is passed on as given.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return value
    if len(value) == 2 * nbytes and _HEX.fullmatch(value):
        return value.lower()
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value
    return decoded.hex() if len(decoded) == nbytes else value


def _status_code(code: Any) -> int:
    """A span status code (0 unset, 1 ok, 2 error) from its number or enum name."""
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    if isinstance(code, str):
        if code.strip().isdigit():
            return int(code)
        return _STATUS_NAMES.get(code.strip().upper(), STATUS_UNSET)
    return STATUS_UNSET


def _infer_status(status_code: int, error_type: Any, exceptions: tuple[Any, ...] = ()) -> str:
    """ok, error or timeout from the span status, `error.type` and the `exception` span events.

    An exception event makes the span failed unless the span status says OK (an exception the
    code handled); its exception.type says whether it was a timeout when error.type does not.
    """
    has_error_type = error_type is not None and error_type != ""
    if has_error_type:
        return "timeout" if _TIMEOUT.search(str(error_type)) else "error"
    if status_code == STATUS_ERROR or (exceptions and status_code != STATUS_OK):
        return "timeout" if any(_TIMEOUT.search(str(e)) for e in exceptions if e != "") else "error"
    return "ok"


def _text(attrs: dict[str, Any], messages_key: str, old_key: str, oi_messages: str, oi_legacy: str,
          oi_value: str) -> Any:
    """The text of the first content attribute present: semconv messages, then their older
    forms, then OpenInference's messages, its legacy prompts/choices, and input/output.value."""
    for key in (messages_key, old_key):
        if key in attrs:
            text = _messages_text(attrs[key])
            if text is not None:
                return text
    pattern = _INDEXED_CONTENT[old_key]
    indexed = sorted((int(m.group(1)), v) for k, v in attrs.items()
                     if (m := pattern.fullmatch(k)) and isinstance(v, str))
    if indexed:
        return "\n".join(v for _, v in indexed)
    text = _oi_messages_text(attrs, oi_messages)
    if text is not None:
        return text
    legacy = sorted((int(m.group(1)), v) for k, v in attrs.items()
                    if (m := _OI_LEGACY[oi_legacy].fullmatch(k)) and isinstance(v, str))
    if legacy:
        return "\n".join(v for _, v in legacy)
    value = attrs.get(oi_value)
    return value if isinstance(value, str) else ABSENT


def _oi_messages_text(attrs: dict[str, Any], prefix: str) -> str | None:
    """The text of OpenInference's flattened messages under `prefix`, in index order, joined by
    newlines: `message.content`, or the `message_content.text` of parts whose type is text (or not
    given). Messages whose role is tool or function (tool results) are skipped, as in gen_ai.*."""
    pieces: list[tuple[int, int, str]] = []
    for key, value in attrs.items():
        m = _OI_CONTENT[prefix].fullmatch(key)
        if not m or not isinstance(value, str):
            continue
        i = int(m.group(1))
        if attrs.get(f"{prefix}.{i}.message.role") in _TOOL_ROLES:
            continue
        if m.group(2) is None:
            pieces.append((i, -1, value))
        elif attrs.get(key.removesuffix(".text") + ".type", "text") == "text":
            pieces.append((i, int(m.group(2)), value))
    return "\n".join(v for _, _, v in sorted(pieces)) if pieces else None


def _messages_text(value: Any) -> str | None:
    """The text parts of a messages value (JSON text or structured), joined by newlines.

    Messages are [{role, parts: [{type: "text", content}]}] as the current conventions say;
    older [{role, content: "..."}] messages are read too. A string that is not a JSON list of
    messages is taken as the text itself.
    """
    messages = _json_if(value, list) if isinstance(value, str) else value
    if not isinstance(messages, list):
        return value if isinstance(value, str) else None
    texts: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        parts = message.get("parts")
        if isinstance(parts, list):
            texts.extend(p["content"] for p in parts
                         if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("content"), str))
        elif isinstance(message.get("content"), str):
            texts.append(message["content"])
    return "\n".join(texts) if texts else None


def _json_if(value: Any, kind: type) -> Any:
    """`value` parsed as JSON when it is JSON text of type `kind` (object: any), else as given."""
    if not isinstance(value, str):
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, kind) else value


def _nanos(value: Any) -> int | None:
    """A uint64 nanosecond time given as a decimal string or a number, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value)
    return None


def _timestamp(value: Any) -> Any:
    """A *UnixNano time as RFC 3339 UTC text; ABSENT when missing or 0 (unset in OTLP).

    A value that is no time at all is passed on as given, for the validator to reject.
    """
    if value is None or value == "":
        return ABSENT
    ns = _nanos(value)
    if ns is None:
        return value
    if ns == 0:
        return ABSENT
    try:
        return _render_nanos(ns)
    except (OverflowError, ValueError):
        return str(value)


def _render_nanos(ns: int) -> str:
    """Nanoseconds since the epoch as RFC 3339 with Z, with 0, 3, 6 or 9 fractional digits."""
    seconds, frac = divmod(ns, _NS)
    t = _EPOCH + timedelta(seconds=seconds)
    text = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    if frac % 1_000_000 == 0:
        digits = f".{frac // 1_000_000:03d}" if frac else ""
    elif frac % 1_000 == 0:
        digits = f".{frac // 1_000:06d}"
    else:
        digits = f".{frac:09d}"
    return f"{text}{digits}Z"


def _latency(start: Any, end: Any) -> Any:
    """(end - start) in milliseconds, or ABSENT unless both times are set."""
    s, e = _nanos(start), _nanos(end)
    if not s or not e:
        return ABSENT
    return (e - s) / 1e6


def _dump(value: Any) -> str:
    """Compact JSON text of a decoded JSON value."""
    return orjson.dumps(value).decode()


# ---------------------------------------------------------------------------------------------
# export


def export_otlp(events: list[dict[str, Any]], interventions: list[dict[str, Any]]) -> dict[str, Any]:
    """Contract records as one OTLP/JSON ExportTraceServiceRequest that `parse_otlp` reads back.

    One `chat` span per event, with an `execute_tool` child span per tool call and its
    interventions as `flywheel.intervention` span events; interventions whose event is not in
    `events` go on a placeholder span (`flywheel.placeholder` = true) per event id. Values that
    OpenTelemetry's own fields cannot carry exactly are written as `flywheel.<field>`
    attributes, so the round trip is exact but for the normalisation listed in docs/otlp.md.
    Raises ValueError for a record that cannot be written (attributes that are not an object or
    that collide with a mapped attribute, a value that is not JSON).
    """
    for what, records in (("event", events), ("intervention", interventions)):
        for n, record in enumerate(records, 1):
            if not isinstance(record, dict):
                raise ValueError(f"{what} {n} is not an object")
    by_event: dict[int, list[dict[str, Any]]] = {}
    orphans: dict[str | None, list[dict[str, Any]]] = {}
    first_index: dict[str, int] = {}
    for i, event in enumerate(events):
        if event.get("event_id") is not None:
            first_index.setdefault(_key(event["event_id"]), i)
    for intervention in interventions:
        key = _key(intervention["event_id"]) if intervention.get("event_id") is not None else None
        if key is not None and key in first_index:
            by_event.setdefault(first_index[key], []).append(intervention)
        else:
            orphans.setdefault(key, []).append(intervention)
    spans: list[dict[str, Any]] = []
    for i, event in enumerate(events):
        spans.extend(_event_spans(i, event, by_event.get(i, [])))
    for n, group in enumerate(orphans.values()):
        spans.append(_placeholder_span(n, group))
    return {"resourceSpans": [{
        "resource": {"attributes": []},
        "scopeSpans": [{"scope": {"name": "flywheel.otlp"}, "spans": spans}],
    }]}


def _event_spans(i: int, event: dict[str, Any], interventions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat span of event number `i` followed by its execute_tool child spans."""
    attrs = _event_span_attributes(event)
    extra = _event_attributes(i, event)
    trace_id = _export_trace_id(i, event, attrs)
    status = event.get("status")
    code = STATUS_ERROR if status in ("error", "timeout") else STATUS_UNSET
    if status is not None and status != _infer_status(code, extra.get(ERROR_TYPE)):
        attrs[EVENT_ATTRS["status"]] = status
    start, end = _export_times(event, attrs)
    span_id = _synthetic_id(f"event:{i}", 8)
    model = event.get("model")
    span: dict[str, Any] = {"traceId": trace_id, "spanId": span_id,
                            "name": f"chat {model}" if isinstance(model, str) else "chat", "kind": 3}
    _put_times(span, start, end)
    span["attributes"] = [_kv(k, v) for k, v in {**attrs, **extra}.items()]
    if interventions:
        span["events"] = [_intervention_event(iv) for iv in interventions]
    if code:
        span["status"] = {"code": code}
    tool_calls = event.get("tool_calls")
    if not _tool_calls_fit(tool_calls):
        return [span]
    return [span, *(_tool_span(trace_id, span_id, f"{i}:{j}", call, start) for j, call in enumerate(tool_calls))]


def _event_span_attributes(event: dict[str, Any]) -> dict[str, Any]:
    """The span attributes carrying an event's model, content, flywheel fields and odd tool calls."""
    attrs: dict[str, Any] = {OPERATION: "chat", EXACT: True}

    def put(key: str, name: str) -> None:
        if event.get(name) is not None:
            attrs[key] = event[name]

    put(REQUEST_MODEL, "model")
    for name in ("event_id", "scenario", "prompt_version", "autonomy_level", "confidence"):
        put(EVENT_ATTRS[name], name)
    put(INPUT_TOKENS, "input_tokens")
    put(OUTPUT_TOKENS, "output_tokens")
    for name, key, role in (("input_text", INPUT_MESSAGES, "user"), ("output_text", OUTPUT_MESSAGES, "assistant")):
        text = event.get(name)
        if isinstance(text, str):
            message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": text}]}
            if role == "assistant":
                message["finish_reason"] = "stop"
            attrs[key] = _json_text([message])
        else:
            put(EVENT_ATTRS[name], name)
    decision = event.get("decision_path")
    if decision is not None:
        attrs[EVENT_ATTRS["decision_path"]] = _json_text(decision) if isinstance(decision, dict) else decision
    tool_calls = event.get("tool_calls")
    if tool_calls is not None and not _tool_calls_fit(tool_calls):
        attrs[EVENT_ATTRS["tool_calls"]] = tool_calls
    return attrs


def _export_trace_id(i: int, event: dict[str, Any], attrs: dict[str, Any]) -> str:
    """The event's trace id if it is a valid lower-case hex one; else an invented one (the given
    value, if any, then goes in `flywheel.trace_id`)."""
    given = event.get("trace_id")
    if isinstance(given, str) and len(given) == 32 and _HEX.fullmatch(given) and given == given.lower() \
            and given.strip("0"):
        return given
    if given is not None:
        attrs[EVENT_ATTRS["trace_id"]] = given
    return _synthetic_id(f"trace:{i}:{_key(event.get('event_id'))}", 16)


def _export_times(event: dict[str, Any], attrs: dict[str, Any]) -> tuple[int | None, int | None]:
    """The span's start and end from occurred_at and latency_ms; what they cannot carry exactly
    goes in `flywheel.occurred_at` / `flywheel.latency_ms`."""
    occurred, latency = event.get("occurred_at"), event.get("latency_ms")
    start = _export_nanos(occurred)
    if start is None and occurred is not None:
        attrs[EVENT_ATTRS["occurred_at"]] = occurred
    end = _export_end(start, latency)
    exact = start is not None and end is not None and (end - start) / 1e6 == latency
    if latency is not None and not exact:
        attrs[EVENT_ATTRS["latency_ms"]] = latency
    return start, end


def _event_attributes(i: int, event: dict[str, Any]) -> dict[str, Any]:
    """The event's `attributes`, checked not to collide with attributes the parser maps."""
    extra = event.get("attributes")
    if extra is None:
        return {}
    if not isinstance(extra, dict):
        raise ValueError(f"event {i + 1}: attributes must be an object, not {type(extra).__name__}")
    for key in extra:
        mapped = key in _CONSUMED or key.startswith(_CONSUMED_PREFIXES)
        if mapped or (key in (RESPONSE_MODEL, OI_MODEL) and event.get("model") is None):
            raise ValueError(f"event {i + 1}: attribute {key!r} collides with an attribute flywheel maps to a field")
    return extra


def _tool_calls_fit(tool_calls: Any) -> bool:
    """Whether tool calls can be written as execute_tool spans and read back unchanged."""
    return isinstance(tool_calls, list) and bool(tool_calls) and all(
        isinstance(c, dict) and set(c) <= {"name", "status", "arguments"} and isinstance(c.get("status"), str)
        for c in tool_calls
    )


def _tool_span(trace_id: str, parent_id: str, seed: str, call: dict[str, Any], start: int | None) -> dict[str, Any]:
    """The execute_tool span of one tool call."""
    attrs: dict[str, Any] = {OPERATION: TOOL_OPERATION}
    if "name" in call:
        attrs[TOOL_NAME] = call["name"]
    if "arguments" in call:
        attrs[TOOL_ARGUMENTS] = _json_text(call["arguments"])
    status = call["status"]
    if status not in ("ok", "error"):
        attrs[TOOL_STATUS] = status
    name = call.get("name")
    span: dict[str, Any] = {"traceId": trace_id, "spanId": _synthetic_id(f"tool:{seed}", 8), "parentSpanId": parent_id,
                            "name": f"execute_tool {name}" if isinstance(name, str) else "execute_tool", "kind": 1}
    _put_times(span, start, start)
    span["attributes"] = [_kv(k, v) for k, v in attrs.items()]
    if status == "error":
        span["status"] = {"code": STATUS_ERROR}
    return span


def _placeholder_span(n: int, interventions: list[dict[str, Any]]) -> dict[str, Any]:
    """A span carrying only an event id, for interventions whose event is not in the export."""
    event_id = interventions[0].get("event_id")
    attrs: dict[str, Any] = {EVENT_ATTRS["event_id"]: event_id} if event_id is not None else {}
    attrs[PLACEHOLDER] = True
    times = [t for t in (_export_nanos(iv.get("occurred_at")) for iv in interventions) if t is not None]
    span: dict[str, Any] = {"traceId": _synthetic_id(f"placeholder-trace:{n}:{_key(event_id)}", 16),
                            "spanId": _synthetic_id(f"placeholder:{n}", 8), "name": PLACEHOLDER, "kind": 1}
    _put_times(span, min(times, default=None), min(times, default=None))
    span["attributes"] = [_kv(k, v) for k, v in attrs.items()]
    span["events"] = [_intervention_event(iv) for iv in interventions]
    return span


def _intervention_event(intervention: dict[str, Any]) -> dict[str, Any]:
    """The flywheel.intervention span event of one intervention (its event id is its span's)."""
    out: dict[str, Any] = {}
    attrs: list[dict[str, Any]] = []
    occurred = intervention.get("occurred_at")
    ns = _export_nanos(occurred)
    if ns is not None:
        out["timeUnixNano"] = str(ns)
    elif occurred is not None:
        attrs.append(_kv(INTERVENTION_ATTRS["occurred_at"], occurred))
    out["name"] = INTERVENTION_EVENT
    for name, key in INTERVENTION_ATTRS.items():
        if name not in ("event_id", "occurred_at") and intervention.get(name) is not None:
            attrs.append(_kv(key, intervention[name]))
    out["attributes"] = attrs
    return out


def _put_times(span: dict[str, Any], start: int | None, end: int | None) -> None:
    """Set a span's start and end times, as OTLP/JSON decimal strings, when known."""
    if start is not None:
        span["startTimeUnixNano"] = str(start)
    if end is not None:
        span["endTimeUnixNano"] = str(end)


def _export_nanos(value: Any) -> int | None:
    """An RFC 3339 timestamp (or aware datetime) as positive nanoseconds since the epoch, or None."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return None
        delta = value - _EPOCH
        ns = (delta.days * 86_400 + delta.seconds) * _NS + delta.microseconds * 1_000
        return ns if ns > 0 else None
    if not isinstance(value, str):
        return None
    m = _TS.match(value)
    if not m or len(m.group(3) or "") > 9:
        return None
    day, clock, frac, offset = m.groups()
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        t = datetime.fromisoformat(f"{day}T{clock}{offset}")
    except ValueError:
        return None
    delta = t - _EPOCH
    ns = (delta.days * 86_400 + delta.seconds) * _NS + int((frac or "0").ljust(9, "0"))
    return ns if ns > 0 else None


def _export_end(start: int | None, latency_ms: Any) -> int | None:
    """The span end time for a latency in milliseconds, or None if it cannot be one."""
    if start is None or isinstance(latency_ms, bool) or not isinstance(latency_ms, (int, float)):
        return None
    if not math.isfinite(latency_ms):
        return None
    end = start + round(latency_ms * 1e6)
    return end if end > 0 else None


def _kv(key: str, value: Any) -> dict[str, Any]:
    """One OTLP attribute {key, value: AnyValue}."""
    return {"key": key, "value": encode_value(value)}


def encode_value(value: Any) -> dict[str, Any]:
    """A JSON-like Python value as an OTLP AnyValue (None as the empty AnyValue): what `export_otlp`
    writes, and how a pulled source (flywheel.sources.phoenix) turns a server's span attributes into
    OTLP JSON for `parse_otlp`."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return {"doubleValue": value}
        return {"doubleValue": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [encode_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": [_kv(str(k), v) for k, v in value.items()]}}
    if isinstance(value, datetime):
        return {"stringValue": value.isoformat()}
    raise ValueError(f"cannot write a {type(value).__name__} as an OTLP attribute value")


def _json_text(value: Any) -> str:
    """Compact JSON text, as an instrumentation writes a structured attribute on a span."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except TypeError as exc:
        raise ValueError(f"not JSON: {exc}") from None


def _key(value: Any) -> str:
    """A hashable identity for an event id of any JSON type."""
    return value if isinstance(value, str) else "\0" + json.dumps(value, sort_keys=True, default=str)


def _synthetic_id(seed: str, nbytes: int) -> str:
    """A deterministic, non-zero hex id of `nbytes` bytes."""
    return hashlib.sha256(seed.encode()).hexdigest()[: 2 * nbytes]
