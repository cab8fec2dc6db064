"""Stage one landing file record by record: the reference the fast path is held equal to.

This is the sync's original staging: every record read by `readers.read_file` and checked by
`validate.validate_record`, all rows held in memory and written at the end. It is slow (~35 µs a
record) and memory-hungry, and is kept only as the definition of the right answer:
`sync_landing(..., reference=True)` uses it, and `tests/test_ingest_fastpath.py` asserts that
`staging.stage_file` writes exactly the same staged rows, quarantine and manifests.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from flywheel.ingest.readers import BadFile, Limits, file_format, read_file
from flywheel.ingest.validate import Problem, describe, primary_reason, validate_record
from flywheel.privacy import hash_key, pseudonymise, pseudonymise_raw
from flywheel.schemas import QUARANTINE, STAGED
from flywheel.store import Layout, write_parquet_atomic


def stage_file_reference(layout: Layout, folder_kind: str, rel: str, path: Path, fid: str, seq: int,
                         refusal: str | None, limits: Limits | None = None) -> tuple[dict[str, Any], Any]:
    """Stage the file at `path` record by record; returns (manifest, FileResult) like `staging.stage_file`."""
    from flywheel.ingest.sync import FileResult

    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    quarantine: list[dict[str, Any]] = []
    read = 0
    key = hash_key(layout.root)
    bad: str | None = refusal
    if bad is None:
        try:
            for rec in read_file(path, folder_kind, limits):
                read += 1
                problems = [rec.problem] if rec.problem else []
                row = None
                if not problems:
                    row, problems = validate_record(rec.kind, rec.record, loose=rec.loose)
                if row is None:
                    quarantine.append(quarantine_row(rec.kind, rel, rec.line, problems, rec.raw, key, rec.reviewer_col))
                    continue
                if rec.kind == "interventions" and row.get("reviewer_id") is not None:
                    row["reviewer_id"] = pseudonymise(row["reviewer_id"], key)
                row.update(source_file=rel, source_line=rec.line, ingest_seq=seq)
                rows[rec.kind].append(row)
        except BadFile as exc:
            bad = str(exc)
    if bad is not None:
        # Nothing from a bad file is kept but the file itself: one quarantine row, counted as one record.
        rows.clear()
        read = 1
        kind = folder_kind if folder_kind != "otlp" else "events"
        quarantine = [quarantine_row(kind, rel, None, [Problem("bad_file", bad)], None)]
    days: dict[str, list[str]] = {"events": [], "interventions": []}
    for kind, kind_rows in rows.items():
        days[kind] = _write_staged(layout, kind, kind_rows, fid)
    if quarantine:
        write_parquet_atomic(pa.Table.from_pylist(quarantine, schema=QUARANTINE), layout.staged_quarantine(fid))
    staged = {kind: len(kind_rows) for kind, kind_rows in rows.items()}
    manifest = {
        "path": rel, "file_id": fid, "seq": seq, "folder": folder_kind,
        "format": file_format(folder_kind, path.name), "read": read,
        "staged": staged, "quarantined": len(quarantine), "bad_file": bad,
        "refused": refusal, "event_days": days["events"], "intervention_days": days["interventions"],
    }
    return manifest, FileResult(rel, "new", read, staged, len(quarantine))


def quarantine_row(kind: str, rel: str, line: int | None, problems: list[Problem], raw: str | None,
                   key: bytes | None = None, reviewer_col: int | None = None) -> dict[str, Any]:
    """One row of a file's quarantine piece; with `key`, the raw text's reviewer ids are replaced by
    their pseudonyms, as in stored interventions (`privacy.pseudonymise_raw`; `reviewer_col`: the
    reviewer_id column of a CSV row)."""
    if key is not None:
        raw = pseudonymise_raw(raw, key, reviewer_col)
    return {"record_kind": kind, "source_file": rel, "source_line": line,
            "reason_code": primary_reason(problems), "reason": describe(problems), "raw": raw}


def _write_staged(layout: Layout, kind: str, rows: list[dict[str, Any]], fid: str) -> list[str]:
    table = pa.Table.from_pylist(rows, schema=STAGED[kind])
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    if kind == "events":
        frame = frame.with_columns(pl.col("occurred_at").dt.date().alias("event_date"))
        day_col = "event_date"
    else:
        frame = frame.with_columns(pl.col("occurred_at").dt.date().alias("_day"))
        day_col = "_day"
    written: list[str] = []
    for (day,), part in frame.partition_by(day_col, as_dict=True, maintain_order=True).items():
        if day_col == "_day":
            part = part.drop("_day")
        write_parquet_atomic(part.to_arrow().cast(STAGED[kind]), layout.staged(kind, day, fid))
        written.append(day.isoformat())
    return sorted(written)
