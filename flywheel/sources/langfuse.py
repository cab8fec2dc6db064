"""Langfuse as a pulled source: traces, observations and scores as its public API returns them.

`LangfuseFiles(folder, config)` reads every `*.json` file under `folder` holding one page of a list
response of the Langfuse public API, `{"data": [...], "meta": {...}}`: GET /api/public/traces,
/api/public/observations (v1, page-based) and /api/public/v2/observations (cursor-based, io as raw
strings), /api/public/v2/scores and /api/public/v3/scores (value polymorphic, target in
`subject`). Each item is recognised by its shape, not by the file's name: a score has `dataType`,
an observation `startTime` and `type`, a trace `timestamp`. Observations of the configured
`event_types` (GENERATION) become AI audit events; scores become interventions through the
`interventions` rules (flywheel.sources.verdicts); traces and the other observations are context
(the trace's name and metadata, the observation a score points at). docs/sources.md maps every
field; `flywheel pull langfuse --from DIR` runs it through `flywheel.sources.pull.pull`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flywheel.sources.pull import Pulled, Window, parse_time
from flywheel.sources.verdicts import Annotation, PullSource, as_number, mapped_fields, to_intervention

NAME = "langfuse"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# The score data types and how their value reads (flywheel.sources.verdicts.Annotation.value_type).
SCORE_TYPES = {"NUMERIC": "score", "CATEGORICAL": "label", "BOOLEAN": "boolean", "CORRECTION": "correction",
               "TEXT": "text"}


@dataclass
class _Folder:
    """What the files hold: traces and observations by id, scores in file order, unreadable items."""

    traces: dict[str, dict[str, Any]] = field(default_factory=dict)
    observations: dict[str, dict[str, Any]] = field(default_factory=dict)
    scores: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    bad: list[Pulled] = field(default_factory=list)


def _canonical_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def read_folder(folder: Path) -> _Folder:
    """Every list response under `folder` (sorted by path), its items sorted into traces,
    observations and scores; a file that is not a list response, and an item of no known shape,
    become quarantined records (`unreadable_file`, `unrecognized_record`)."""
    out = _Folder()
    for path in sorted(folder.rglob("*.json")):
        rel = path.relative_to(folder).as_posix()
        try:
            doc = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError) as exc:
            doc, problem = None, f"not JSON: {exc}"
        else:
            problem = "" if isinstance(doc, dict) and isinstance(doc.get("data"), list) else \
                'not a list response {"data": [...], "meta": {...}}'
        if problem:
            out.bad.append(Pulled("files", rel, _canonical_hash(path.read_bytes().decode("utf-8", "replace")), None,
                                  reason="unreadable_file", detail=problem))
            continue
        for i, item in enumerate(doc["data"]):
            where = f"{rel}#{i}"
            if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
                if "dataType" in item:
                    out.scores.append((where, item))
                    continue
                if "startTime" in item and "type" in item:
                    out.observations.setdefault(item["id"], item)
                    continue
                if "timestamp" in item:
                    out.traces.setdefault(item["id"], item)
                    continue
            out.bad.append(Pulled("unrecognized", where, _canonical_hash(item), None, reason="unrecognized_record",
                                  detail="neither a trace, an observation nor a score (or no id)", raw=item))
    return out


def _decoded(value: Any) -> Any:
    """A v2 observation's io is a raw string: JSON text is decoded (a JSON string stays the string)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _text(value: Any) -> str | None:
    """The text of an input or output: a string as it is; chat messages: the last message's content;
    anything else as compact JSON."""
    value = _decoded(value)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    if isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m for m in value):
        content = value[-1].get("content")
        if isinstance(content, str):
            return content
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _tokens(obs: dict[str, Any], key: str) -> int | None:
    for container in (obs.get("usageDetails"), obs.get("usage")):
        if isinstance(container, dict):
            value = container.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value == int(value):
                return int(value)
    return None




