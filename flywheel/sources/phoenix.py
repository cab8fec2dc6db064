"""Arize Phoenix as a pulled source: LLM spans and their human annotations, read from a running server.

`PhoenixServer(settings, config)` reads a Phoenix server's REST API (plain HTTP: the client package
has no ascending order or cursor, and the server's own dependencies conflict with dagster's): spans
from GET /v1/projects/{project}/spans, annotations from GET /v1/projects/{project}/span_annotations.
Spans whose `span_kind` is one of the configured `event_types` (LLM) become AI audit events, mapped
as flywheel.otlp maps an OpenTelemetry span (the same content, token and status attributes) with
the field candidates of the sources file's `pull.phoenix` section; annotations become interventions
through its `interventions` rules (flywheel.sources.verdicts), those of annotators not listed
(LLM, CODE) and those without a result quarantined with the reason.

Incremental, and why two span queries: the pull's window asks for spans that started at or after
the high-water mark minus `overlap` (`sort=start_time`, ascending, by cursor); a span that reaches
Phoenix later than that (its start is older: a batch exporter flushed late, a backfill) is missed
by a start-time filter, so each pull also reads spans in insertion order, newest first
(`sort=id&order=desc`), down to the first event span already pulled (the pull's state holds
them). Annotations have no time filter in Phoenix: each pull asks for the annotations of every
event span in the state (those that started within `annotation_lookback` of the high-water mark)
and of the spans just read, and keeps those changed within the lookback. Span ids and annotation
(id, version) make it idempotent (flywheel.sources.pull). docs/sources.md maps every field.

The server's URL is the section's `url`, else PHOENIX_COLLECTOR_ENDPOINT; PHOENIX_API_KEY (from
the environment only) is sent as a bearer token when set.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import field_validator

from flywheel.config import Settings
from flywheel.otlp import OI_SPAN_KIND, encode_value, parse_otlp
from flywheel.sources import OtlpFields, OtlpSource, Sources, SourcesError
from flywheel.sources.pull import Pulled, Window, load_state, parse_time
from flywheel.sources.verdicts import (
    Annotation,
    PullSource,
    as_number,
    mapped_fields,
    nest_dotted,
    pull_config,
    to_intervention,
)

NAME = "phoenix"
URL_ENV = "PHOENIX_COLLECTOR_ENDPOINT"
KEY_ENV = "PHOENIX_API_KEY"
SPAN_PAGE = 1000
IDS_PER_CALL = 100  # span ids per annotations request (keeps the query string short)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_STATUS = {"UNSET": 0, "OK": 1, "ERROR": 2}


class PhoenixSection(PullSource):
    """The `pull.phoenix` section: the common pull keys, and where the server is."""

    url: str | None = None
    project: str = "default"
    timeout: float = 30.0

    @field_validator("url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"an http:// or https:// URL, got {v!r}")
        return v


def phoenix_config(sources: Sources | None = None) -> PhoenixSection:
    """The validated `pull.phoenix` section (default: the file FLYWHEEL_SOURCES names, merged over
    the shipped default); SourcesError naming every problem by its place otherwise."""
    return pull_config(NAME, sources, PhoenixSection)  # type: ignore[return-value]


def base_url(config: PhoenixSection, environ: dict[str, str] | None = None) -> str:
    """The server's base URL: the section's `url`, else PHOENIX_COLLECTOR_ENDPOINT (a trailing
    /v1/traces removed); SourcesError when neither is set."""
    env = os.environ if environ is None else environ
    url = config.url or env.get(URL_ENV, "").strip()
    if not url:
        raise SourcesError(f"no Phoenix server: set pull.{NAME}.url in the sources file or {URL_ENV}")
    url = url.rstrip("/")
    return url.removesuffix("/v1/traces")


def event_id_of(span: dict[str, Any]) -> str:
    """The event id of a span: `<trace id>-<span id>`, as flywheel.otlp names an OTLP span's event."""
    ctx = span.get("context") or {}
    return f"{ctx.get('trace_id')}-{ctx.get('span_id')}"


def _unix_nanos(value: Any) -> str | None:
    t = parse_time(value)
    return None if t is None else str((t - _EPOCH) // timedelta(microseconds=1) * 1000)


def as_otlp(span: dict[str, Any]) -> dict[str, Any]:
    """The span as an OTLP JSON export request, so that flywheel.otlp maps it as it maps any
    OpenTelemetry span (Phoenix moves `openinference.span.kind` into `span_kind`: put back)."""
    ctx = span.get("context") or {}
    attrs = {**(span.get("attributes") or {}), OI_SPAN_KIND: span.get("span_kind")}
    out: dict[str, Any] = {
        "traceId": ctx.get("trace_id"), "spanId": ctx.get("span_id"), "name": span.get("name"),
        "startTimeUnixNano": _unix_nanos(span.get("start_time")), "endTimeUnixNano": _unix_nanos(span.get("end_time")),
        "status": {"code": _STATUS.get(str(span.get("status_code")), 0), "message": span.get("status_message") or ""},
        "attributes": [{"key": k, "value": encode_value(v)} for k, v in attrs.items() if v is not None],
        "events": [{"name": e.get("name"), "timeUnixNano": _unix_nanos(e.get("timestamp")),
                    "attributes": [{"key": k, "value": encode_value(v)} for k, v in (e.get("attributes") or {}).items()
                                   if v is not None]}
                   for e in span.get("events") or [] if isinstance(e, dict)],
    }
    if span.get("parent_id"):
        out["parentSpanId"] = span["parent_id"]
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"scope": {"name": "phoenix"},
                                                                              "spans": [out]}]}]}


