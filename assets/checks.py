"""Every asset check of the nightly job, as a spec and a result per kind; what each checks is
computed in flywheel/:

* `gx_*`: one factory turns each Great Expectations suite in flywheel/expectations/ into a blocking
  check (`flywheel.quality`, run on the partitions just written);
* `records_accounted_for`: records read = stored + duplicates + quarantined + pending, per landing
  file (`flywheel.reconcile`);
* `rates_within_bounds`, `counts_reconcile`: the outcome marts' invariants
  (`flywheel.outcomes.invariants`).

Checks are declared on the asset (`check_specs`) and evaluated inside it, because the asset knows
which days it just wrote; a failed ERROR check stops everything downstream in the run. (Records
that break their contract are not checks: the landing sync quarantines them, flywheel.ingest.validate.)
"""

from __future__ import annotations

from datetime import date

import dagster as dg
import polars as pl

from flywheel.config import Settings
from flywheel.outcomes.invariants import count_mismatches, rates_out_of_bounds
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


def mart_specs(asset_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The check specs of the daily outcome mart's invariants on `asset_key`."""
    return [
        dg.AssetCheckSpec("rates_within_bounds", asset=asset_key, blocking=True,
                          description="Every rate and interval bound lies in [0, 1], and each rate within its interval."),
        dg.AssetCheckSpec("counts_reconcile", asset=asset_key, blocking=True,
                          description="Per day: stored events = resolved outcomes = events counted by the mart."),
    ]


def mart_results(asset_key: dg.AssetKey, settings: Settings, frame: pl.DataFrame,
                 days: list[date]) -> list[dg.AssetCheckResult]:
    """The results of `mart_specs` for the daily mart rows `frame` of `days`."""
    bad = rates_out_of_bounds(frame)
    mismatches = count_mismatches(settings, days)
    return [
        dg.AssetCheckResult(check_name="rates_within_bounds", asset_key=asset_key, passed=not bad,
                            metadata={"violations": dg.MetadataValue.json(bad)}),
        dg.AssetCheckResult(check_name="counts_reconcile", asset_key=asset_key, passed=not mismatches,
                            metadata={"mismatched_days": dg.MetadataValue.json(mismatches)}),
    ]