def map_observation(obs: dict[str, Any], trace: dict[str, Any] | None, config: PullSource) -> dict[str, Any]:
    """The AI audit event of a generation observation (and its trace, when read); fields the
    candidates find nothing for are left out, and the landing sync quarantines the event if they
    are required (missing_field), as for any landing file."""
    context = {"observation": {**obs, "metadata": _decoded(obs.get("metadata"))},
               "trace": {**(trace or {}), "metadata": _decoded((trace or {}).get("metadata"))}}
    event: dict[str, Any] = {"event_id": obs["id"], "occurred_at": obs["startTime"]}
    fields = mapped_fields(context, config.fields)
    if "confidence" in fields:
        fields["confidence"] = as_number(fields["confidence"])
    if "prompt_version" in fields and not isinstance(fields["prompt_version"], str):
        fields["prompt_version"] = str(fields["prompt_version"])
    event.update(fields)
    event["status"] = "error" if obs.get("level") == "ERROR" else "ok"
    for key, name in (("input_text", "input"), ("output_text", "output")):
        text = _text(obs.get(name))
        if text is not None:
            event[key] = text
    start, end = parse_time(obs.get("startTime")), parse_time(obs.get("endTime"))
    if start is not None and end is not None and end >= start:
        event["latency_ms"] = (end - start).total_seconds() * 1000.0
    for key, name in (("input_tokens", "input"), ("output_tokens", "output")):
        n = _tokens(obs, name)
        if n is not None:
            event[key] = n
    if obs.get("traceId"):
        event["trace_id"] = obs["traceId"]
    kept = {k: obs[k] for k in ("name", "environment", "version", "promptName", "promptVersion", "statusMessage",
                                "level", "parentObservationId", "calculatedTotalCost", "totalCost")
            if obs.get(k) not in (None, "")}
    if trace:
        kept.update({f"trace_{k}": trace[k] for k in ("name", "userId", "sessionId", "tags", "release")
                     if trace.get(k) not in (None, "", [])})
    event["attributes"] = {"langfuse": kept}
    return event


class LangfuseFiles:
    """A folder of Langfuse public API list responses, as a `flywheel.sources.pull.Source`."""

    name = NAME

    def __init__(self, folder: Path, config: PullSource) -> None:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"{folder}: no such folder of Langfuse API responses")
        self.folder = Path(folder)
        self.config = config

    def fetch(self, window: Window) -> Iterator[Pulled]:
        """The folder's unreadable items, its events in the window, then its scores in the window."""
        files = read_folder(self.folder)
        yield from files.bad
        generations = {i: o for i, o in files.observations.items() if o.get("type") in self.config.event_types}
        for obs in generations.values():
            at = parse_time(obs.get("startTime"))
            version = str(obs.get("updatedAt") or _canonical_hash(obs))
            if at is None:
                yield Pulled("events", obs["id"], version, None, reason="bad_timestamp",
                             detail=f"startTime {obs.get('startTime')!r} is not RFC 3339", raw=obs)
                continue
            if window.events_since is not None and at < window.events_since:
                continue
            record = map_observation(obs, files.traces.get(obs.get("traceId") or ""), self.config)
            yield Pulled("events", obs["id"], version, at, record=record)
        targets = _Targets(files, generations)
        for where, score in files.scores:
            item = self._score(where, score, targets)
            if item is None:
                continue
            if window.annotations_since is not None and item.at is not None and item.at < window.annotations_since:
                continue
            yield item

    def _score(self, where: str, s: dict[str, Any], targets: "_Targets") -> Pulled | None:
        version = str(s.get("updatedAt") or s.get("createdAt") or s.get("timestamp") or _canonical_hash(s))
        when = s.get("updatedAt") or s.get("timestamp")
        at = parse_time(when)

        def bad(reason: str, detail: str) -> Pulled:
            return Pulled("interventions", s["id"], version, at, reason=reason, detail=detail, raw=s)

        if at is None:
            return bad("bad_timestamp", f"updatedAt/timestamp {when!r} is not RFC 3339")
        value_type = SCORE_TYPES.get(s.get("dataType"))
        if value_type is None:
            return bad("unknown_score_type", f"dataType {s.get('dataType')!r} is not one of {sorted(SCORE_TYPES)}")
        event_id, reason, detail = targets.event_of(s)
        if event_id is None:
            return bad(reason, detail)
        annotation = Annotation(record_id=s["id"], version=version, event_id=event_id, occurred_at=when,
                                name=str(s.get("name") or ""), annotator=str(s.get("source") or ""),
                                value_type=value_type, value=_score_value(s, value_type),
                                reviewer_id=s.get("authorUserId") or None, comment=s.get("comment") or None)
        record, reason, detail = to_intervention(annotation, self.config)
        if record is None:
            return bad(reason, detail)
        return Pulled("interventions", s["id"], version, at, record=record)


