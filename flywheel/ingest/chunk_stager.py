"""Stage one chunk of records: the valid rows as a staged Arrow table, the rest as quarantine rows.

`stage_chunk` validates a `batches.Chunk` column-wise (`typed.typed_batch` for JSON Lines records,
most of them already checked by msgspec as they were decoded; `bulk.validate_batch` for CSV, Parquet
and OTLP records) and sends only the
records the fast path could not vouch for through `validate.check_record`, so every
quarantined record gets exactly the per-record reason code and message; the valid rows' stored
form and `record_hash` come from `canonical.finish`, for the whole table at once. It runs in the syncing
process (`staging`) or in a worker process (`parallel`), which is why it has a module of its own:
both import it, neither imports the other for it. `quarantine_row` and `bad_file_row` are the rows
of a file's quarantine piece.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa

from flywheel.ingest.batches import Chunk
from flywheel.ingest.bulk import validate_batch
from flywheel.ingest.canonical import finish
from flywheel.ingest.typed import typed_batch
from flywheel.ingest.validate import Problem, check_record, describe, primary_reason
from flywheel.privacy import pseudonymise, pseudonymise_raw
from flywheel.schemas import STAGED

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def stage_chunk(chunk: Chunk, rel: str, seq: int, quarantine: list[dict[str, Any]], key: bytes,
                 pseudonyms: dict[str, str]) -> pa.Table | None:
    """The chunk's valid rows as a staged table (None if there are none); its rejects go to `quarantine`.

    Runs in this process or in a `parallel` worker."""
    kind, loose = chunk.kind, chunk.loose
    todo = [i for i, p in enumerate(chunk.problems) if p is None]
    records = [chunk.records[i] for i in todo]
    fast = validate_batch(kind, records, loose) if loose else typed_batch(kind, records)
    cols, ok = fast.columns, fast.ok
    rejects = [(i, [p]) for i, p in enumerate(chunk.problems) if p is not None]
    for j, good in enumerate(ok):
        if good:
            continue
        i = todo[j]
        record, problem = chunk.record(i)
        row, problems = (None, [problem]) if problem else check_record(kind, record, loose=loose)
        if row is None:
            rejects.append((i, problems))
            for col in cols.values():  # its cells may hold anything (a number in a text field): not Arrow-typed
                col[j] = None
            continue
        row["occurred_at"] = (row["occurred_at"] - _EPOCH) // _MICROSECOND
        for name, col in cols.items():
            col[j] = row[name]
        ok[j] = True
    rejects.sort(key=lambda item: item[0])
    for i, problems in rejects:
        quarantine.append(quarantine_row(kind, rel, chunk.lines[i], problems, chunk.raw(i), key, chunk.reviewer_col))
    if not any(ok):
        return None
    if kind == "interventions":
        cols["reviewer_id"] = [None if r is None else _pseudonym(r, key, pseudonyms) for r in cols["reviewer_id"]]
    table = _table(kind, cols, [chunk.lines[i] for i in todo], rel, seq)
    return finish(kind, table if all(ok) else table.filter(pa.array(ok, pa.bool_())))


def _pseudonym(value: str, key: bytes, cache: dict[str, str]) -> str:
    found = cache.get(value)
    if found is None:
        found = cache[value] = pseudonymise(value, key)  # type: ignore[assignment]
    return found


def _table(kind: str, out: dict[str, list[Any]], lines: list[int], rel: str, seq: int) -> pa.Table:
    schema = STAGED[kind]
    n = len(lines)
    occurred = pa.array(out["occurred_at"], pa.int64()).cast(schema.field("occurred_at").type)
    arrays: list[pa.Array] = []
    for field in schema:
        name = field.name
        if name == "occurred_at":
            arrays.append(occurred)
        elif name == "event_date":
            if kind == "events":
                arrays.append(occurred.cast(pa.date32()))
            else:
                arrays.append(pa.nulls(n, pa.date32()))
        elif name == "source_file":
            arrays.append(pa.array([rel] * n, pa.string()))
        elif name == "source_line":
            arrays.append(pa.array(lines, pa.int64()))
        elif name == "ingest_seq":
            arrays.append(pa.array([seq] * n, pa.int64()))
        elif name == "record_hash":  # filled in by canonical.finish
            arrays.append(pa.array([""] * n, pa.string()))
        else:
            arrays.append(pa.array(out[name], field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def quarantine_row(kind: str, rel: str, line: int | None, problems: list[Problem], raw: str | None,
                   key: bytes | None = None, reviewer_col: int | None = None) -> dict[str, Any]:
    """One row of a file's quarantine piece; with `key`, the raw text's reviewer ids are replaced by
    their pseudonyms, as in stored interventions (`privacy.pseudonymise_raw`; `reviewer_col`: the
    reviewer_id column of a CSV row)."""
    if key is not None:
        raw = pseudonymise_raw(raw, key, reviewer_col)
    return {"record_kind": kind, "source_file": rel, "source_line": line,
            "reason_code": primary_reason(problems), "reason": describe(problems), "raw": raw}


def bad_file_row(folder_kind: str, rel: str, why: str) -> dict[str, Any]:
    """The one quarantine row of a bad or refused file (nothing else of it is kept); an OTLP
    file's row counts as an event."""
    kind = folder_kind if folder_kind != "otlp" else "events"
    return quarantine_row(kind, rel, None, [Problem("bad_file", why)], None)
