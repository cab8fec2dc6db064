"""The append-only records: the decision log (every decision of every run, with its evidence,
rule, policy version, data window and run) and the approvals ledger (each human's approve or
reject, and each automatic fail-safe demotion). Nothing here is ever rewritten: runs add files,
approvals add lines (under an exclusive lock, fsynced, whole or not at all: a line torn by a full
disk or a killed writer is set aside to a side file, never read as a verdict).

On an object store (`FLYWHEEL_STORE=s3://...`) there is no append: the ledger is the same JSON Lines
object, and an approval rewrites it whole by compare-and-swap (`store.update`: read it with
its ETag, PUT it back with the line added only if the ETag is unchanged, else read again), so two
approvals at once both land, in one order. A PUT replaces the object whole, so no line is torn; the
ledger only grows, so the same bytes (and ETag) never come back to fool the swap.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from flywheel.config import Settings
from flywheel.objectstore import is_remote
from flywheel.store import Layout, exclusive, update, write_parquet_atomic
from flywheel.tables import APPROVALS_LEDGER, DECISION_LOG

log = logging.getLogger(__name__)


def ledger_path(settings: Settings):
    """Path of the approvals ledger (JSON Lines)."""
    return Layout(settings.store).root / APPROVALS_LEDGER


def append_log(settings: Settings, day: date, run_id: str, decisions: pl.DataFrame) -> None:
    """Add this run's decisions of `day` to the decision log (a new file per run and day)."""
    path = Layout(settings.store).root / DECISION_LOG.path / f"day={day.isoformat()}" / f"run={_safe(run_id)}.parquet"
    stamped = decisions.with_columns(pl.lit(run_id).alias("run_id"),
                                     pl.lit(datetime.now(timezone.utc)).alias("decided_at"))
    write_parquet_atomic(stamped.to_arrow(), path)


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)[:80]


def read_ledger(settings: Settings) -> list[dict[str, Any]]:
    """Every approvals-ledger entry, oldest first.

    A last line without its newline is what a writer killed mid-line (or a full disk) leaves: it
    is set aside (see `repair_ledger`) and the rest is read. Any other line that is not a JSON
    object raises ValueError naming the file and the line.
    """
    path = ledger_path(settings)
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        repair_ledger(settings)
        data = path.read_bytes()
    entries = []
    for number, line in enumerate(data.decode("utf-8", errors="replace").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"approvals ledger {path}, line {number}: not a JSON object ({exc}); "
                             "fix or remove that line by hand (every other line is a recorded verdict)") from None
        if not isinstance(entry, dict):
            raise ValueError(f"approvals ledger {path}, line {number}: not a JSON object")
        entries.append(entry)
    return entries


def repair_ledger(settings: Settings) -> Path | None:
    """Set aside a torn last line of the approvals ledger (one without its newline): its bytes are
    appended to a side file `approvals.torn-<UTC time>.jsonl` beside the ledger, then cut off the
    ledger, and a warning names the side file. Returns the side file, or None when nothing was torn.

    A torn line is a verdict whose writing failed, so its command reported an error: it was never
    recorded, and is kept only so that nothing a human typed is lost."""
    path = ledger_path(settings)
    if is_remote(path):
        return None  # written whole by each PUT: nothing is ever torn
    with exclusive(Layout(settings.store).lock("ledger")):
        return _set_aside_torn_tail(path)


def _set_aside_torn_tail(path: Path) -> Path | None:
    """`repair_ledger`'s work; the caller holds the ledger's lock."""
    if not path.exists():
        return None
    with open(path, "r+b") as fh:
        data = fh.read()
        if not data or data.endswith(b"\n"):
            return None
        keep = data.rfind(b"\n") + 1
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        aside = path.with_name(f"{path.stem}.torn-{stamp}.jsonl")
        with open(aside, "ab") as out:
            out.write(data[keep:] + b"\n")
            out.flush()
            os.fsync(out.fileno())
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    log.warning("approvals ledger %s ended in a torn line (a verdict whose writing failed; it was not recorded): "
                "moved to %s; re-issue that verdict if it is still wanted", path, aside)
    return aside


def append_ledger(settings: Settings, entry: dict[str, Any]) -> dict[str, Any]:
    """Append one entry (stamped with `at`) to the approvals ledger; returns it.

    The line is written whole or not at all: if the write or the fsync fails (a full disk), the
    ledger is cut back to its length before and OSError says the verdict was NOT recorded. A torn
    tail left by an earlier writer is set aside first (`repair_ledger`)."""
    path = ledger_path(settings)
    entry = {**entry, "at": datetime.now(timezone.utc).isoformat()}
    if is_remote(path):
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        update(path, lambda old: (old or b"") + line)  # compare-and-swap; OSError: not recorded
        return entry
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(Layout(settings.store).lock("ledger")):
        _set_aside_torn_tail(path)
        data = (json.dumps(entry, sort_keys=True) + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            try:
                written = 0
                while written < len(data):  # unbuffered: nothing is left to flush after a failure
                    written += os.write(fd, data[written:])
                os.fsync(fd)
            except OSError as exc:
                try:
                    os.ftruncate(fd, size)
                    os.fsync(fd)
                except OSError:
                    pass  # the torn tail is set aside by the next read or append
                raise OSError(exc.errno, f"approvals ledger {path}: the verdict on {entry.get('decision_id')} was NOT "
                                         f"recorded ({exc.strerror or exc}); free space and run the command again") from exc
        finally:
            os.close(fd)
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
