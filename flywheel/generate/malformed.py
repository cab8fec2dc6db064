"""Duplicates and malformed records: planned per file, each with exactly one defect and its reason code.

`plan_kinds` decides, before anything is written, which defect kinds each day's file of each family
gets (about `MALFORMED_SHARE` of the valid records, kinds drawn among those the file's format can
carry, and at least one of every kind per run when some day's format allows it). `assemble` then
builds one file's content from its valid records: exact duplicates (after their original, in the
same file or carried to the next), conflicting duplicates (same id and `occurred_at`, different
content, always after the original), and fresh-id malformed records. Defects a typed frame can hold
(nulls, bad strings, out-of-range numbers, unknown enum values) stay frame rows; the others
(`wrong_type`, `not_utf8`, `invalid_json`, `bad_row`, a removed key) become `Raw` records that the
writers serialise specially.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from flywheel.contracts import EVENT_STATUSES
from flywheel.generate import world as w
from flywheel.generate.columns import SCHEMAS, public
from flywheel.generate.records import tool_calls_json
from flywheel.generate.stamps import BAD_EVENT_IDS, BAD_INTERVENTION_IDS, format_timestamps, ids

NOT_UTF8_MARK = "@@NOT_UTF8@@"  # replaced by invalid bytes when serialised
NOT_UTF8_BYTES = b"\xff\xfe"
NAN_MARK = "@@NAN@@"  # replaced by a bare NaN token in JSON

_COMMON = ("missing_field", "bad_timestamp", "out_of_range", "unknown_enum", "conflicting_duplicate")
_BY_FORMAT = {
    "jsonl": ("not_utf8", "invalid_json", "wrong_type") + _COMMON,
    "csv": ("not_utf8", "bad_row", "wrong_type") + _COMMON,
    "parquet": _COMMON,
}
KINDS: dict[str, tuple[str, ...]] = {
    "events": ("not_utf8", "invalid_json", "bad_row", "missing_field", "wrong_type", "bad_timestamp", "out_of_range",
               "unknown_enum", "conflicting_duplicate"),
    "interventions": ("not_utf8", "invalid_json", "bad_row", "missing_field", "wrong_type", "bad_timestamp",
                      "out_of_range", "unknown_enum", "conflicting_duplicate", "intervention_before_event"),
}
_ID = {"events": "event_id", "interventions": "intervention_id"}
_BAD_IDS = {"events": (BAD_EVENT_IDS, "evt_"), "interventions": (BAD_INTERVENTION_IDS, "iv_")}


@dataclass
class Raw:
    """A record the typed frame cannot hold: `record` (field -> value) and how to damage it when written.

    `defect` is one of: plain (values already wrong-typed), missing_key (drop `field`), not_utf8
    (a string holds NOT_UTF8_MARK), truncate, nan (a number holds NAN_MARK), array, extra_cell,
    missing_cell.
    """

    record: dict[str, Any]
    defect: str
    field: str | None = None
    cut: float = 0.5


@dataclass
class FileContent:
    """What one landing file holds, before serialisation: typed rows and raw records, with sort keys."""

    rows: pl.DataFrame
    keys: np.ndarray
    raws: list[Raw] = field(default_factory=list)
    raw_keys: np.ndarray = field(default_factory=lambda: np.zeros(0))
    exact_duplicates: int = 0
    malformed: dict[str, int] = field(default_factory=dict)


def format_family(fmt: str) -> str:
    """jsonl, csv or parquet for a file format such as 'jsonl.gz'."""
    return "jsonl" if fmt.startswith("jsonl") else fmt


def allowed_kinds(family: str, fmt: str) -> tuple[str, ...]:
    """The defect kinds a file of `family` in format `fmt` can carry."""
    kinds = _BY_FORMAT[format_family(fmt)]
    return kinds + ("intervention_before_event",) if family == "interventions" else kinds


def plan_kinds(seed: int, counts: tuple[int, ...], formats: dict[str, list[str]]) -> dict[str, list[list[str]]]:
    """Per family and day, the list of defect kinds to inject (see the module docstring)."""
    rng = np.random.default_rng([seed, 303])
    plan: dict[str, list[list[str]]] = {}
    for family in ("events", "interventions"):
        share = 1.0 if family == "events" else 0.55  # interventions are about 55% of events
        days: list[list[str]] = []
        for d, n in enumerate(counts):
            kinds = allowed_kinds(family, formats[family][d])
            k = int(rng.poisson(n * share * w.MALFORMED_SHARE))
            days.append([kinds[i] for i in rng.integers(len(kinds), size=k).tolist()])
        for kind in KINDS[family]:
            if any(kind in day for day in days):
                continue
            eligible = [d for d in range(len(counts)) if kind in allowed_kinds(family, formats[family][d])]
            later = [d for d in eligible if d >= 1] or eligible
            if later:
                days[later[int(rng.integers(len(later)))]].append(kind)
        plan[family] = days
    return plan


def assemble(family: str, fmt: str, day: int, last: bool, valid: pl.DataFrame, carried: pl.DataFrame | None,
             kinds: list[str], rng: np.random.Generator, seed: int, day_events: pl.DataFrame | None = None,
             ) -> tuple[FileContent, pl.DataFrame | None]:
    """One file's content from its valid records, and the duplicate rows carried to the next file.

    `valid` holds the file's valid records in order (with internal columns); `carried` the rows
    carried from the previous file; `day_events` the day's valid events (for interventions stamped
    before their event).
    """
    rows = public(valid, family)
    n = rows.height
    parts = [rows]
    keys = [np.arange(n, dtype=float)]
    carry: list[pl.DataFrame] = []
    content = FileContent(rows, np.zeros(0))
    if carried is not None and carried.height:
        parts.append(carried)
        keys.append(rng.uniform(0, n + 1, size=carried.height))
        content.exact_duplicates += int(carried["_dup"].sum())
        content.malformed["conflicting_duplicate"] = int((~carried["_dup"]).sum())
    extra_rows: list[dict[str, Any]] = []
    extra_keys: list[float] = []
    # Exact duplicates.
    if n:
        k = int(rng.binomial(n, w.EXACT_DUPLICATE_SHARE))
        for i in sorted(rng.choice(n, size=k, replace=False).tolist()):
            if last or rng.random() < 0.5:
                parts.append(rows.slice(i, 1))
                keys.append(np.array([rng.uniform(i + 0.01, n + 0.5)]))
                content.exact_duplicates += 1
            else:
                carry.append(rows.slice(i, 1).with_columns(pl.lit(True).alias("_dup")))
    # Malformed records.
    fresh = 0
    id_family, prefix = _BAD_IDS[family]
    fresh_ids = ids(seed, id_family, day, np.arange(len(kinds) + 1), prefix).to_list()
    for kind in kinds:
        if n == 0:
            break
        b = int(rng.integers(n))
        base = rows.row(b, named=True)
        if kind == "conflicting_duplicate":
            row = _conflict(family, base, rng)
            if last or rng.random() < 0.6:
                extra_rows.append(row)
                extra_keys.append(rng.uniform(b + 0.01, n + 0.5))
                content.malformed[kind] = content.malformed.get(kind, 0) + 1
            else:
                frame = pl.DataFrame([row], schema=SCHEMAS[family]).with_columns(pl.lit(False).alias("_dup"))
                carry.append(frame)
            continue
        if kind == "intervention_before_event":
            row = _before_event(base, day_events, rng)
            if row is None:
                continue
        else:
            row = dict(base)
        row[_ID[family]] = fresh_ids[fresh]
        fresh += 1
        made = _damage(family, kind, fmt, row, rng)
        if isinstance(made, Raw):
            content.raws.append(made)
            content.raw_keys = np.append(content.raw_keys, rng.uniform(0, n + 1))
        else:
            extra_rows.append(made)
            extra_keys.append(rng.uniform(0, n + 1))
        content.malformed[kind] = content.malformed.get(kind, 0) + 1
    if extra_rows:
        parts.append(pl.DataFrame(extra_rows, schema=SCHEMAS[family]))
        keys.append(np.array(extra_keys))
    content.rows = pl.concat([p.select(list(SCHEMAS[family])) for p in parts], how="vertical")
    content.keys = np.concatenate(keys)
    carried_out = pl.concat(carry, how="vertical") if carry else None
    return content, carried_out


def _conflict(family: str, base: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A copy of `base` with the same id and occurred_at but different content."""
    row = dict(base)
    u = rng.random()
    if family == "events":
        if row["output_text"] is not None and u < 0.7:
            row["output_text"] = row["output_text"] + (" (regenerated)" if u < 0.35 else "\n\n[draft v2]")
        else:
            others = [s for s in EVENT_STATUSES if s != row["status"]]
            row["status"] = others[int(rng.integers(len(others)))]
        return row
    if u < 0.4:
        row["comment"] = (row["comment"] or "") + " (corrected by supervisor)"
    elif u < 0.7:
        row["review_seconds"] = round((row["review_seconds"] or 0.0) + 37.5, 1)
    else:
        row["action"] = "rejected" if row["action"] != "rejected" else "escalated"
    return row


