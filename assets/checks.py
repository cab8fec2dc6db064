"""Asset checks: one factory turns each Great Expectations suite in expectations/ into a blocking
check spec and its result; and the accounting check (records read = stored + duplicates +
quarantined + pending, per landing file).

Checks are declared on the asset (`check_specs`) and evaluated inside it, because the asset knows
which days it just wrote; a failed ERROR check stops everything downstream in the run.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import dagster as dg
import duckdb
import polars as pl
import pyarrow as pa

from flywheel.catalog import _MANIFEST_COLUMNS, fill
from flywheel.config import Settings
from flywheel.ingest.sync import file_id
from flywheel.quality import validate
from flywheel.reconcile import file_accounts
from flywheel.schemas import DUPLICATES, QUARANTINE, STAGED, STORED
from flywheel.sql import load_sql
from flywheel.store import Layout, write_parquet_atomic


def gx_spec(asset_key: dg.AssetKey, suite: str) -> dg.AssetCheckSpec:
    """The check spec of GX suite `suite` on `asset_key`."""
    return dg.AssetCheckSpec(
        name=f"gx_{suite}", asset=asset_key, blocking=True,
        description=f"Great Expectations suite expectations/{suite}.json (error rows block downstream assets).",
    )


def gx_result(asset_key: dg.AssetKey, suite: str, frame: pl.DataFrame) -> dg.AssetCheckResult:
    """Validate `frame` with suite `suite` and report it as an AssetCheckResult."""
    result = validate(frame, suite)
    severity = dg.AssetCheckSeverity.ERROR if not result.passed else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        check_name=f"gx_{suite}", asset_key=asset_key, passed=result.passed and not result.failed_warnings,
        severity=severity,
        metadata={
            "rows": dg.MetadataValue.int(result.rows),
            "failed_errors": dg.MetadataValue.int(len(result.failed_errors)),
            "failed_warnings": dg.MetadataValue.int(len(result.failed_warnings)),
            "expectations": dg.MetadataValue.md(result.to_markdown()),
        },
    )


def accounting_spec(asset_key: dg.AssetKey) -> dg.AssetCheckSpec:
    """The accounting check spec on `asset_key`."""
    return dg.AssetCheckSpec(
        name="records_accounted_for", asset=asset_key, blocking=True,
        description="For every landing file: records read = stored + exact duplicates + quarantined + pending.",
    )


def accounting_result(asset_key: dg.AssetKey, settings: Settings, paths: list[str]) -> dg.AssetCheckResult:
    """Check that every landing file in `paths` balances.

    Reads only the partitions the files' records can be in (see `run_file_accounts`); if any file
    does not balance there, the whole store's `ingest.file_reconciliation` has the last word."""
    rows = run_file_accounts(settings, paths)
    bad = [r for r in rows if not r["balanced"]]
    if bad:
        rows = file_accounts(settings, paths)
        bad = [r for r in rows if not r["balanced"]]
    table = "| file | read | stored | duplicates | quarantined | pending | balanced |\n|---|---|---|---|---|---|---|\n"
    table += "\n".join(
        f"| {r['path']} | {r['records_read']} | {r['stored']} | {r['duplicates']} | {r['quarantined']} | {r['pending']} | {r['balanced']} |"
        for r in (bad or rows)[:50]
    )
    return dg.AssetCheckResult(
        check_name="records_accounted_for", asset_key=asset_key, passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"files": dg.MetadataValue.int(len(rows)), "unbalanced": dg.MetadataValue.int(len(bad)),
                  "accounts": dg.MetadataValue.md(table)},
    )


_TEMPLATES = {
    "events": STORED["events"], "interventions": STORED["interventions"],
    "staged_events": STAGED["events"], "staged_interventions": STAGED["interventions"],
    "staged_quarantine": QUARANTINE, "quarantine_events": QUARANTINE, "quarantine_interventions": QUARANTINE,
    "duplicates_events": DUPLICATES, "duplicates_interventions": DUPLICATES,
}


def run_file_accounts(settings: Settings, paths: list[str]) -> list[dict]:
    """The `ingest.file_reconciliation` rows of the landing files `paths`, computed from the
    partitions their records can be in rather than from the whole store, so the check's cost
    follows the run, not the history: a file's staged records (its manifest lists their days),
    the events partitions of its event days, and the interventions partitions an intervention of
    its days can be attached to (its event's day: from max_review_lag_days before to one day
    after). Same SQL as the view; a record stored outside those partitions would count as
    pending here, so the totals still balance and the caller confirms any imbalance on the view."""
    layout = Layout(settings.store)
    lag = settings.max_review_lag_days
    files: dict[str, set] = {name: set() for name in _TEMPLATES}
    manifests = []
    for path in sorted(set(paths)):
        manifest = layout.manifest(file_id(path))
        if not manifest.exists():
            continue
        m = json.loads(manifest.read_text(encoding="utf-8"))
        if m.get("path") != path:
            continue
        manifests.append(str(manifest.resolve()))
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
    wanted = "(" + ", ".join(_literal(p) for p in sorted(set(paths))) + ")"
    sources: dict[str, str] = {}
    for name, schema in _TEMPLATES.items():
        found = sorted(str(p.resolve()) for p in files[name] if p.exists())
        if not found:
            template = layout.root / "_schema" / f"{name}.parquet"
            if not template.exists():
                write_parquet_atomic(pa.Table.from_pylist([], schema=schema), template)
            found = [str(template.resolve())]
        listed = "[" + ", ".join(_literal(f) for f in found) + "]"
        sources[name] = (f"(SELECT * FROM read_parquet({listed}, union_by_name = true, hive_partitioning = false) "
                         f"WHERE source_file IN {wanted})")
    listed = "[" + ", ".join(_literal(f) for f in manifests) + "]"
    sources["manifests"] = f"read_json({listed}, columns = {_MANIFEST_COLUMNS})"
    for kind in ("events", "interventions"):
        sources[f"unaccounted_{kind}"] = fill(load_sql("unaccounted_staged").replace("KIND", kind), sources)
    con = duckdb.connect(":memory:")
    try:
        rel = con.sql(fill(load_sql("file_reconciliation_view"), sources))
        return [dict(zip(rel.columns, r)) for r in rel.fetchall()]
    finally:
        con.close()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
