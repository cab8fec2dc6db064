"""MLflow Tracing as a pulled source: traces and their assessments, read from an MLflow tracking server.

`MlflowServer(config)` reads, through the server's REST API (no mlflow package: plain HTTP), the
traces of the configured experiments (`POST /api/3.0/mlflow/traces/search`, `trace.timestamp_ms >=`
the window's start, oldest first, following `next_page_token`) and their spans
(`GET /api/3.0/mlflow/traces/batchGet`, spans in OTLP-JSON form). Spans whose `mlflow.spanType` is
one of the configured `event_types` (LLM, CHAT_MODEL) become AI audit events; the trace's
assessments become interventions through the `interventions` rules (flywheel.sources.verdicts):
feedback by its value (a label, a boolean, a number), an expectation with a text value as the
corrected output (`edited` with final_text). Assessments are append-only in MLflow: an assessment
that `overrides` another is the new version of the first one's record (record id: the first
assessment's id; version: its last update time), and the overridden one (`valid: false`) is not
read again. The tracking URI comes from the `pull.mlflow` section's `tracking_uri` or
MLFLOW_TRACKING_URI; credentials only from the environment (MLFLOW_TRACKING_TOKEN, or
MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD). docs/sources.md maps every field;
`flywheel pull mlflow` runs it through `flywheel.sources.pull.pull`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from flywheel.sources import Sources
from flywheel.sources.pull import Pulled, Window, parse_time
from flywheel.sources.verdicts import (
    Annotation,
    PullSource,
    as_number,
    mapped_fields,
    nest_dotted,
    pull_config,
    to_intervention,
)

NAME = "mlflow"
PAGE_SIZE = 100      # traces per search request
SPANS_BATCH = 10     # traces per batchGet request
TIMEOUT_S = 60.0
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_HEX_ID = re.compile(r"^[0-9a-f]{16}$")


class MlflowPull(PullSource):
    """The `pull.mlflow` section: the common keys, plus where the server is and which experiments.

    `tracking_uri` left out: MLFLOW_TRACKING_URI. `experiments`: experiment names."""

    tracking_uri: str | None = None
    experiments: list[str]


def mlflow_config(sources: Sources | None = None) -> MlflowPull:
    """The validated `pull.mlflow` section (as `flywheel.sources.verdicts.pull_config`, with the
    server keys); SourcesError naming every problem by its place."""
    return pull_config(NAME, sources, MlflowPull)  # type: ignore[return-value]


def tracking_uri(config: MlflowPull, override: str | None = None) -> str:
    """The server's base URL: `override`, else the section's `tracking_uri`, else MLFLOW_TRACKING_URI;
    ValueError when none is set or it is not an http(s) URL (a file or sqlite store has no server)."""
    uri = override or config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        raise ValueError("no MLflow tracking server: set pull.mlflow.tracking_uri in the sources file "
                         "or MLFLOW_TRACKING_URI")
    if urllib.parse.urlsplit(uri).scheme not in ("http", "https"):
        raise ValueError(f"MLflow tracking URI {uri!r} is not an http(s) server (run `mlflow server` and pull from it)")
    return uri.rstrip("/")


def _auth_headers() -> dict[str, str]:
    """Credentials from the environment only: a bearer token, or a user name and password."""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    return {}


# --- OTLP-JSON values, ids and times -------------------------------------------------------------

def any_value(v: Any) -> Any:
    """The Python value of an OTLP-JSON AnyValue (`string_value`, `int_value`, `kvlist_value`...)."""
    if not isinstance(v, dict) or not v:
        return None
    key, val = next(iter(v.items()))
    if key == "int_value":
        return int(val)
    if key == "double_value":
        return float(val)
    if key == "array_value":
        return [any_value(x) for x in (val or {}).get("values", [])]
    if key == "kvlist_value":
        return {kv["key"]: any_value(kv.get("value")) for kv in (val or {}).get("values", [])}
    return val  # string_value, bool_value, bytes_value (base64 text)




def span_hex(value: Any) -> str | None:
    """A span id as 16 hex digits, from OTLP-JSON's base64 or from hex."""
    if not isinstance(value, str) or not value:
        return None
    if _HEX_ID.match(value):
        return value
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 8 else None


