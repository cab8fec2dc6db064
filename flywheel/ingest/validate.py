"""Check one incoming record against its contract and normalise it into a stored row.

A record is a dict as it came from JSON Lines, CSV, Parquet or an OTLP span. `validate_record`
returns either the normalised row (timestamps as UTC datetimes, JSON-ish fields as JSON text in
their stored form, `prompt_version` defaulted, `record_hash`) or the list of problems, each tagged
with a reason code from `contracts.REASONS`; `check_record` is the same check without the stored
form (`canonical.finish` gives it to a whole table at once, as the sync does). In `loose` mode (CSV
and Parquet, where every cell may be text) numbers and JSON are decoded from strings; in strict mode
(JSON) a string where a number belongs is wrong.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from flywheel.contracts import CONTRACTS, REASONS, TOOL_STATUSES, UNVERSIONED, Field
from flywheel.ingest.canonical import finish_row

_TS = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_REASON_ORDER = {code: i for i, code in enumerate(REASONS)}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a record."""

    code: str
    message: str


def primary_reason(problems: list[Problem]) -> str:
    """The reason code that names a rejected record: the first in `contracts.REASONS` order."""
    return min((p.code for p in problems), key=_REASON_ORDER.__getitem__)


def describe(problems: list[Problem]) -> str:
    """All problems as one human-readable sentence."""
    return "; ".join(p.message for p in problems)


def parse_timestamp(value: Any) -> datetime | str:
    """An RFC 3339 string (offset or Z required) or aware datetime as a UTC datetime, else an error text."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return f"timestamp {value.isoformat()} has no offset"
        return value.astimezone(timezone.utc)
    if not isinstance(value, str):
        return f"timestamp must be a string, got {type(value).__name__}"
    m = _TS.match(value.strip())
    if not m:
        return f"timestamp {value[:60]!r} is not RFC 3339 with an offset or Z"
    day, clock, frac, offset = m.groups()
    frac = (frac or "")[:7]  # Python parses at most microseconds
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(f"{day}T{clock}{frac}{offset}").astimezone(timezone.utc)
    except (ValueError, OverflowError) as exc:  # OverflowError: e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        return f"timestamp {value[:60]!r} is not a valid date: {exc}"


def _json_text(value: Any) -> str:
    """JSON text of a value, keys in the record's order (`canonical.finish` renders the stored form)."""
    return orjson.dumps(value).decode()


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _NOT_JSON


_NOT_JSON = object()


def _check_number(f: Field, value: Any, loose: bool, problems: list[Problem]) -> float | int | None:
    if isinstance(value, bool):
        problems.append(Problem("wrong_type", f"{f.name} must be a number, got a boolean"))
        return None
    if isinstance(value, str):
        if not loose:
            problems.append(Problem("wrong_type", f"{f.name} must be a number, got the string {value[:40]!r}"))
            return None
        try:
            value = float(value) if f.kind == "number" or not value.strip().lstrip("+-").isdigit() else int(value)
        except ValueError:
            problems.append(Problem("wrong_type", f"{f.name} must be a number, got {value[:40]!r}"))
            return None
    if not isinstance(value, (int, float)):
        problems.append(Problem("wrong_type", f"{f.name} must be a number, got {type(value).__name__}"))
        return None
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(Problem("out_of_range", f"{f.name} is {value}, not a finite number"))
        return None
    if f.kind == "integer":
        if isinstance(value, float):
            if not value.is_integer():
                problems.append(Problem("wrong_type", f"{f.name} must be a whole number, got {value}"))
                return None
            value = int(value)
        if not -2**63 <= value < 2**63:  # stored as a 64-bit integer
            problems.append(Problem("out_of_range", f"{f.name} is {value}, beyond a 64-bit integer"))
            return None
    if f.minimum is not None and value < f.minimum:
        problems.append(Problem("out_of_range", f"{f.name} is {value}, below its minimum {f.minimum:g}"))
        return None
    if f.maximum is not None and value > f.maximum:
        problems.append(Problem("out_of_range", f"{f.name} is {value}, above its maximum {f.maximum:g}"))
        return None
    return float(value) if f.kind == "number" else int(value)


def _check_tool_calls(value: Any, loose: bool, problems: list[Problem]) -> list[dict[str, Any]] | None:
    if isinstance(value, str) and loose:
        if value.strip() == "":
            return None
        value = _loads(value)
    if not isinstance(value, list):
        problems.append(Problem("wrong_type", "tool_calls must be a list of {name, status, arguments}"))
        return None
    calls: list[dict[str, Any]] = []
    for i, call in enumerate(value):
        if not isinstance(call, dict):
            problems.append(Problem("wrong_type", f"tool_calls[{i}] must be an object"))
            continue
        name, status = call.get("name"), call.get("status")
        if not isinstance(name, str) or not name:
            problems.append(Problem("missing_field", f"tool_calls[{i}].name is missing"))
            continue
        if not isinstance(status, str) or not status:
            problems.append(Problem("missing_field", f"tool_calls[{i}].status is missing"))
            continue
        if status not in TOOL_STATUSES:
            problems.append(Problem("unknown_enum", f"tool_calls[{i}].status {status[:40]!r} is not one of {', '.join(TOOL_STATUSES)}"))
            continue
        args = call.get("arguments")
        if isinstance(args, str) and loose:
            parsed = _loads(args)
            args = args if parsed is _NOT_JSON else parsed
        calls.append({"name": name, "status": status, "arguments": None if args is None else _json_text(args)})
    return calls


