"""A cheap look at which UTC days a landing file holds, without reading it into the store.

Used by the landing sensor to decide which days to run. It may over-count (a quarantined record's
day is included) and never raises: an unreadable file holds no day. It streams with the readers'
bounds (`readers.decompressed_blocks`, `readers.BoundedLines`), so a gzip bomb or a line without
end costs it no more memory than the sync, and it never opens anything but a regular file (a
named pipe would block it forever).
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
from datetime import date, datetime, timezone
from pathlib import Path

from flywheel.ingest import readers
from flywheel.ingest.readers import Limits, file_format
from flywheel.ingest.validate import parse_timestamp
from flywheel.objectstore import is_remote

_JSON_TS = re.compile(rb'"occurred_at"\s*:\s*"([^"]{10,40})"')
_OTLP_NANOS = re.compile(rb'"(?:startTimeUnixNano|timeUnixNano)"\s*:\s*"?(\d{15,20})')
_OVERLAP = 256  # bytes carried from one block to the next, so that no match is cut in two


def is_regular_file(path: Path) -> bool:
    """Whether `path` is (or links to) a regular file: anything else is never opened here (an
    object on an object store always is one)."""
    if is_remote(path):
        return path.is_file()
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def peek_days(path: Path, folder_kind: str, limits: Limits | None = None) -> set[date]:
    """The UTC dates of the records' `occurred_at` in the file (best effort; nothing for a file
    that is not a regular file)."""
    if not is_regular_file(path):
        return set()
    try:
        return _peek(path, folder_kind, limits)
    except Exception:  # a sensor must not fail on a bad file; ingestion will quarantine it
        return set()


def _peek(path: Path, folder_kind: str, limits: Limits | None) -> set[date]:
    fmt = file_format(folder_kind, path.name)
    if fmt == "parquet":
        readers.open_regular(path).close()
        column = readers.read_parquet_file(path, columns=["occurred_at"]).column(0).to_pylist()
        return _dates(column)
    if fmt == "jsonl":
        return _dates(m.decode("utf-8", "replace") for m in _matches(_JSON_TS, path, limits))
    if fmt == "otlp":
        found = {datetime.fromtimestamp(int(n) / 1e9, tz=timezone.utc).date() for n in _matches(_OTLP_NANOS, path, limits)}
        return found or _protobuf_days(path, limits)
    if fmt == "csv":
        text = io.TextIOWrapper(io.BufferedReader(readers.BlockStream(readers.decompressed_blocks(path, limits)), 1 << 20),
                                encoding="utf-8", errors="replace", newline="")
        rows = csv.DictReader(readers.BoundedLines(text, readers.MAX_RECORD_BYTES))
        return _dates(row.get("occurred_at") for row in rows)
    return set()


def _protobuf_days(path: Path, limits: Limits | None) -> set[date]:
    """The days of an OTLP protobuf file (no JSON field names to find): decoded whole, within the
    size cap the sync reads OTLP files with (`readers.MAX_DOCUMENT_BYTES`)."""
    from flywheel.otlp import parse_otlp

    events, interventions = parse_otlp(readers.read_whole_file(path, limits, readers.MAX_DOCUMENT_BYTES))
    return _dates(r.record.get("occurred_at") for r in events + interventions if isinstance(r.record, dict))


def _matches(pattern: re.Pattern[bytes], path: Path, limits: Limits | None) -> set[bytes]:
    """The distinct first groups of `pattern` over the file, read block by block."""
    found: set[bytes] = set()
    tail = b""
    for block in readers.decompressed_blocks(path, limits):
        data = tail + block
        found.update(pattern.findall(data))
        tail = data[-_OVERLAP:]
    return found


def _dates(values) -> set[date]:
    out: set[date] = set()
    for value in values:
        parsed = parse_timestamp(value) if value is not None else None
        if isinstance(parsed, datetime):
            out.add(parsed.date())
    return out