def _before_event(base: dict[str, Any], day_events: pl.DataFrame | None, rng: np.random.Generator) -> dict[str, Any] | None:
    """An intervention on a valid event of the day, stamped 1.5 to 12 hours before that event."""
    if day_events is None or day_events.height == 0:
        return None
    e = int(rng.integers(day_events.height))
    event_id, t = day_events["event_id"][e], int(day_events["_t"][e])
    back = int(rng.uniform(1.5, 12.0) * 3_600_000)
    stamp = format_timestamps(np.array([t - back]), np.array([0]), np.array([True]), np.array([False]))[0]
    row = dict(base)
    row.update(event_id=event_id, occurred_at=stamp, action="accepted", final_text=None, reason_code=None)
    return row


def _damage(family: str, kind: str, fmt: str, row: dict[str, Any], rng: np.random.Generator) -> dict[str, Any] | Raw:
    """Apply one defect of `kind` to `row` (already carrying a fresh id)."""
    fam = format_family(fmt)
    pick = int(rng.integers(1 << 30))
    if kind == "intervention_before_event":
        return row
    if kind == "missing_field":
        if family == "interventions" and pick % 5 == 0:
            row.update(action="edited", final_text=None)  # edited without final_text
            return row
        fields = (("event_id", "occurred_at", "scenario", "model", "autonomy_level", "status") if family == "events"
                  else ("intervention_id", "event_id", "occurred_at", "action"))
        name = fields[pick % len(fields)]
        if fam == "jsonl" and pick % 2:
            return Raw(row, "missing_key", name)
        row[name] = None if pick % 3 else ""
        return row
    if kind == "bad_timestamp":
        good = row["occurred_at"]
        local = good[:19]
        variants = (local, f"{local[8:10]}/{local[5:7]}/{local[:4]} {local[11:16]}", "yesterday " + local[11:16],
                    str(1_700_000_000 + pick % 100_000_000), local[:11] + "25:61:00Z")
        row["occurred_at"] = variants[pick % len(variants)]
        return row
    if kind == "out_of_range":
        if family == "interventions":
            row["review_seconds"] = -round(1 + (pick % 900) / 10, 1)
        else:
            name, value = ((("confidence", 1.7), ("confidence", -0.2), ("latency_ms", -5.0), ("input_tokens", -3),
                            ("output_tokens", -1)))[pick % 5]
            row[name] = value
        return row
    if kind == "unknown_enum":
        if family == "interventions":
            row["action"] = ("approved", "skipped", "auto_accepted")[pick % 3]
        elif pick % 3 == 2 and row["tool_calls"]:
            calls = [dict(c) for c in row["tool_calls"]]
            calls[-1]["status"] = "blocked"
            row["tool_calls"] = calls
            row["tool_calls_json"] = tool_calls_json(pl.Series("tool_calls", [calls], dtype=SCHEMAS["events"]["tool_calls"]))[0]
        elif pick % 3 == 1:
            row["autonomy_level"] = ("full", "manual", "semi_auto")[pick % 7 % 3]
        else:
            row["status"] = ("crashed", "success", "cancelled")[pick % 7 % 3]
        return row
    if kind == "wrong_type":
        if family == "interventions":
            row["review_seconds"] = ("2 min", "about 45s")[pick % 2] if fam == "csv" else ("2 min", "45", True)[pick % 3]
        elif fam == "csv":
            name, value = (("confidence", "high"), ("input_tokens", "12.5"), ("latency_ms", "1.2k"),
                           ("output_tokens", "n/a"))[pick % 4]
            row[name] = value
        else:
            name, value = (("confidence", "high"), ("confidence", "0.83"), ("input_tokens", 12.5), ("input_tokens", "12"),
                           ("output_tokens", "340"), ("latency_ms", "fast"), ("confidence", True))[pick % 7]
            row[name] = value
        return Raw(row, "plain")
    if kind == "not_utf8":
        name = ("input_text", "output_text") if family == "events" else ("comment", "reviewer_id")
        target = name[pick % 2]
        text = row.get(target) or "ok"
        cut = pick % (len(text) + 1)
        row[target] = text[:cut] + NOT_UTF8_MARK + text[cut:]
        return Raw(row, "not_utf8", target)
    if kind == "invalid_json":
        variant = pick % 10
        if variant < 7:
            return Raw(row, "truncate", cut=0.2 + 0.6 * rng.random())
        if variant < 9:
            target = "confidence" if family == "events" else "review_seconds"
            row[target] = NAN_MARK
            return Raw(row, "nan", target)
        return Raw(row, "array")
    if kind == "bad_row":
        return Raw(row, "extra_cell" if pick % 2 else "missing_cell")
    raise ValueError(f"unknown defect kind {kind!r}")

