"""A block of JSON Lines decoded and checked by DuckDB: the engine path of the landing sync.

`stage_block` takes one block of whole lines (`batches.line_blocks`) and stages it the way
`chunk_stager.stage_chunk` stages the same lines read by `batches.jsonl_chunks`, with the same
rows, hashes, quarantine rows and line numbers, but without a Python object per record: DuckDB
reads the lines as one Arrow column, checks the JSON (`json_valid`), takes every contract field
out of it at once (`json_extract` with a list of paths) and checks the scalar fields (type of each
JSON value, enums, number ranges, required fields) as column expressions. Python is left with
what the contract defines by Python's JSON library: the JSON-valued fields (tool_calls,
decision_path, attributes) are decoded from DuckDB's text of that value alone and written back with
sorted keys, and `record_hash` (`bulk`'s column functions do both, so the normalised values are
the ones `validate_record` gives).

A line is "plain" when DuckDB and orjson are certain to read it the same way; every other line goes
through the existing per-record path (`jsonl_chunks` line by line, then `stage_chunk`), which names
its problems. Not plain: a line that does not start with `{` and end with `}` (blank lines, arrays,
leading blanks), over the record limit, not valid UTF-8, not JSON for DuckDB (lone surrogate
escapes included), with a trailing comma (DuckDB's reader accepts and drops it, orjson refuses the
line: matched on the raw text, so a string that merely looks like one goes the slow way, which costs
time, never a difference), with a top-level key twice or one the contract does not name (orjson
keeps the last copy, DuckDB the first; unknown keys are folded into attributes by the per-record
code), and any record a column check refuses. NaN, Infinity and numbers beyond a double, which
DuckDB reads and orjson does not, fail the number checks (finite, within 2^53) or orjson's decoding
of the JSON-valued field they sit in. A block holding a line cut short while streaming is left to
the per-record path whole.

Equality with the per-record path is held by `tests/test_ingest_fastpath.py` (generated days with
every kind of bad record, hypothesis inputs, hand-made corner files) and `tests/test_engine_lines.py`.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from flywheel.contracts import CONTRACTS, Field
from flywheel.ingest import bulk
from flywheel.ingest.batches import Chunk, add_lines
from flywheel.ingest.chunk_stager import cached_pseudonym, stage_chunk, staged_table

# A trailing comma, which DuckDB's JSON reader accepts and drops and orjson refuses.
_TRAILING_COMMA = r",\s*[\]}]"
_JSONISH = ("json", "object", "tool_calls")
_MAX_SAFE = 2 ** 53


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_TYPES = {"string": "VARCHAR", "enum": "VARCHAR", "timestamp": "VARCHAR", "number": "DOUBLE", "integer": "BIGINT",
          "json": "JSON", "object": "JSON", "tool_calls": "JSON"}


def _field_sql(i: int, f: Field) -> tuple[str, str]:
    """(value expression, ok expression) of field `f`, the i-th path (1-based): `ty[i]` is the JSON
    type of its value (NULL when absent), `r.name` its value read as `_TYPES` says (a JSON-valued
    field as its JSON text)."""
    ty, value = f"ty[{i}]", f'r."{f.name}"'
    absent = f"({ty} IS NULL OR {ty} = 'NULL')"
    if f.kind == "string":
        ok = f"({absent} OR {ty} = 'VARCHAR')"
        if f.required:
            ok = f"({ty} = 'VARCHAR' AND {value} <> '')"
        return f"CASE WHEN {ty} = 'VARCHAR' THEN nullif({value}, '') END", ok
    if f.kind == "enum":
        allowed = ", ".join(_quote(e) for e in f.enum)
        ok = f"({ty} = 'VARCHAR' AND {value} IN ({allowed}))"
        if not f.required:
            ok = f"({ok} OR {absent})"
        return f"CASE WHEN {ty} = 'VARCHAR' THEN {value} END", ok
    if f.kind == "timestamp":
        return f"CASE WHEN {ty} = 'VARCHAR' THEN {value} END", f"({ty} = 'VARCHAR')"
    if f.kind in ("number", "integer"):
        types = "('BIGINT', 'UBIGINT')" if f.kind == "integer" else "('BIGINT', 'UBIGINT', 'DOUBLE')"
        checks = [f"{ty} IN {types}", f"{value} IS NOT NULL", f"abs({value}) < {_MAX_SAFE}"]
        if f.kind == "number":
            checks.append(f"isfinite({value})")
        if f.minimum is not None:
            checks.append(f"{value} >= {f.minimum!r}")
        if f.maximum is not None:
            checks.append(f"{value} <= {f.maximum!r}")
        present = " AND ".join(checks)
        ok = f"(({present}) OR {absent})" if not f.required else f"({present})"
        return f"CASE WHEN {ty} IN {types} THEN {value} END", ok
    # JSON-valued fields: the value's JSON text, decoded by orjson in Python.
    return f"CAST({value} AS VARCHAR)", "true"


def _query(kind: str) -> tuple[str, tuple[Field, ...]]:
    fields = CONTRACTS[kind]
    paths = "[" + ", ".join(_quote("$." + f.name) for f in fields) + "]"
    struct = _quote(orjson.dumps({f.name: _TYPES[f.kind] for f in fields}).decode())
    values, oks = [], []
    for i, f in enumerate(fields, 1):
        value, ok = _field_sql(i, f)
        values.append(f"{value} AS \"{f.name}\"")
        oks.append(ok)
    extra = ""
    if kind == "interventions":  # an edit needs its final text (validate._finish)
        extra = " AND NOT (r.action = 'edited' AND nullif(r.final_text, '') IS NULL)"
    # Every key is a contract field's, once: as many keys as fields present (a duplicate or unknown key adds one).
    sql = f"""
        WITH m AS MATERIALIZED (
            SELECT i, len(json_keys(t)) AS keys, json_type(t, {paths}) AS ty, from_json(t, {struct}) AS r
            FROM valid
        )
        SELECT i, (keys = list_count(ty) AND {' AND '.join(oks)}){extra} AS plain,
               {', '.join(values)}
        FROM m
        ORDER BY i
    """
    return sql, fields


_QUERIES = {kind: _query(kind) for kind in CONTRACTS}


# Run first, on its own: DuckDB may evaluate a query's conditions in any order, and json_keys or
# json_type raise on a line that is not JSON. `decode` refuses bytes that are not UTF-8.
_VALID = f"""
    SELECT i, t FROM (SELECT i, try(decode(b)) AS t FROM lines WHERE candidate)
    WHERE t IS NOT NULL AND json_valid(t) AND NOT regexp_matches(t, {_quote(_TRAILING_COMMA)})