def _check_field(f: Field, value: Any, loose: bool, problems: list[Problem]) -> Any:
    """The normalised value of one present, non-null field (None after recording a problem)."""
    kind = f.kind
    if kind == "string":
        if isinstance(value, str):
            return value
        if loose and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        problems.append(Problem("wrong_type", f"{f.name} must be a string, got {type(value).__name__}"))
        return None
    if kind == "timestamp":
        parsed = parse_timestamp(value)
        if isinstance(parsed, str):
            code = "wrong_type" if not isinstance(value, (str, datetime)) else "bad_timestamp"
            problems.append(Problem(code, f"{f.name}: {parsed}"))
            return None
        return parsed
    if kind in ("number", "integer"):
        return _check_number(f, value, loose, problems)
    if kind == "enum":
        if not isinstance(value, str):
            problems.append(Problem("wrong_type", f"{f.name} must be a string, got {type(value).__name__}"))
            return None
        if value not in f.enum:
            problems.append(Problem("unknown_enum", f"{f.name} {value[:40]!r} is not one of {', '.join(f.enum)}"))
            return None
        return value
    if kind == "json":
        if isinstance(value, str) and loose:
            parsed = _loads(value)
            if isinstance(parsed, dict):
                value = parsed
        if isinstance(value, (dict, str)):
            return _json_text(value)
        problems.append(Problem("wrong_type", f"{f.name} must be a JSON object or a string, got {type(value).__name__}"))
        return None
    if kind == "object":
        if isinstance(value, str) and loose:
            value = _loads(value)
        if isinstance(value, dict):
            return value
        problems.append(Problem("wrong_type", f"{f.name} must be a JSON object"))
        return None
    if kind == "tool_calls":
        return _check_tool_calls(value, loose, problems)
    raise ValueError(f"unknown field kind {kind!r}")  # pragma: no cover


def _absent(value: Any) -> bool:
    return value is None or value == ""


def validate_record(kind: str, record: Any, loose: bool = False) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Check a record of `kind` ('events' or 'interventions') against its contract.

    Returns (row, []) when it is valid, where row holds every contract field normalised, in its
    stored form, plus `record_hash` (`canonical.finish_row`), or (None, problems).
    Top-level fields the contract does not name are kept inside `attributes` (events) and
    otherwise ignored.
    """
    row, problems = check_record(kind, record, loose)
    return (None, problems) if row is None else (finish_row(kind, row), [])


def check_record(kind: str, record: Any, loose: bool = False) -> tuple[dict[str, Any] | None, list[Problem]]:
    """`validate_record` without the stored form: JSON-valued fields as orjson's text (keys in the
    record's order), no `record_hash`; what the sync's per-record path uses (`canonical.finish`
    then renders a whole table at once)."""
    if not isinstance(record, dict):
        return None, [Problem("invalid_json", f"a record must be a JSON object, got {type(record).__name__}")]
    fields = CONTRACTS[kind]
    problems: list[Problem] = []
    row: dict[str, Any] = {}
    try:
        for f in fields:
            value = record.get(f.name)
            if _absent(value) and not (f.kind == "object" and isinstance(value, dict)):
                if f.required:
                    problems.append(Problem("missing_field", f"required field {f.name} is missing"))
                row[f.name] = None
                continue
            row[f.name] = _check_field(f, value, loose, problems)
        return _finish(kind, record, row, problems)
    except (orjson.JSONEncodeError, RecursionError) as exc:
        return None, [_unwritable(exc)]


def _unwritable(exc: Exception) -> Problem:
    """The problem of a JSON value orjson cannot write: nested over 254 levels, or (from Parquet or an
    OTLP file) a value JSON has no form for, such as a decimal, bytes or an integer beyond 64 bits."""
    if isinstance(exc, RecursionError) or "recursion" in str(exc).lower():
        return Problem("invalid_json", "a JSON value is nested too deeply to store (over 254 levels)")
    return Problem("invalid_json", f"a value cannot be stored as JSON: {exc}")


def _finish(kind: str, record: dict, row: dict[str, Any], problems: list[Problem]) -> tuple[dict[str, Any] | None, list[Problem]]:
    if kind == "events":
        if row.get("prompt_version") is None and not any(p.message.startswith("prompt_version") for p in problems):
            row["prompt_version"] = UNVERSIONED
        extra = {k: v for k, v in record.items() if k not in _NAMES[kind]}
        if extra:
            attrs = dict(row.get("attributes") or {})
            for k, v in extra.items():
                attrs.setdefault(k, v)
            row["attributes"] = attrs
        if row.get("attributes") is not None:
            row["attributes"] = _json_text(row["attributes"])
    else:
        if row.get("action") == "edited" and row.get("final_text") is None and "final_text" not in _problem_fields(problems):
            problems.append(Problem("missing_field", "final_text is required when action is edited"))
    if problems:
        return None, problems
    return row, []


_NAMES = {kind: {f.name for f in fields} for kind, fields in CONTRACTS.items()}


def _problem_fields(problems: list[Problem]) -> set[str]:
    return {p.message.split(" ")[0] for p in problems}

