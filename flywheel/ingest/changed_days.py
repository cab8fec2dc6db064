"""The event days whose inputs a landing sync changed, recorded in the store until they are rebuilt.

A sync changes the inputs of event day D when it stages events dated D (a new or changed events
file; a changed file's old days too), or interventions that `build_interventions(D)` joins: ones
dated inside D's intervention window whose event is stored in D (and, for a changed
interventions file, D where its old interventions are stored). `file_changed_days` finds those
days for one staged file, reading only `event_id` columns, newest candidate day first, and
stopping once every event id is found, so a night's reviews of yesterday's events read a day or
two; an intervention whose event is not stored (it may never arrive) marks no day: its event's
file marks the day when it lands. `mark` records the days in `<store>/rebuild.json`, each with
the record's version at marking, under the record's own lock; the sync marks a file's days before
it writes the file's manifest, so a crash between the two re-stages the file and marks them
again, and a crash between the sync and the rebuild leaves the days recorded. `clear` drops the
days a run rebuilt, only where they were marked at or before the version that run's sync saw: a
day marked again meanwhile stays. A sync of unchanged files marks nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flywheel.ingest.partition import event_days_of_intervention
from flywheel.store import Layout, exclusive, write_bytes_atomic


@dataclass(frozen=True)
class Rebuild:
    """The record: its version (bumped by every `mark` that adds a day) and each day to rebuild
    with the version it was last marked at."""

    version: int
    days: dict[date, int]


def record_path(layout: Layout) -> Path:
    """Where the days to rebuild are kept."""
    return layout.root / "rebuild.json"


def pending(layout: Layout) -> Rebuild:
    """The days to rebuild now (an absent record: none)."""
    path = record_path(layout)
    if not path.exists():
        return Rebuild(0, {})
    raw = json.loads(path.read_text(encoding="utf-8"))
    return Rebuild(int(raw["version"]), {date.fromisoformat(d): int(v) for d, v in raw["days"].items()})


def _write(layout: Layout, record: Rebuild) -> None:
    doc = {"version": record.version, "days": {d.isoformat(): v for d, v in sorted(record.days.items())}}
    write_bytes_atomic(json.dumps(doc, indent=1).encode(), record_path(layout))


def mark(layout: Layout, days: Iterable[date]) -> int:
    """Record `days` as to be rebuilt at a new version; returns the record's version (unchanged,
    and nothing written, when `days` is empty)."""
    todo = set(days)
    with exclusive(layout.lock("rebuild")):
        record = pending(layout)
        if not todo:
            return record.version
        version = record.version + 1
        _write(layout, Rebuild(version, {**record.days, **{d: version for d in todo}}))
        return version


def clear(layout: Layout, days: Iterable[date], upto: int) -> list[date]:
    """Drop those of `days` marked at version `upto` or before (a run rebuilt them from data a sync
    at version `upto` had staged); returns the days dropped."""
    wanted = set(days)
    with exclusive(layout.lock("rebuild")):
        record = pending(layout)
        gone = sorted(d for d, v in record.days.items() if d in wanted and v <= upto)
        if gone:
            _write(layout, Rebuild(record.version, {d: v for d, v in record.days.items() if d not in gone}))
        return gone


def file_changed_days(layout: Layout, manifest: dict[str, Any], old: dict[str, Any] | None, lag: int) -> set[date]:
    """The event days whose inputs changed when the file of `manifest` was staged (`old`: its
    previous manifest, if it had been staged before); `lag` is FLYWHEEL_MAX_REVIEW_LAG_DAYS."""
    days: set[date] = set()
    for m in (old, manifest):
        if m:
            days.update(date.fromisoformat(d) for d in m.get("event_days") or [])
    fid = manifest["file_id"]
    ids: dict[date, pa.Array] = {}
    for text in manifest.get("intervention_days") or []:
        day = date.fromisoformat(text)
        piece = layout.staged("interventions", day, fid)
        if piece.exists():
            ids[day] = pq.read_table(piece, columns=["event_id"]).column(0).combine_chunks()
    days |= _days_of_events(layout, ids, lag)
    if old and old.get("intervention_days"):
        days |= _days_storing(layout, manifest["path"], [date.fromisoformat(d) for d in old["intervention_days"]], lag)
    return days


def _days_of_events(layout: Layout, ids_by_day: dict[date, pa.Array], lag: int) -> set[date]:
    """The stored event days holding the events of interventions dated as in `ids_by_day`.

    Each event id is looked for in the days its intervention can join (`event_days_of_intervention`),
    newest first, until it is found; an id found nowhere marks nothing."""
    wanted: dict[date, set[date]] = {}  # candidate event day -> intervention days it can serve
    for t in ids_by_day:
        for d in event_days_of_intervention(t, lag):
            wanted.setdefault(d, set()).add(t)
    remaining = {t: pc.unique(a) for t, a in ids_by_day.items() if len(a)}
    found: set[date] = set()
    for d in sorted(wanted, reverse=True):
        if not any(t in remaining for t in wanted[d]):
            continue
        path = layout.table("events", d)
        if not path.exists():
            continue
        stored = pq.read_table(path, columns=["event_id"]).column(0).combine_chunks()
        for t in sorted(wanted[d]):
            if t not in remaining:
                continue
            # hash the few ids still looked for, probe the day's many
            matched = pc.filter(stored, pc.is_in(stored, value_set=remaining[t]))
            if len(matched):
                found.add(d)
                left = pc.filter(remaining[t], pc.invert(pc.is_in(remaining[t], value_set=matched)))
                if len(left):
                    remaining[t] = left
                else:
                    del remaining[t]
    return found


def _days_storing(layout: Layout, source_file: str, intervention_days: list[date], lag: int) -> set[date]:
    """The event days whose stored interventions come from `source_file` (dated as listed)."""
    candidates = {d for t in intervention_days for d in event_days_of_intervention(t, lag)}
    out: set[date] = set()
    for d in sorted(candidates):
        path = layout.table("interventions", d)
        if path.exists() and pq.read_table(path, columns=["source_file"],
                                           filters=[("source_file", "=", source_file)]).num_rows:
            out.add(d)
    return out


def contiguous(days: Iterable[date]) -> list[tuple[date, date]]:
    """(first, last) of each run of consecutive days, in ascending order."""
    ranges: list[tuple[date, date]] = []
    for d in sorted(set(days)):
        if ranges and (d - ranges[-1][1]).days == 1:
            ranges[-1] = (ranges[-1][0], d)
        else:
            ranges.append((d, d))
    return ranges
