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


def _in_day_order(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ledger entries ordered by the data day of their decision, then as recorded: a verdict on an
    older day's decision never outranks one on a newer day's (re-running an old day appends late)."""
    return [e for _, e in sorted(enumerate(entries), key=lambda ie: (ie[1].get("day") or "", ie[0]))]


def _levels(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for e in _in_day_order(entries):
        if e.get("kind") == "autonomy" and e.get("verdict") in ("approved", "automatic"):
            out[e["scenario"]] = e
    return out


def effective_levels(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per scenario, the ledger entry that sets its autonomy level now: of the approved promotions
    and automatic demotions, the one for the newest decision day (rejections set nothing)."""
    return _levels(read_ledger(settings))


def levels_before(settings: Settings, day: date) -> dict[str, dict[str, Any]]:
    """Per scenario, the ledger entry that set its level in force when `day` was decided: the
    newest one for a decision day before `day` (a decision of day D takes effect from D + 1)."""
    return _levels([e for e in read_ledger(settings) if (e.get("day") or "") < day.isoformat()])


def last_demotions_before(settings: Settings, day: date) -> dict[str, str]:
    """Per scenario, the day (ISO) of its latest automatic demotion decided before `day`."""
    out: dict[str, str] = {}
    for e in _in_day_order(read_ledger(settings)):
        if e.get("kind") == "autonomy" and e.get("verdict") == "automatic" and (e.get("day") or "") < day.isoformat():
            out[e["scenario"]] = e["day"]
    return out


def decided_ids(settings: Settings) -> set[str]:
    """Decision ids that already have a verdict in the ledger."""
    return {e["decision_id"] for e in read_ledger(settings)}
