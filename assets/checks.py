"""Asset checks: one factory turns each Great Expectations suite in flywheel/expectations/ into a blocking
check spec and its result; and the accounting check (records read = stored + duplicates +
quarantined + pending, per landing file).

Checks are declared on the asset (`check_specs`) and evaluated inside it, because the asset knows
which days it just wrote; a failed ERROR check stops everything downstream in the run.
"""

from __future__ import annotations

import dagster as dg
import polars as pl

from flywheel.config import Settings
from flywheel.quality import validate
from flywheel.reconcile import checked_file_accounts


def gx_spec(asset_key: dg.AssetKey, suite: str) -> dg.AssetCheckSpec:
    """The check spec of GX suite `suite` on `asset_key`."""
    return dg.AssetCheckSpec(
        name=f"gx_{suite}", asset=asset_key, blocking=True,
        description=f"Great Expectations suite flywheel/expectations/{suite}.json (error rows block downstream assets).",
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

    Reads only the partitions the files' records can be in; if any file does not balance there,
    the whole store's `ingest.file_reconciliation` has the last word (`reconcile.checked_file_accounts`)."""
    rows = checked_file_accounts(settings, paths)
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