def _ns_iso(ns: Any) -> str | None:
    try:
        ns = int(ns)
    except (TypeError, ValueError):
        return None
    t = datetime.fromtimestamp(ns // 10**9, timezone.utc).replace(microsecond=(ns % 10**9) // 1000)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ms_iso(t: datetime) -> str:
    """A time as RFC 3339 UTC with milliseconds (MLflow's precision), the same text however the
    server wrote it (`.100Z` or `.1Z`, no fraction at a whole second)."""
    t = t.astimezone(timezone.utc)
    return f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"


def _text(value: Any) -> str | None:
    """The text of a span's inputs or outputs: a string as it is; chat messages (`messages`, or a
    list of them): the last message's content; an OpenAI-style response: the first choice's message
    content; `{content}`; anything else as compact JSON."""
    if value is None or value == "" or value == {}:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if isinstance(value.get("content"), str):
            return value["content"]
        choices = value.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            message = choices[0].get("message")
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                return message["content"]
        if isinstance(value.get("messages"), list):
            return _text(value["messages"])
    if isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m for m in value):
        content = value[-1].get("content")
        if isinstance(content, str):
            return content
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and value == int(value) and value >= 0:
        return int(value)
    return None


def _canonical_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]




# --- spans and traces -----------------------------------------------------------------------------

def read_span(span: dict[str, Any]) -> dict[str, Any]:
    """A batchGet span in plain form: hex ids, decoded attributes (flat), times, status."""
    attrs = {kv["key"]: any_value(kv.get("value")) for kv in span.get("attributes") or [] if "key" in kv}
    kind = attrs.get("mlflow.spanType")
    if isinstance(kind, str) and kind.startswith('"'):
        try:
            kind = json.loads(kind)
        except ValueError:
            pass
    status = span.get("status") or {}
    return {"span_id": span_hex(span.get("span_id")), "parent_id": span_hex(span.get("parent_span_id")),
            "name": span.get("name") or "", "span_type": kind, "attributes": attrs,
            "start_ns": span.get("start_time_unix_nano"), "end_ns": span.get("end_time_unix_nano"),
            "status_code": status.get("code") or "STATUS_CODE_UNSET", "status_message": status.get("message") or ""}


def _tokens(attrs: dict[str, Any], which: str) -> int | None:
    usage = attrs.get("mlflow.chat.tokenUsage")
    if isinstance(usage, str):
        try:
            usage = json.loads(usage)
        except ValueError:
            usage = None
    if isinstance(usage, dict) and _int(usage.get(f"{which}_tokens")) is not None:
        return _int(usage.get(f"{which}_tokens"))
    for key in (f"gen_ai.usage.{which}_tokens",
                "llm.token_count.prompt" if which == "input" else "llm.token_count.completion"):
        if _int(attrs.get(key)) is not None:
            return _int(attrs.get(key))
    return None


def _io(attrs: dict[str, Any], which: str) -> str | None:
    mlflow_key, oi_key = ("mlflow.spanInputs", "input.value") if which == "input" else \
        ("mlflow.spanOutputs", "output.value")
    for key in (mlflow_key, oi_key):
        text = _text(attrs.get(key))
        if text is not None:
            return text
    return None


def trace_context(info: dict[str, Any]) -> dict[str, Any]:
    """The trace as the `fields` paths see it: `trace.tags.*`, `trace.metadata.*` (dotted keys
    nested), `trace.name` (its `mlflow.traceName` tag), `trace.state`, `trace.id`."""
    tags, metadata = info.get("tags") or {}, info.get("trace_metadata") or {}
    return {"id": info.get("trace_id"), "name": tags.get("mlflow.traceName"), "state": info.get("state"),
            "tags": nest_dotted(tags), "metadata": nest_dotted(metadata)}


