"""Accounting checks over the store: every record read is stored, dropped as an exact duplicate,
quarantined, or pending (valid, waiting for its day or its event). Reads the analysts' catalog,
which must have been built (`flywheel.catalog.build_catalog`)."""

from __future__ import annotations

from typing import Any

import duckdb

from flywheel.analyst import connect_read_only
from flywheel.config import Settings


def file_accounts(settings: Settings, paths: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows of `ingest.file_reconciliation` (all files, or only `paths`), as dicts."""
    con = connect_read_only(settings)
    try:
        rel = con.sql("SELECT * FROM ingest.file_reconciliation")
        rows = [dict(zip(rel.columns, r)) for r in rel.fetchall()]
    finally:
        con.close()
    if paths is not None:
        wanted = set(paths)
        rows = [r for r in rows if r["path"] in wanted]
    return rows


def totals(settings: Settings) -> dict[str, int]:
    """Store-wide totals: records read, stored, duplicates, quarantined, pending; and files unbalanced."""
    rows = file_accounts(settings)
    out = {key: sum(int(r[key]) for r in rows) for key in ("records_read", "stored", "duplicates", "quarantined", "pending")}
    out["files"] = len(rows)
    out["unbalanced_files"] = sum(1 for r in rows if not r["balanced"])
    return out


def quarantine_by_reason(settings: Settings) -> dict[str, dict[str, int]]:
    """Quarantined records per record kind and reason code."""
    con = connect_read_only(settings)
    try:
        rows = con.sql("SELECT record_kind, reason_code, count(*) FROM ingest.quarantine GROUP BY ALL ORDER BY ALL").fetchall()
    finally:
        con.close()
    out: dict[str, dict[str, int]] = {}
    for kind, code, n in rows:
        out.setdefault(kind, {})[code] = int(n)
    return out
