"""A cheap look at which UTC days a landing file holds, without reading it into the store.

Used by the landing sensor to decide which days to run. It may over-count (a quarantined record's
day is included) and never raises: an unreadable file holds no day.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from datetime import date, datetime, timezone
from pathlib import Path

from flywheel.ingest.readers import file_format
from flywheel.ingest.validate import parse_timestamp

_JSON_TS = re.compile(rb'"occurred_at"\s*:\s*"([^"]{10,40})"')
_OTLP_NANOS = re.compile(rb'"(?:startTimeUnixNano|timeUnixNano)"\s*:\s*"?(\d{15,20})')


def peek_days(path: Path, folder_kind: str) -> set[date]:
    """The UTC dates of the records' `occurred_at` in the file (best effort)."""
    try:
        return _peek(path, folder_kind)
    except Exception:  # a sensor must not fail on a bad file; ingestion will quarantine it
        return set()


def _peek(path: Path, folder_kind: str) -> set[date]:
    fmt = file_format(folder_kind, path.name)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        column = pq.read_table(path, columns=["occurred_at"]).column(0).to_pylist()
        return _dates(column)
    data = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        data = gzip.decompress(data)
    if fmt == "jsonl":
        return _dates(m.decode("utf-8", "replace") for m in set(_JSON_TS.findall(data)))
    if fmt == "otlp":
        return {datetime.fromtimestamp(int(n) / 1e9, tz=timezone.utc).date() for n in set(_OTLP_NANOS.findall(data))}
    if fmt == "csv":
        rows = csv.DictReader(io.StringIO(data.decode("utf-8", "replace"), newline=""))
        return _dates(row.get("occurred_at") for row in rows)
    return set()


def _dates(values) -> set[date]:
    out: set[date] = set()
    for value in values:
        parsed = parse_timestamp(value) if value is not None else None
        if isinstance(parsed, datetime):
            out.add(parsed.date())
    return out