"""


def _candidates(block: bytes, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, candidate) of the block's lines (ends without the newline and one `\\r`): a
    candidate starts with `{`, ends with `}` and is within `limit` bytes."""
    buf = np.frombuffer(block, np.uint8)
    nl = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], nl + 1)).astype(np.int64)
    ends = np.concatenate((nl, [len(block)])).astype(np.int64)
    ends[(ends > starts) & (buf[np.maximum(ends - 1, 0)] == 0x0D)] -= 1  # a line's one \r is dropped, as add_lines does
    lengths = ends - starts
    cand = (lengths >= 2) & (lengths <= limit)
    where = np.flatnonzero(cand)
    cand[where] = (buf[starts[where]] == 0x7B) & (buf[ends[where] - 1] == 0x7D)
    return starts, ends, cand


def stage_block(kind: str, first: int, block: bytes, long: frozenset[int], rel: str, seq: int, key: bytes,
                pseudonyms: dict[str, str], limit: int) -> tuple[int, pa.Table | None, list[dict[str, Any]]] | None:
    """(records read, staged table or None, quarantine rows) of one block of lines numbered from
    `first`, or None when the block is left to the per-record path whole (see the module docstring)."""
    if long:
        return None
    if not block:
        return 0, None, []
    starts, ends, cand = _candidates(block, limit)
    plain_idx = np.empty(0, np.int64)
    fast_table = None
    if cand.any():
        # Every line as one binary column over the block's bytes (no copy); DuckDB reads the candidates.
        lines = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(starts), [None, pa.py_buffer(np.append(starts, len(block))),
                                                 pa.py_buffer(block)])
        con = duckdb.connect(config={"threads": 1})
        try:
            con.register("lines", pa.table({"i": np.arange(len(starts)), "b": lines, "candidate": cand}))
            con.register("valid", con.sql(_VALID).to_arrow_table())
            sql, fields = _QUERIES[kind]
            result = con.sql(sql).to_arrow_table()
        finally:
            con.close()
        got = result.filter(pc.fill_null(result["plain"], False))
        fast_table, kept = _stage_plain(kind, fields, got, first, rel, seq, key, pseudonyms)
        plain_idx = got["i"].to_numpy()[kept]
    # Every other line through the per-record path, in order.
    rest = np.ones(len(starts), bool)
    rest[plain_idx] = False
    chunk = Chunk(kind, False)
    for i in np.flatnonzero(rest):
        add_lines(chunk, first + int(i), [block[starts[i]:ends[i]]], long, limit)
    quarantine: list[dict[str, Any]] = []
    slow_table = stage_chunk(chunk, rel, seq, quarantine, key, pseudonyms) if len(chunk) else None
    tables = [t for t in (fast_table, slow_table) if t is not None and t.num_rows]
    if not tables:
        table = None
    elif len(tables) == 1:
        table = tables[0]
    else:
        both = pa.concat_tables(tables)
        table = both.take(pc.sort_indices(both["source_line"]))
    return len(plain_idx) + len(chunk), table, quarantine


