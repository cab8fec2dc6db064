"""The stored form of a staged table's JSON-valued fields and its `record_hash`, computed by DuckDB.

Every staged table, whichever path validated its rows (`bulk`, or the per-record `validate`), goes
through `finish` before it is written:

- JSON-valued fields (`decision_path`, `attributes`, each tool call's `arguments`) are stored as
  DuckDB writes them: minified, keys in the order the record gave them, numbers as DuckDB prints
  them (`json(text)`). The validators hand in any JSON text of the value (orjson's, keys in record
  order); `finish` re-renders it, so the same value is stored as the same text by every path.
- `record_hash` is a digest of the stored row's contract fields (the timestamp as UTC
  microseconds): DuckDB's 64-bit `hash` of the row, as 16 hex digits, computed for a whole table at
  once (DuckDB hashes an empty list as NULL: an empty `tool_calls` list is hashed apart, `_hash_sql`).
  Equal hashes mean exact duplicates (a false match needs a 64-bit collision between copies of
  one id). The hash is a fast test only: two copies whose hashes differ are compared field by field
  (`same_content`, JSON fields as values, key order aside) before a copy is called a conflict, so
  rows staged by earlier versions (a 32-digit blake2b of orjson's sorted-key text) and a DuckDB whose
  `hash` changes give the same verdicts as before, only more comparisons.

Store versions before this one wrote JSON-valued fields with sorted keys; their rows are left as they
are (nothing needs rewriting: `same_content` makes the verdicts key-order blind).
"""

from __future__ import annotations

import threading
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from flywheel.contracts import CONTRACTS
from flywheel.schemas import STAGED

# The JSON-valued fields (JSON text columns), and what `finish` renders: those and the tool calls.
_JSON_FIELDS = {kind: tuple(f.name for f in fields if f.kind in ("json", "object")) for kind, fields in CONTRACTS.items()}
_RENDERED = {kind: (*_JSON_FIELDS[kind], *(f.name for f in fields if f.kind == "tool_calls"))
             for kind, fields in CONTRACTS.items()}
_local = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect(":memory:", config={"threads": 1})
    return con


# DuckDB's `hash` gives an empty list the hash of NULL, so a row's hash is xor-ed with this when its list
# field (tool_calls) holds an empty list: tool_calls [] and no tool_calls hash apart (any other row's hash
# is as before).
_EMPTY_LIST = 0x9E3779B97F4A7C15


def _hash_sql(kind: str) -> str:
    parts = []
    for f in CONTRACTS[kind]:
        value = "epoch_us(occurred_at)" if f.kind == "timestamp" else f'"{f.name}"'
        parts.append(f'"{f.name}" := {value}')
    digest = f"hash(struct_pack({', '.join(parts)}))"
    lists = [f.name for f in CONTRACTS[kind] if f.kind == "tool_calls"]
    assert len(lists) <= 1, lists  # a second list field needs a constant of its own (xor twice cancels)
    for name in lists:
        digest = f'xor({digest}, CASE WHEN len("{name}") = 0 THEN {_EMPTY_LIST}::UBIGINT ELSE 0::UBIGINT END)'
    return f"lpad(to_hex({digest}), 16, '0')"


def _finish_sql(kind: str) -> str:
    """The rendered JSON fields and the row's hash, over a table named `t`."""
    json_cols = [f'json("{name}")::VARCHAR AS "{name}"' for name in _JSON_FIELDS[kind]]
    json_cols += [f'list_transform("{name}", lambda c: struct_pack(name := c.name, status := c.status, '
                  f'arguments := json(c.arguments)::VARCHAR)) AS "{name}"'
                  for name in _RENDERED[kind] if name not in _JSON_FIELDS[kind]]
    rendered = f"SELECT * REPLACE ({', '.join(json_cols)}) FROM t" if json_cols else "SELECT * FROM t"
    names = [f'"{name}"' for name in _RENDERED[kind]]
    return f"SELECT {', '.join(names + [_hash_sql(kind) + ' AS record_hash'])} FROM ({rendered})"


_SQL = {kind: _finish_sql(kind) for kind in CONTRACTS}


def finish(kind: str, table: pa.Table) -> pa.Table:
    """`table` (a staged table of `kind`, `record_hash` of any value) with its JSON-valued fields in
    their stored form and `record_hash` filled in; same schema, same rows, same order."""
    if table.num_rows == 0:
        return table
    con = _connection()
    con.register("t", table)
    try:
        got = con.sql(_SQL[kind]).to_arrow_table()
    finally:
        con.unregister("t")
    for name in got.column_names:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), got[name].cast(table.schema.field(i).type))
    return table


def finish_row(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """One normalised row (as `validate.check_record` gives it, `occurred_at` a datetime) in its
    stored form, `record_hash` included (`finish` of a one-row table)."""
    # the staged schema, less the columns only a sync fills in
    schema = pa.schema([f for f in STAGED[kind] if f.name in row or f.name == "record_hash"])
    table = pa.Table.from_pylist([{**row, "record_hash": ""}], schema=schema)
    return {**row, **finish(kind, table).select([*_RENDERED[kind], "record_hash"]).to_pylist()[0]}


def _value(kind: str, name: str, value: Any) -> Any:
    """A field's value as `same_content` compares it: JSON text as its value (sorted-key text, so that
    1 and 1.0 stay apart), the rest as stored."""
    if value is None:
        return None
    if name in _JSON_FIELDS[kind]:
        return _canonical_json(value)
    if name in _RENDERED[kind]:  # the tool calls
        return [(c["name"], c["status"], None if c["arguments"] is None else _canonical_json(c["arguments"]))
                for c in value]
    return value


def _canonical_json(text: str) -> Any:
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):  # beyond orjson (a number over 64 bits): as written
        return text


def same_content(kind: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two stored rows of `kind` hold the same record: every contract field equal, JSON
    fields compared as values (key order and number spelling aside)."""
    return all(_value(kind, f.name, a.get(f.name)) == _value(kind, f.name, b.get(f.name)) for f in CONTRACTS[kind])