def _otlp_section(config: PullSource) -> OtlpSource:
    """The OTLP mapping for Phoenix spans: its event kinds, and no field candidates (those come
    from the pull.phoenix section; a span's flywheel.<field> attributes still win)."""
    return OtlpSource(event_spans={OI_SPAN_KIND: list(config.event_types)}, tool_spans={OI_SPAN_KIND: ["TOOL"]},
                      fields=OtlpFields(scenario=[], model=[], prompt_version=[], confidence=[], autonomy_level=[]))


def map_span(span: dict[str, Any], project: str, config: PullSource) -> tuple[dict[str, Any] | None, str]:
    """(the AI audit event of an LLM span as the REST API returns it, "") or (None, why it cannot
    be read). Content, tokens, status, latency and flywheel.* attributes are read by
    flywheel.otlp.parse_otlp; the fields it leaves out come from the section's candidates, and
    what those find nothing for is left out too (the landing sync quarantines the event if the
    field is required)."""
    try:
        events, _ = parse_otlp(json.dumps(as_otlp(span)).encode(), _otlp_section(config))
    except ValueError as exc:
        return None, str(exc)
    if not events or events[0].record is None:
        return None, events[0].error or "not an OTLP span" if events else "not an event span"
    event = dict(events[0].record)
    context = {"span": span, "attributes": nest_dotted(span.get("attributes") or {}), "project": {"name": project}}
    for key, value in mapped_fields(context, config.fields).items():
        event.setdefault(key, value)
    if "confidence" in event:
        event["confidence"] = as_number(event["confidence"])
    for key in ("scenario", "model", "prompt_version"):
        if key in event and not isinstance(event[key], str):
            event[key] = str(event[key])
    kept = {"project": project, **{k: span[k] for k in ("id", "name", "span_kind", "parent_id", "status_message")
                                   if span.get(k) not in (None, "")}}
    attributes = event.get("attributes") if isinstance(event.get("attributes"), dict) else {}
    event["attributes"] = {**attributes, "phoenix": kept}
    return event, ""


def _value_of(a: dict[str, Any], config: PullSource) -> tuple[str, Any]:
    """(value type, value) of an annotation's result for `to_intervention`: the explanation as a
    correction when its name's rule maps corrections, else the label, else the score."""
    result = a.get("result") if isinstance(a.get("result"), dict) else {}
    rule = next((r for r in config.interventions if r.name is None or r.name == a.get("name")), None)
    label, score, explanation = result.get("label"), result.get("score"), result.get("explanation")
    if rule is not None and rule.correction:
        return "correction", explanation if isinstance(explanation, str) else None
    has_label = isinstance(label, str) and label != ""
    has_score = isinstance(score, (int, float)) and not isinstance(score, bool)
    if has_label and (not has_score or rule is None or rule.labels or not rule.scores):
        return "label", label
    if has_score:
        return "score", float(score)
    return "label", None


def annotation_version(a: dict[str, Any]) -> str:
    """An annotation's version: its updated_at (one-second resolution) and a hash of its result,
    so a change within the same second is a new version too."""
    digest = hashlib.sha256(json.dumps([a.get("name"), a.get("annotator_kind"), a.get("result")],
                                       sort_keys=True).encode()).hexdigest()[:8]
    return f"{a.get('updated_at')}#{digest}"


def map_annotation(a: dict[str, Any], event_id: str, config: PullSource) -> Pulled:
    """An annotation as an intervention, or quarantined with the reason (flywheel.sources.verdicts)."""
    version = annotation_version(a)
    at = parse_time(a.get("updated_at"))
    if at is None:
        return Pulled("interventions", str(a.get("id")), version, None, reason="bad_timestamp",
                      detail=f"updated_at {a.get('updated_at')!r} is not RFC 3339", raw=a)
    value_type, value = _value_of(a, config)
    result = a.get("result") if isinstance(a.get("result"), dict) else {}
    comment = result.get("explanation") if value_type != "correction" else None
    annotation = Annotation(record_id=str(a["id"]), version=version, event_id=event_id, occurred_at=a["updated_at"],
                            name=str(a.get("name") or ""), annotator=str(a.get("annotator_kind") or ""),
                            value_type=value_type, value=value, reviewer_id=a.get("user_id") or None,
                            comment=comment or None)
    record, reason, detail = to_intervention(annotation, config)
    if record is None:
        return Pulled("interventions", str(a["id"]), version, at, reason=reason, detail=detail, raw=a)
    final_text = (a.get("metadata") or {}).get("final_text") if isinstance(a.get("metadata"), dict) else None
    if record["action"] == "edited" and "final_text" not in record and isinstance(final_text, str) and final_text:
        record["final_text"] = final_text
    return Pulled("interventions", str(a["id"]), version, at, record=record)


