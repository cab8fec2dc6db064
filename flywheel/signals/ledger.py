"""The append-only records: the decision log (every decision of every run, with its evidence,
rule, policy version, data window and run) and the approvals ledger (each human's approve or
reject, and each automatic fail-safe demotion). Nothing here is ever rewritten: runs add files,
approvals add lines (under an exclusive lock, fsynced).
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timezone
from typing import Any

import polars as pl

from flywheel.config import Settings
from flywheel.store import Layout, exclusive, write_parquet_atomic

LOG_DIR = "decisions/log"


def ledger_path(settings: Settings):
    """Path of the approvals ledger (JSON Lines)."""
    return Layout(settings.store).root / "decisions" / "approvals.jsonl"


def append_log(settings: Settings, day: date, run_id: str, decisions: pl.DataFrame) -> None:
    """Add this run's decisions of `day` to the decision log (a new file per run and day)."""
    path = Layout(settings.store).root / LOG_DIR / f"day={day.isoformat()}" / f"run={_safe(run_id)}.parquet"
    stamped = decisions.with_columns(pl.lit(run_id).alias("run_id"),
                                     pl.lit(datetime.now(timezone.utc)).alias("decided_at"))
    write_parquet_atomic(stamped.to_arrow(), path)


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)[:80]


def read_ledger(settings: Settings) -> list[dict[str, Any]]:
    """Every approvals-ledger entry, oldest first."""
    path = ledger_path(settings)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_ledger(settings: Settings, entry: dict[str, Any]) -> dict[str, Any]:
    """Append one entry (stamped with `at`) to the approvals ledger; returns it."""
    path = ledger_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {**entry, "at": datetime.now(timezone.utc).isoformat()}
    with exclusive(Layout(settings.store).lock("ledger")):
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    return entry


def effective_levels(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per scenario, the ledger entry that sets its autonomy level now: the latest approved
    promotion or automatic demotion (rejections set nothing)."""
    out: dict[str, dict[str, Any]] = {}
    for e in read_ledger(settings):
        if e.get("kind") == "autonomy" and e.get("verdict") in ("approved", "automatic"):
            out[e["scenario"]] = e
    return out


def decided_ids(settings: Settings) -> set[str]:
    """Decision ids that already have a verdict in the ledger."""
    return {e["decision_id"] for e in read_ledger(settings)}