def _score_value(s: dict[str, Any], value_type: str) -> Any:
    """The score's value as its type reads it, from the v2 (value + stringValue) or v3 (value
    polymorphic) shape; None when it has none."""
    value, text = s.get("value"), s.get("stringValue")
    if value_type == "score":
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if value_type == "boolean":
        if isinstance(value, bool):
            return value
        if text in ("True", "False"):
            return text == "True"
        return bool(value) if value in (0, 1) else None
    if isinstance(text, str):  # v2: CATEGORICAL, CORRECTION, TEXT carry their text in stringValue
        return text
    return value if isinstance(value, str) else None


class _Targets:
    """Which event a score is about: its observation's generation, or a generation under it, or
    (a trace score) the trace's last generation by start time."""

    def __init__(self, files: _Folder, generations: dict[str, dict[str, Any]]) -> None:
        self.files = files
        self.generations = generations
        self.children: dict[str, list[str]] = {}
        self.by_trace: dict[str, list[dict[str, Any]]] = {}
        for obs in files.observations.values():
            parent = obs.get("parentObservationId")
            if parent:
                self.children.setdefault(parent, []).append(obs["id"])
        for gen in generations.values():
            self.by_trace.setdefault(gen.get("traceId") or "", []).append(gen)

    @staticmethod
    def _last(gens: list[dict[str, Any]]) -> str:
        return max(gens, key=lambda g: (parse_time(g.get("startTime")) or _EPOCH, g["id"]))["id"]

    def event_of(self, s: dict[str, Any]) -> tuple[str | None, str, str]:
        """(event id, "", "") or (None, reason, detail)."""
        subject = s.get("subject") if isinstance(s.get("subject"), dict) else {}
        kind = subject.get("kind")
        if kind in ("session", "experiment") or (not subject and not s.get("traceId")):
            return None, "unsupported_target", f"a score on a {kind or 'session or dataset run'}, not on a trace or observation"
        obs_id = s.get("observationId") or (subject.get("id") if kind == "observation" else None)
        trace_id = s.get("traceId") or subject.get("traceId") or (subject.get("id") if kind == "trace" else None)
        if obs_id:
            if obs_id in self.generations:
                return obs_id, "", ""
            if obs_id not in self.files.observations:
                return None, "observation_not_found", f"observation {obs_id} is in none of the files read"
            below = self._generations_below(obs_id)
            if not below:
                return None, "no_event_for_target", f"observation {obs_id} is no event and has no event observation under it"
            return self._last(below), "", ""
        if trace_id not in self.files.traces and trace_id not in self.by_trace:
            return None, "trace_not_found", f"trace {trace_id} is in none of the files read"
        gens = self.by_trace.get(trace_id or "")
        if not gens:
            return None, "no_event_for_target", f"trace {trace_id} has no event observation"
        return self._last(gens), "", ""

    def _generations_below(self, obs_id: str) -> list[dict[str, Any]]:
        out, todo = [], list(self.children.get(obs_id, []))
        while todo:
            child = todo.pop()
            if child in self.generations:
                out.append(self.generations[child])
            todo.extend(self.children.get(child, []))
        return out
