"""Accounting checks over the store: every record read is stored, dropped as an exact duplicate,
quarantined, or pending (valid, waiting for its day or its event).

`file_accounts`, `totals` and `quarantine_by_reason` read the analysts' catalog, which must have
been built (`flywheel.catalog.build_catalog`). `run_file_accounts` computes the same per-file rows
for a run's landing files from only the partitions their records can be in (what the nightly
accounting check reads), and `checked_file_accounts` confirms any imbalance it finds on the
whole store.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

from flywheel.analyst import connect_read_only
from flywheel.catalog import SOURCE_SCHEMAS, unaccounted_sources
from flywheel.config import Settings
from flywheel.ingest.manifest import MANIFEST_COLUMNS, file_id
from flywheel.objectstore import register, url
from flywheel.sql import load_sql, render, slots
from flywheel.store import Layout


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


def _scoped_source(name: str) -> str:
    """Source `name` of `run_file_accounts`: the files listed in parameter `$<name>`, only the rows
    of the landing files `$paths` (`name` is a key of SOURCE_SCHEMAS, chosen by code)."""
    return (f"(SELECT * FROM read_parquet(${name}, union_by_name = true, hive_partitioning = false) "
            "WHERE list_contains($paths, source_file))")


def run_file_accounts(settings: Settings, paths: list[str]) -> list[dict[str, Any]]:
    """The `ingest.file_reconciliation` rows of the landing files `paths`, computed from the
    partitions their records can be in rather than from the whole store, so the check's cost
    follows the run, not the history: a file's staged records (its manifest lists their days),
    the events partitions of its event days, and the interventions partitions an intervention of
    its days can be attached to (its event's day: from max_review_lag_days before to one day
    after). Same SQL as the view; a record stored outside those partitions would count as
    pending here, so the totals still balance and the caller confirms any imbalance on the view
    (`checked_file_accounts`). A path with no manifest has no row."""
    layout = Layout(settings.store)
    lag = settings.max_review_lag_days
    files: dict[str, set[Path]] = {name: set() for name in SOURCE_SCHEMAS}
    manifests = []
    for path in sorted(set(paths)):
        manifest = layout.manifest(file_id(path))
        if not manifest.exists():
            continue
        m = json.loads(manifest.read_text(encoding="utf-8"))
        if m.get("path") != path:
            continue
        manifests.append(url(manifest))
        fid = m.get("file_id") or file_id(path)
        files["staged_quarantine"].add(layout.staged_quarantine(fid))
        for d in map(date.fromisoformat, m.get("event_days") or []):
            files["staged_events"].add(layout.staged("events", d, fid))
            for name in ("events", "duplicates_events", "quarantine_events"):
                files[name].add(layout.table(name.replace("_events", "/events"), d))
        for d in map(date.fromisoformat, m.get("intervention_days") or []):
            files["staged_interventions"].add(layout.staged("interventions", d, fid))
            for k in range(-lag, 2):
                for name in ("interventions", "duplicates_interventions", "quarantine_interventions"):
                    files[name].add(layout.table(name.replace("_interventions", "/interventions"), d + timedelta(days=k)))
    if not manifests:
        return []
    params: dict[str, Any] = {"paths": sorted(set(paths)), "manifests": manifests}
    sources = {"manifests": f"read_json($manifests, columns = {MANIFEST_COLUMNS})"}
    for name, schema in SOURCE_SCHEMAS.items():
        found = sorted(url(p) for p in files[name] if p.exists())
        params[name] = found or [url(layout.empty_table(name, schema))]
        sources[name] = _scoped_source(name)
    sources.update(unaccounted_sources(sources))
    template = load_sql("file_reconciliation_view")
    sql = render(template, {name: sources[name] for name in slots(template) if name in sources})
    used = set(re.findall(r"\$(\w+)", sql))
    con = duckdb.connect(":memory:")
    register(con, layout.root)
    try:
        rel = con.sql(sql, params={k: v for k, v in params.items() if k in used})
        return [dict(zip(rel.columns, r)) for r in rel.fetchall()]
    finally:
        con.close()


def checked_file_accounts(settings: Settings, paths: list[str]) -> list[dict[str, Any]]:
    """`run_file_accounts` of `paths`; if any file does not balance there, the whole store's
    `ingest.file_reconciliation` rows of `paths` instead (the view has the last word)."""
    rows = run_file_accounts(settings, paths)
    if any(not r["balanced"] for r in rows):
        rows = file_accounts(settings, paths)
    return rows
