"""The `pull` section of the sources file: how a pulled source's records become contract records.

For each pulled source (langfuse today; phoenix and mlflow plug in the same way) the section says
how far before the high-water mark a pull reads again (`overlap`), how far back annotations are
read again (`annotation_lookback`), which of its record types are AI events (`event_types`),
which annotators count as humans, where the event fields come
from (ordered candidates, like the `otlp` section's), and which annotation means which
intervention action (`interventions`: rules by annotation name, mapping labels, booleans, score
ranges and corrections to accepted / edited / rejected / escalated / reverted). `pull_config`
validates the section with pydantic (`SourcesError` naming every problem by its place in the
file); `to_intervention` turns one normalised `Annotation` into a contract intervention, or into a
named quarantine reason. docs/sources.md documents every key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from flywheel.contracts import ACTIONS, AUTONOMY_LEVELS
from flywheel.sources import Sources, SourcesError, describe_errors, sources_from_env

Action = Literal["accepted", "edited", "rejected", "escalated", "reverted"]
assert set(ACTIONS) == set(Action.__args__)  # type: ignore[attr-defined]

# The event fields a pulled source maps through candidates, in contract order.
PULL_FIELDS: tuple[str, ...] = ("scenario", "model", "prompt_version", "confidence", "autonomy_level")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def parse_duration(value: Any) -> timedelta:
    """A duration from `30m`, `1h`, `14d` (or a number of seconds); ValueError otherwise."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    m = _DURATION.match(value) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"a duration such as 30m, 1h or 14d, got {value!r}")
    return timedelta(seconds=float(m.group(1)) * _UNIT[m.group(2)])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldCandidate(_Strict):
    """One place an event field may come from: exactly one of `path`, `template`, `default`.

    `path` is a dotted path into the source's record (`observation.metadata.scenario`,
    `trace.name`); `template` fills `{path}` placeholders and has a value only when every
    placeholder has one (`{observation.promptName}:{observation.promptVersion}`)."""

    path: str | None = None
    template: str | None = None
    default: str | float | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "FieldCandidate":
        given = [k for k in ("path", "template", "default") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a candidate has exactly one of path, template, default (got {', '.join(given) or 'none'})")
        if self.template is not None and not _PLACEHOLDER.search(self.template):
            raise ValueError(f"a template names at least one {{path}}, got {self.template!r}")
        return self


class ScoreRange(_Strict):
    """Scores in [min, max) mean `action` (a bound left out is open)."""

    min: float | None = None
    max: float | None = None
    action: Action

    @model_validator(mode="after")
    def _ordered(self) -> "ScoreRange":
        if self.min is not None and self.max is not None and not self.min < self.max:
            raise ValueError(f"min must be below max, got [{self.min}, {self.max})")
        return self

    def holds(self, score: float) -> bool:
        return (self.min is None or score >= self.min) and (self.max is None or score < self.max)


class VerdictRule(_Strict):
    """What the annotations named `name` mean (`name` left out: any name).

    Tried in this order: a correction (the corrected output) is `correction` (edited, with the
    text as final_text); a boolean goes through `booleans`; a label through `labels` (exact, then
    lower-cased); a numeric score through `scores` (the first range that holds)."""

    name: str | None = None
    labels: dict[str, Action] = {}
    booleans: dict[bool, Action] = {}
    scores: list[ScoreRange] = []
    correction: Literal["edited"] | None = None

    @model_validator(mode="after")
    def _says_something(self) -> "VerdictRule":
        if not (self.labels or self.booleans or self.scores or self.correction):
            raise ValueError("a rule maps at least one of labels, booleans, scores, correction")
        return self


class PullFields(_Strict):
    """Per event field, its candidates in order (first with a value wins)."""

    scenario: list[FieldCandidate]
    model: list[FieldCandidate]
    prompt_version: list[FieldCandidate]
    confidence: list[FieldCandidate]
    autonomy_level: list[FieldCandidate]

    @field_validator("autonomy_level")
    @classmethod
    def _level(cls, v: list[FieldCandidate]) -> list[FieldCandidate]:
        for c in v:
            if c.default is not None and c.default not in AUTONOMY_LEVELS:
                raise ValueError(f"the default must be one of {', '.join(AUTONOMY_LEVELS)}, got {c.default!r}")
        return v

    @field_validator("confidence")
    @classmethod
    def _confidence(cls, v: list[FieldCandidate]) -> list[FieldCandidate]:
        for c in v:
            if c.default is not None and (isinstance(c.default, str) or not 0.0 <= c.default <= 1.0):
                raise ValueError(f"the default must be a number in [0, 1], got {c.default!r}")
        return v


class PullSource(_Strict):
    """One pulled source's section (`pull.<source>`)."""

    overlap: timedelta = timedelta(hours=1)
    annotation_lookback: timedelta = timedelta(days=14)
    folder: Path | None = None  # a file-based source (langfuse): where its JSON files are; `--from` overrides
    event_types: list[str]
    annotators: list[str]
    fields: PullFields
    interventions: list[VerdictRule]

    @field_validator("overlap", "annotation_lookback", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> timedelta:
        return parse_duration(v)


def pull_config(source: str, sources: Sources | None = None, model: type[PullSource] = PullSource) -> PullSource:
    """The validated `pull.<source>` section of `sources` (default: the file FLYWHEEL_SOURCES names,
    merged over the shipped default), as `model` (a source with keys of its own subclasses
    PullSource). Raises SourcesError naming every problem by its place."""
    sources = sources if sources is not None else sources_from_env()
    section = (sources.pull or {}).get(source)
    if section is None:
        raise SourcesError(f"the sources file has no pull.{source} section (docs/sources.md)")
    try:
        return model.model_validate(section)
    except ValidationError as exc:
        text = describe_errors(exc).replace("\n  ", f"\n  pull.{source}.").replace("  ", f"  pull.{source}.", 1)
        raise SourcesError(f"the sources file's pull.{source} section is not valid:\n{text}") from None


def lookup(record: dict[str, Any], path: str) -> Any:
    """The value at dotted `path` in `record` (nested dicts), or None."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _present(value: Any) -> bool:
    return value is not None and value != "" and not (isinstance(value, float) and math.isnan(value))


def candidate_value(record: dict[str, Any], candidate: FieldCandidate) -> Any:
    """The candidate's value for `record` (a dict of the source's objects by name), or None."""
    if candidate.default is not None:
        return candidate.default
    if candidate.path is not None:
        value = lookup(record, candidate.path)
        return value if _present(value) else None
    values = {}
    for path in _PLACEHOLDER.findall(candidate.template or ""):
        value = lookup(record, path)
        if not _present(value) or isinstance(value, (dict, list)):
            return None
        values[path] = str(value)
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], candidate.template or "")


def mapped_fields(record: dict[str, Any], fields: PullFields) -> dict[str, Any]:
    """The mapped event fields that have a value (the first candidate with one, per field)."""
    out: dict[str, Any] = {}
    for name in PULL_FIELDS:
        for candidate in getattr(fields, name):
            value = candidate_value(record, candidate)
            if value is not None:
                out[name] = value
                break
    return out


@dataclass(frozen=True)
class Annotation:
    """One annotation (a score, a label, a correction) as every pulled source gives it.

    `value_type` is `label`, `score`, `boolean`, `correction` or `text`; `value` is the label
    (str), the score (float), the boolean, the corrected output (str) or the text; None when the
    annotation carries no result."""

    record_id: str
    version: str
    event_id: str
    occurred_at: str
    name: str
    annotator: str
    value_type: str
    value: Any
    reviewer_id: str | None = None
    comment: str | None = None


def to_intervention(a: Annotation, source: PullSource) -> tuple[dict[str, Any] | None, str, str]:
    """(intervention, "", "") for an annotation the rules map, else (None, reason, detail).

    Reasons: `not_human` (its annotator is not in `annotators`), `no_rule` (no rule for its name),
    `annotation_without_result`, `unknown_label`, `score_out_of_ranges`, `unmapped_value` (a
    value type its rule does not map). The intervention id is `<record id>@<version>`, so an
    annotation changed later is a new intervention whose later occurred_at wins the outcome."""
    if a.annotator not in source.annotators:
        return None, "not_human", f"annotator {a.annotator!r} is not one of {source.annotators}"
    rule = next((r for r in source.interventions if r.name is None or r.name == a.name), None)
    if rule is None:
        return None, "no_rule", f"no interventions rule for the annotation name {a.name!r}"
    if a.value is None or a.value == "":
        return None, "annotation_without_result", f"annotation {a.name!r} has no {a.value_type} value"
    final_text = None
    action: str | None
    if a.value_type == "correction":
        action, final_text = rule.correction, a.value
    elif a.value_type == "boolean":
        action = rule.booleans.get(bool(a.value))
    elif a.value_type == "label":
        action = rule.labels.get(a.value)
        if action is None:
            action = {k.lower(): v for k, v in rule.labels.items()}.get(str(a.value).lower())
        if action is None and rule.labels:
            return None, "unknown_label", f"label {a.value!r} of {a.name!r} is not one of {sorted(rule.labels)}"
    elif a.value_type == "score":
        action = next((r.action for r in rule.scores if r.holds(float(a.value))), None)
        if action is None and rule.scores:
            return None, "score_out_of_ranges", f"score {a.value!r} of {a.name!r} is in no range of its rule"
    else:
        action = None
    if action is None:
        return None, "unmapped_value", f"the rule for {a.name!r} maps no {a.value_type} value"
    out: dict[str, Any] = {"intervention_id": f"{a.record_id}@{a.version}", "event_id": a.event_id,
                           "occurred_at": a.occurred_at, "action": action}
    if final_text is not None:
        out["final_text"] = final_text
    if a.reviewer_id:
        out["reviewer_id"] = a.reviewer_id
    if a.comment:
        out["comment"] = a.comment
    return out, "", ""


def as_number(value: Any) -> Any:
    """A number sent as text (metadata, tags and span attributes often are strings) as a float;
    anything else as it is (the contract's validator judges it)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def nest_dotted(flat: dict[str, Any]) -> dict[str, Any]:
    """Flat dotted keys as nested dicts (`gen_ai.request.model` -> gen_ai -> request -> model), so
    a field candidate's dotted path reaches them; a key that is both a value and another key's
    prefix keeps the value."""
    out: dict[str, Any] = {}
    for key in sorted(flat, key=lambda k: (k.count("."), k)):
        node, parts = out, key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node.setdefault(parts[-1], flat[key])
    return out