class PhoenixServer:
    """A Phoenix server's project, as a `flywheel.sources.pull.Source`."""

    name = NAME

    def __init__(self, settings: Settings, config: PhoenixSection, url: str | None = None,
                 api_key: str | None = None, page_size: int = SPAN_PAGE) -> None:
        self.settings = settings
        self.config = config
        self.url = url or base_url(config)
        self.api_key = api_key if api_key is not None else os.environ.get(KEY_ENV) or None
        self.project = config.project
        self.page_size = page_size  # rows a request (the server's cursor pages through the rest)

    # -- HTTP ----------------------------------------------------------------------------------
    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        request = urllib.request.Request(f"{self.url}{path}?{query}", headers={"Accept": "application/json"})
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()[:300].decode("utf-8", "replace")
            raise OSError(f"Phoenix at {self.url}: GET {path} answered {exc.code}: {body}") from None

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        params = dict(params)
        while True:
            body = self._get(path, params)
            yield from body.get("data") or []
            cursor = body.get("next_cursor")
            if not cursor:
                return
            params["cursor"] = cursor

    def spans(self, sort: str, order: str, start_time: datetime | None = None) -> Iterator[dict[str, Any]]:
        """The project's event spans (span_kind in event_types), in the order asked."""
        project = urllib.parse.quote(self.project, safe="")
        return self._pages(f"/v1/projects/{project}/spans",
                           {"sort": sort, "order": order, "limit": self.page_size,
                            "span_kind": list(self.config.event_types),
                            "start_time": start_time.isoformat() if start_time is not None else None})

    def annotations(self, span_ids: list[str]) -> Iterator[dict[str, Any]]:
        """The span annotations of `span_ids`, in batches."""
        project = urllib.parse.quote(self.project, safe="")
        for i in range(0, len(span_ids), IDS_PER_CALL):
            yield from self._pages(f"/v1/projects/{project}/span_annotations",
                                   {"span_ids": span_ids[i:i + IDS_PER_CALL], "limit": self.page_size})

    # -- Source --------------------------------------------------------------------------------
    def fetch(self, window: Window) -> Iterator[Pulled]:
        """New and overlapping event spans (window by start time, plus the late ones in insertion
        order), then the annotations of the spans in the lookback changed within it."""
        state = load_state(self.settings, NAME)
        pulled: dict[str, str | None] = {}  # event id -> start time, of event spans pulled before
        for table in (state["seen"], state["quarantined"]):
            for key, value in table.items():
                kind, _, record_id = key.partition("\x1f")
                if kind == "events":
                    pulled[record_id] = value[-1]
        spans: dict[str, dict[str, Any]] = {}
        if window.events_since is None:
            for span in self.spans("id", "asc"):
                spans.setdefault(event_id_of(span), span)
        else:
            for span in self.spans("start_time", "asc", window.events_since):
                spans.setdefault(event_id_of(span), span)
            for span in self.spans("id", "desc"):  # late arrivals: newest insert first
                eid = event_id_of(span)
                if eid in pulled:
                    break
                spans.setdefault(eid, span)
        for eid, span in spans.items():
            at = parse_time(span.get("start_time"))
            if at is None:
                yield Pulled("events", eid, "1", None, reason="bad_timestamp",
                             detail=f"start_time {span.get('start_time')!r} is not RFC 3339", raw=span)
                continue
            # A span is immutable once Phoenix has it: one version.
            record, why = map_span(span, self.project, self.config)
            if record is None:
                yield Pulled("events", eid, "1", at, reason="unreadable_span", detail=why, raw=span)
                continue
            yield Pulled("events", eid, "1", at, record=record)
        since = window.annotations_since
        targets = {eid.rpartition("-")[2]: eid for eid, t in pulled.items()
                   if since is None or ((pt := parse_time(t)) is not None and pt >= since)}
        targets.update({(s.get("context") or {}).get("span_id"): eid for eid, s in spans.items()})
        for a in self.annotations(sorted(k for k in targets if k)):
            at = parse_time(a.get("updated_at"))
            if since is not None and at is not None and at < since:
                continue
            if not a.get("id"):
                continue
            eid = targets.get(a.get("span_id"))
            if eid is None:  # not asked for: the server answered with another span's annotation
                yield Pulled("interventions", str(a["id"]), annotation_version(a), at, reason="span_not_found",
                             detail=f"span {a.get('span_id')!r} is not one of the spans asked for", raw=a)
                continue
            yield map_annotation(a, eid, self.config)