def _span_context(span: dict[str, Any] | None) -> dict[str, Any]:
    if span is None:
        return {}
    return {"name": span["name"], "type": span["span_type"], "attributes": nest_dotted(span["attributes"])}


def map_span(span: dict[str, Any], info: dict[str, Any], config: PullSource,
             root: dict[str, Any] | None = None) -> dict[str, Any]:
    """The AI audit event of an LLM/CHAT_MODEL span of a trace (`root`: the trace's root span, where
    agent frameworks name the agent); fields the candidates find nothing for are left out (the
    landing sync quarantines the event when they are required)."""
    attrs = span["attributes"]
    context = {"span": _span_context(span), "root": _span_context(root), "trace": trace_context(info)}
    event: dict[str, Any] = {"event_id": span["span_id"], "occurred_at": _ns_iso(span["start_ns"])}
    fields = mapped_fields(context, config.fields)
    if "confidence" in fields:
        fields["confidence"] = as_number(fields["confidence"])
    for key in ("prompt_version", "scenario", "model"):
        if key in fields and not isinstance(fields[key], str):
            fields[key] = str(fields[key])
    event.update(fields)
    event["status"] = "error" if span["status_code"] == "STATUS_CODE_ERROR" else "ok"
    for key, which in (("input_text", "input"), ("output_text", "output")):
        text = _io(attrs, which)
        if text is not None:
            event[key] = text
    try:
        latency = (int(span["end_ns"]) - int(span["start_ns"])) / 1e6
    except (TypeError, ValueError):
        latency = None
    if latency is not None and latency >= 0:
        event["latency_ms"] = latency
    for key, which in (("input_tokens", "input"), ("output_tokens", "output")):
        n = _tokens(attrs, which)
        if n is not None:
            event[key] = n
    event["trace_id"] = info.get("trace_id")
    location = (info.get("trace_location") or {}).get("mlflow_experiment") or {}
    kept = {"span_name": span["name"], "span_type": span["span_type"], "trace_state": info.get("state"),
            "trace_name": (info.get("tags") or {}).get("mlflow.traceName"),
            "experiment_id": location.get("experiment_id"), "status_message": span["status_message"],
            "cost": attrs.get("mlflow.llm.cost")}
    event["attributes"] = {"mlflow": {k: v for k, v in kept.items() if v not in (None, "", {})}}
    return event


# --- assessments ----------------------------------------------------------------------------------