def _stage_plain(kind: str, fields: tuple[Field, ...], got: pa.Table, first: int, rel: str, seq: int, key: bytes,
                 pseudonyms: dict[str, str]) -> tuple[pa.Table | None, np.ndarray]:
    """The staged table of the plain rows DuckDB returned, and which of them it holds (a JSON-valued
    field orjson cannot read, or a timestamp the column check refuses, sends a row back)."""
    n = got.num_rows
    bad = bytearray(n)
    columns: dict[str, list[Any]] = {}
    ts_text: list[Any] = []
    for f in fields:
        vals = got[f.name].to_pylist()
        if f.kind == "timestamp":
            columns[f.name], ts_text = bulk._timestamps(f, vals, bad)
        elif f.kind in _JSONISH:
            columns[f.name] = bulk._CHECKS[f.kind](f, _decoded(vals, bad), False, bad)
        else:
            columns[f.name] = vals
    if kind == "events":
        bulk._finish_events([{}] * n, columns, bad)
    columns["record_hash"] = bulk._hashes(fields, columns, ts_text, bad)
    keep = np.frombuffer(bytes(bad), np.uint8) == 0
    if kind == "interventions":
        columns["reviewer_id"] = [None if r is None else cached_pseudonym(r, key, pseudonyms) for r in columns["reviewer_id"]]
    if n == 0:
        return None, keep
    lines = (got["i"].to_numpy() + first).tolist()
    table = staged_table(kind, columns, lines, rel, seq)
    return (table if keep.all() else table.filter(pa.array(keep))), keep


def _decoded(texts: list[Any], bad: bytearray) -> list[Any]:
    """orjson's value of each JSON text (None stays None); a text orjson refuses marks its row."""
    loads, Error = orjson.loads, orjson.JSONDecodeError
    if None not in texts:
        try:
            return list(map(loads, texts))  # the common case: every row has the field, every text reads
        except Error:
            pass
    out: list[Any] = []
    for i, text in enumerate(texts):
        if text is None:
            out.append(None)
            continue
        try:
            out.append(loads(text))
        except Error:
            bad[i] = 1
            out.append(None)
    return out
