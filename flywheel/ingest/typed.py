"""Decode JSON Lines records straight into checked structs: the common shape at C speed.

A record in the contract's common shape (only contract fields; each of its type, within its range or
enum; the required ones present and non-empty; tool calls of their three keys only) is decoded by msgspec into a struct built from
`contracts.CONTRACTS`: parsing and most checks happen in one C pass, and no dict is built for the
record. `decoder(kind)` decodes one line, raising `DECODE_ERRORS` for anything else (a line that is
not JSON, an unknown key, a wrong type, a missing field); the caller then reads that line as before
(orjson, `bulk` / `validate.check_record`), so every quarantine reason still comes from the
per-record reference. `typed_batch` turns a chunk's structs into the same normalised columns
`bulk.validate_batch` gives, leaving what msgspec cannot check (timestamps, `final_text` for
`edited`, JSON values orjson cannot write) to the reference too.

msgspec and orjson accept the same JSON text and decode it to the same values (both strict RFC 8259,
UTF-8 checked, a key given twice keeps its last value), except (1) integers beyond 64 bits, which
msgspec keeps exact and orjson turns into floats: orjson refuses to write them back, so such a record
goes to the reference; (2) nesting: orjson reads at most 1,024 levels and writes at most 254, msgspec
reads deeper: a value orjson cannot write sends its record to the reference, which reads the line
again with orjson (`batches.Chunk.record`). msgspec checks UTF-8 and number ranges only where it reads
a value, so no struct skips a key (unknown keys are refused, in tool calls too). `tests/test_ingest_typed.py` holds the paths equal.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import msgspec
import orjson

from flywheel.contracts import CONTRACTS, TOOL_STATUSES, UNVERSIONED, Field
from flywheel.ingest.bulk import Batch, timestamp_micros, validate_batch

DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_INT_LIMIT = 2**63  # what the reference accepts: a 64-bit integer


class ToolCall(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One tool call of the three contract keys. A call with any other key goes to the reference
    (which ignores the key): msgspec would skip that key's value unread, so invalid UTF-8 or a number
    beyond a double's range there, which orjson refuses, would pass."""

    name: Annotated[str, msgspec.Meta(min_length=1)]
    status: Literal[TOOL_STATUSES]  # type: ignore[valid-type]
    arguments: Any = None


def _type(f: Field) -> Any:
    """The msgspec type of a present, non-null value of `f` that the reference accepts as it is."""
    if f.kind == "string":
        return Annotated[str, msgspec.Meta(min_length=1)] if f.required else str
    if f.kind == "timestamp":
        return str  # checked column-wise afterwards (bulk.timestamp_micros)
    if f.kind == "enum":
        return Literal[f.enum]
    if f.kind in ("number", "integer"):
        bounds: dict[str, Any] = {}
        if f.minimum is not None:
            bounds["ge"] = f.minimum
        if f.maximum is not None:
            bounds["le"] = f.maximum
        if f.kind == "integer":  # the reference's bounds: a 64-bit integer within the field's range
            low = -_INT_LIMIT if f.minimum is None else max(-_INT_LIMIT, math.ceil(f.minimum))
            high = _INT_LIMIT - 1 if f.maximum is None else min(_INT_LIMIT - 1, math.floor(f.maximum))
            return Annotated[int, msgspec.Meta(ge=low, le=high)]
        return Annotated[float, msgspec.Meta(**bounds)] if bounds else float
    if f.kind == "json":
        return dict[str, Any] | str
    if f.kind == "object":
        return dict[str, Any]
    if f.kind == "tool_calls":
        return list[ToolCall]
    raise ValueError(f"unknown field kind {f.kind!r}")  # pragma: no cover


def _struct(kind: str) -> type[msgspec.Struct]:
    fields: list[Any] = []
    for f in CONTRACTS[kind]:
        t = _type(f)
        fields.append((f.name, t) if f.required else (f.name, t | None, None))
    return msgspec.defstruct(f"{kind.title()}Record", fields, kw_only=True, forbid_unknown_fields=True, gc=False)


STRUCTS = {kind: _struct(kind) for kind in CONTRACTS}
_DECODERS = {kind: msgspec.json.Decoder(struct) for kind, struct in STRUCTS.items()}


def decoder(kind: str) -> Any:
    """`decode(line: bytes) -> struct` for records of `kind` in the common shape; raises DECODE_ERRORS."""
    return _DECODERS[kind].decode


def typed_batch(kind: str, records: list[Any]) -> Batch:
    """`bulk.validate_batch`'s columns for `records`: structs decoded by `decoder(kind)`, and dicts
    (the lines it refused that orjson read), which go through `bulk.validate_batch`."""
    n = len(records)
    struct = STRUCTS[kind]
    dicts = [i for i, rec in enumerate(records) if type(rec) is not struct]
    if len(dicts) == n:
        return validate_batch(kind, records, False)
    fields = CONTRACTS[kind]
    bad = bytearray(n)
    empty = (None,) * len(fields)
    astuple = msgspec.structs.astuple
    rows = []
    for i, rec in enumerate(records):
        if type(rec) is struct:
            rows.append(astuple(rec))
        else:
            bad[i] = 1
            rows.append(empty)
    by_field = list(zip(*rows)) if rows else [() for _ in fields]
    columns: dict[str, list[Any]] = {}
    for f, column in zip(fields, by_field):
        vals = list(column)
        if f.kind == "timestamp":
            vals = timestamp_micros(f, vals, bad)
        elif f.kind in ("string", "json") and not f.required and "" in vals:
            vals = [None if v == "" else v for v in vals]  # "" is absent, as null is
        if f.kind in ("json", "object"):
            vals = _rendered(vals, bad, _json_text)
        elif f.kind == "tool_calls":
            vals = _rendered(vals, bad, _calls_text)
        columns[f.name] = vals
    if kind == "events":
        if None in columns["prompt_version"]:
            columns["prompt_version"] = [UNVERSIONED if v is None else v for v in columns["prompt_version"]]
    else:
        final = columns["final_text"]
        for i, action in enumerate(columns["action"]):
            if action == "edited" and final[i] is None:
                bad[i] = 1
    ok = [not b for b in bad]
    if dicts:
        _merge(columns, ok, dicts, validate_batch(kind, [records[i] for i in dicts], False))
    return Batch(columns, ok)


def _merge(columns: dict[str, list[Any]], ok: list[bool], where: list[int], other: Batch) -> None:
    """Put `other`'s rows (of the records at positions `where`) into `columns` and `ok`."""
    for name, col in columns.items():
        theirs = other.columns[name]
        for k, i in enumerate(where):
            col[i] = theirs[k]
    for k, i in enumerate(where):
        ok[i] = other.ok[k]


def _json_text(value: Any) -> str:
    """orjson's text of a JSON value (keys in the record's order), as the reference writes it."""
    return orjson.dumps(value).decode()


def _calls_text(calls: list[ToolCall]) -> list[dict[str, Any]]:
    """Tool calls as the reference stores them: name, status, arguments as orjson's text."""
    return [{"name": c.name, "status": c.status, "arguments": None if c.arguments is None else _json_text(c.arguments)}
            for c in calls]


def _rendered(vals: list[Any], bad: bytearray, render: Any) -> list[Any]:
    """`render` of each value (None stays None); a value orjson cannot write (an integer beyond 64
    bits, nesting over 254 levels) marks its record for the reference."""
    out: list[Any] = []
    for i, v in enumerate(vals):
        if v is None:
            out.append(None)
            continue
        try:
            out.append(render(v))
        except (orjson.JSONEncodeError, RecursionError):
            bad[i] = 1
            out.append(None)
    return out