def assessment_value(a: dict[str, Any]) -> tuple[str, Any]:
    """(value type, value) of an assessment as `flywheel.sources.verdicts.Annotation` reads it:
    feedback: a string is a label, a boolean a boolean, a number a score, anything else text;
    an expectation: a string is the corrected output (`correction`), anything else text (JSON)."""
    if isinstance(a.get("expectation"), dict):
        value = a["expectation"].get("value")
        if isinstance(value, str):
            return "correction", value
        return "text", None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)
    value = (a.get("feedback") or {}).get("value")
    if isinstance(value, bool):
        return "boolean", value
    if isinstance(value, (int, float)):
        return "score", float(value)
    if isinstance(value, str):
        return "label", value
    return "text", None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _root(a: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> str:
    """The id of the first assessment of `a`'s override chain (its record id)."""
    seen, current = set(), a
    while current.get("overrides") in by_id and current["assessment_id"] not in seen:
        seen.add(current["assessment_id"])
        current = by_id[current["overrides"]]
    return current["assessment_id"]


class _Trace:
    """One trace's info and its spans: which spans are events, which event an assessment is about."""

    def __init__(self, info: dict[str, Any], spans: list[dict[str, Any]], event_types: list[str]) -> None:
        self.info = info
        self.spans = {s["span_id"]: s for s in spans if s["span_id"]}
        self.events = [s for s in self.spans.values() if s["span_type"] in event_types]
        roots = [s for s in self.spans.values() if s["parent_id"] not in self.spans]
        self.root = min(roots, key=lambda s: (int(s["start_ns"] or 0), s["span_id"])) if roots else None
        self.children: dict[str, list[str]] = {}
        for s in self.spans.values():
            if s["parent_id"]:
                self.children.setdefault(s["parent_id"], []).append(s["span_id"])

    @staticmethod
    def _last(spans: list[dict[str, Any]]) -> str:
        return max(spans, key=lambda s: (int(s["start_ns"] or 0), s["span_id"]))["span_id"]

    def event_of(self, a: dict[str, Any]) -> tuple[str | None, str, str]:
        """(event id, "", "") or (None, reason, detail): the assessment's span when it is an event,
        else the latest-starting event span under it; a trace assessment: the trace's latest event."""
        span_id = span_hex(a.get("span_id"))
        if span_id:
            if span_id not in self.spans:
                return None, "span_not_found", f"span {span_id} is not in trace {self.info.get('trace_id')}"
            below, todo = [], [span_id]
            while todo:
                sid = todo.pop()
                if self.spans[sid] in self.events:
                    below.append(self.spans[sid])
                todo.extend(c for c in self.children.get(sid, []) if c in self.spans)
            if not below:
                return None, "no_event_for_target", f"span {span_id} is no event span and has none under it"
            return (span_id if self.spans[span_id] in self.events else self._last(below)), "", ""
        if not self.events:
            return None, "no_event_for_target", f"trace {self.info.get('trace_id')} has no event span"
        return self._last(self.events), "", ""


class MlflowServer:
    """An MLflow tracking server's traces and assessments, as a `flywheel.sources.pull.Source`."""

    name = NAME

    def __init__(self, config: MlflowPull, uri: str | None = None, experiments: list[str] | None = None,
                 page_size: int = PAGE_SIZE) -> None:
        self.config = config
        self.uri = tracking_uri(config, uri)
        self.experiments = list(experiments or config.experiments)
        if not self.experiments:
            raise ValueError("no MLflow experiment to pull: list names in pull.mlflow.experiments")
        self.page_size = page_size
        self.requests = 0

    # HTTP
    def _call(self, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None) -> Any:
        url = f"{self.uri}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", **_auth_headers()}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode("utf-8", "replace")
            raise OSError(f"MLflow server {self.uri}: {method} {path} -> HTTP {exc.code}: {detail}") from None
        except urllib.error.URLError as exc:
            raise OSError(f"MLflow server {self.uri} unreachable: {exc.reason}") from None

    def experiment_ids(self) -> list[str]:
        """The configured experiments' ids (by name); ValueError naming one the server does not have."""
        ids = []
        for name in self.experiments:
            try:
                body = self._call("GET", "/api/2.0/mlflow/experiments/get-by-name", query=[("experiment_name", name)])
            except OSError as exc:
                if "RESOURCE_DOES_NOT_EXIST" in str(exc):
                    raise ValueError(f"MLflow server {self.uri} has no experiment named {name!r}") from None
                raise
            ids.append(str(body["experiment"]["experiment_id"]))
        return ids

    def traces(self, since: datetime | None) -> Iterator[dict[str, Any]]:
        """Trace infos of the experiments started at or after `since` (all: None), oldest first,
        page by page."""
        body: dict[str, Any] = {
            "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": i}}
                          for i in self.experiment_ids()],
            "max_results": self.page_size, "order_by": ["timestamp_ms ASC"]}
        if since is not None:
            body["filter"] = f"trace.timestamp_ms >= {int((since - _EPOCH).total_seconds() * 1000)}"
        while True:
            page = self._call("POST", "/api/3.0/mlflow/traces/search", body)
            yield from page.get("traces") or []
            token = page.get("next_page_token")
            if not token:
                return
            body["page_token"] = token

    def spans(self, trace_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The spans of the traces, by trace id."""
        out: dict[str, list[dict[str, Any]]] = {}
        for i in range(0, len(trace_ids), SPANS_BATCH):
            batch = trace_ids[i:i + SPANS_BATCH]
            body = self._call("GET", "/api/3.0/mlflow/traces/batchGet", query=[("trace_ids", t) for t in batch])
            for t in body.get("traces") or []:
                out[(t.get("trace_info") or {}).get("trace_id")] = [read_span(s) for s in t.get("spans") or []]
        return out

    # the Source protocol
    def fetch(self, window: Window) -> Iterator[Pulled]:
        """The event spans of the traces in the events window, then the assessments made in the
        annotations window (of the traces that started in it), batch by batch; a trace still
        IN_PROGRESS is left for a later pull."""
        since = min((t for t in (window.events_since, window.annotations_since) if t is not None), default=None)
        batch: list[dict[str, Any]] = []
        for info in self.traces(since):
            batch.append(info)
            if len(batch) == self.page_size:
                yield from self._batch(batch, window)
                batch = []
        yield from self._batch(batch, window)

    def _batch(self, infos: list[dict[str, Any]], window: Window) -> Iterator[Pulled]:
        wanted = []
        for info in infos:
            if info.get("state") == "IN_PROGRESS":
                continue  # its spans are not all in yet: read again by the next pull (the overlap)
            at = parse_time(info.get("request_time"))
            in_events = window.events_since is None or (at is not None and at >= window.events_since)
            if in_events or self._assessments(info, window):
                wanted.append(info["trace_id"])
        spans = self.spans(wanted) if wanted else {}
        for info in infos:
            if info["trace_id"] not in spans:
                continue
            trace = _Trace(info, spans[info["trace_id"]], self.config.event_types)
            at = parse_time(info.get("request_time"))
            if window.events_since is None or (at is not None and at >= window.events_since):
                for span in trace.events:
                    record = map_span(span, info, self.config, trace.root)
                    yield Pulled("events", span["span_id"], _canonical_hash(record), at, record=record)
            for a in self._assessments(info, window):
                yield self._assessment(a, trace)

    def _assessments(self, info: dict[str, Any], window: Window) -> list[dict[str, Any]]:
        """The trace's assessments in the annotations window, less those another overrides (the
        overriding one is their record's new version)."""
        all_ = [a for a in info.get("assessments") or [] if a.get("assessment_id")]
        overridden = {a["overrides"] for a in all_ if a.get("overrides")}
        out = []
        for a in all_:
            if a["assessment_id"] in overridden and a.get("valid") is False:
                continue
            at = parse_time(a.get("last_update_time"))
            if window.annotations_since is not None and at is not None and at < window.annotations_since:
                continue
            out.append(a)
        return out

    def _assessment(self, a: dict[str, Any], trace: _Trace) -> Pulled:
        by_id = {x["assessment_id"]: x for x in trace.info.get("assessments") or [] if x.get("assessment_id")}
        record_id = _root(a, by_id)
        raw_when = a.get("last_update_time") or a.get("create_time")
        at = parse_time(raw_when)
        when = _ms_iso(at) if at is not None else None
        version = when or _canonical_hash(a)

        def bad(reason: str, detail: str) -> Pulled:
            return Pulled("interventions", record_id, str(version), at, reason=reason, detail=detail, raw=a)

        if at is None:
            return bad("bad_timestamp", f"last_update_time {raw_when!r} is not RFC 3339")
        if a.get("valid") is False:
            return bad("invalid_assessment", f"assessment {a['assessment_id']} is marked not valid")
        event_id, reason, detail = trace.event_of(a)
        if event_id is None:
            return bad(reason, detail)
        value_type, value = assessment_value(a)
        source = a.get("source") or {}
        assert when is not None
        annotation = Annotation(record_id=record_id, version=when, event_id=event_id, occurred_at=when,
                                name=str(a.get("assessment_name") or ""), annotator=str(source.get("source_type") or ""),
                                value_type=value_type, value=value, reviewer_id=source.get("source_id") or None,
                                comment=a.get("rationale") or None)
        record, reason, detail = to_intervention(annotation, self.config)
        if record is None:
            return bad(reason, detail)
        return Pulled("interventions", record_id, when, at, record=record)
