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

The same record (same lock, same atomic write, same version counter) keeps the days whose window
tables are stale: a day's rolling rates, calibration, reliability bins, drift, gate evaluations
and decisions read the days before it (and its own), so when day partitions run as separate runs
at once, or an older day is rebuilt, a later day's windows can have been computed without data
that is now there. Three events are recorded, each under the lock, each bumping the version:
`own_written` after a run wrote a day's own tables (events, outcomes, daily rates, failure
clusters: what windows read), `windows_read` when a window step starts (the version it returns
is the step's snapshot, taken before it reads anything), and `windows_built` once a day's window
tables are all written (the run's snapshot is the smallest its window steps took). The rule:

- `own_written(days)` marks stale every day >= min(days) whose windows were built (or decided);
- `windows_built(e)` marks stale every later day whose windows were built (they read e's gates);
- `windows_built(e)` finds e itself stale when, for another run, a day <= e was written or a day
  < e had its windows built at a version above the run's snapshot, when a day < e is recorded
  stale, or when a due day (staged events, from the first partition) of e's look-back window has
  no daily rates in the store ("missing"); otherwise it clears e's entry, unless another run
  marked it after the snapshot.

Why it is complete: take a write W of an input of day e by run R' (own tables of a day <= e, or
window tables of a day < e) and a build B of e's windows by run R != R' that may have missed it:
B's reads start after its snapshot S. Both W's record and B's record are taken under the lock,
so one comes first. If W's record came before S, W's data was in place before B read: B saw it.
If W's record came after S but before B's record, W's version is above S and B marks e stale.
If W's record came after B's record, W finds e built and marks it. A day due but never written
is no write at all: B sees it missing. A run's own writes of its days precede its window steps
(each asset is one step over all the run's days, and window steps depend on the own ones) and
its window days are built in day order, so a run never marks itself stale. A stale mark is only
ever dropped by a build of that day whose check found nothing: the refresh. Spurious marks (a
write recorded after a read that saw it) cost one refresh, never a wrong feed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from flywheel.ingest.partition import event_days_of_intervention
from flywheel.objectstore import read_table
from flywheel.store import Layout, exclusive, write_bytes_atomic
from flywheel.tables import DAILY_RATES

# (version, run id) of the newest write of a day's own tables, or of its window tables
Stamp = tuple[int, str]


@dataclass(frozen=True)
class Stale:
    """Why a day's window tables are stale: `since` is the earliest input day that changed after
    they were built (or is missing), `reason` is "changed" (a refresh fixes it) or "missing" (a
    due day is not in the store yet: its own run marks the day "changed"), `marks` the newest
    version each run marked it at."""

    since: date
    reason: str
    marks: dict[str, int]


@dataclass(frozen=True)
class Rebuild:
    """The record: its version (bumped by every `mark` that adds a day) and each day to rebuild
    with the version it was last marked at."""

    version: int
    days: dict[date, int]
    written: dict[date, Stamp] = field(default_factory=dict)
    built: dict[date, Stamp] = field(default_factory=dict)
    stale: dict[date, Stale] = field(default_factory=dict)


def record_path(layout: Layout) -> Path:
    """Where the days to rebuild are kept."""
    return layout.root / "rebuild.json"


def pending(layout: Layout) -> Rebuild:
    """The days to rebuild now (an absent record: none)."""
    path = record_path(layout)
    if not path.exists():
        return Rebuild(0, {})
    raw = json.loads(path.read_text(encoding="utf-8"))

    def stamps(key: str) -> dict[date, Stamp]:
        return {date.fromisoformat(d): (int(v), str(r)) for d, (v, r) in raw.get(key, {}).items()}

    stale = {date.fromisoformat(d): Stale(date.fromisoformat(e["since"]), e["reason"], {r: int(v) for r, v in e["marks"].items()})
             for d, e in raw.get("stale", {}).items()}
    return Rebuild(int(raw["version"]), {date.fromisoformat(d): int(v) for d, v in raw["days"].items()},
                   stamps("written"), stamps("built"), stale)


def _write(layout: Layout, record: Rebuild) -> None:
    doc = {"version": record.version, "days": {d.isoformat(): v for d, v in sorted(record.days.items())},
           "written": {d.isoformat(): list(v) for d, v in sorted(record.written.items())},
           "built": {d.isoformat(): list(v) for d, v in sorted(record.built.items())},
           "stale": {d.isoformat(): {"since": e.since.isoformat(), "reason": e.reason, "marks": dict(sorted(e.marks.items()))}
                     for d, e in sorted(record.stale.items())}}
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
        _write(layout, replace(record, version=version, days={**record.days, **{d: version for d in todo}}))
        return version


def clear(layout: Layout, days: Iterable[date], upto: int) -> list[date]:
    """Drop those of `days` marked at version `upto` or before (a run rebuilt them from data a sync
    at version `upto` had staged); returns the days dropped."""
    wanted = set(days)
    with exclusive(layout.lock("rebuild")):
        record = pending(layout)
        gone = sorted(d for d, v in record.days.items() if d in wanted and v <= upto)
        if gone:
            _write(layout, replace(record, days={d: v for d, v in record.days.items() if d not in gone}))
        return gone


def _marked(stale: dict[date, Stale], day: date, since: date, reason: str, run_id: str, version: int) -> Stale:
    """`day`'s entry with one more mark (the earliest `since`; "changed" wins over "missing")."""
    old = stale.get(day)
    if old is None:
        return Stale(since, reason, {run_id: version})
    return Stale(min(old.since, since), "changed" if "changed" in (old.reason, reason) else reason,
                 {**old.marks, run_id: version})


def windows_read(layout: Layout) -> int:
    """The version a window step takes before it reads anything (its snapshot)."""
    return pending(layout).version


def own_written(layout: Layout, days: Iterable[date], run_id: str, decided: Iterable[date] = ()) -> list[date]:
    """Record that run `run_id` (re)wrote the own tables of `days`, and mark stale every day from
    the first of them on whose windows were built (`decided`: days decided before this record
    kept builds, which count as built). Returns the days marked."""
    todo = sorted(set(days))
    if not todo:
        return []
    with exclusive(layout.lock("rebuild")):
        record = pending(layout)
        version = record.version + 1
        targets = sorted(e for e in set(record.built) | set(decided) if e >= todo[0])
        stale = dict(record.stale)
        for e in targets:
            stale[e] = _marked(stale, e, todo[0], "changed", run_id, version)
        _write(layout, replace(record, version=version, written={**record.written, **{d: (version, run_id) for d in todo}},
                               stale=stale))
        return targets


def windows_built(layout: Layout, day: date, run_id: str, since: int, due: Iterable[date], lookback: int) -> Stale | None:
    """Record that run `run_id`, whose window steps took snapshot `since`, has written every window
    table of `day`; mark stale the later days whose windows were built (they read this day's),
    and find whether `day`'s own windows are stale (see the module docstring: an input another
    run wrote after `since`, a stale earlier day, or a `due` day of the `lookback` days before it
    with no daily rates in the store). Returns `day`'s stale entry, or None when it is fresh."""
    start = day - timedelta(days=lookback - 1)
    stored = set(layout.days(DAILY_RATES.path, start, day - timedelta(days=1)))
    missing = [d for d in sorted(set(due)) if start <= d < day and d not in stored]
    with exclusive(layout.lock("rebuild")):
        record = pending(layout)
        version = record.version + 1
        changed = [d for d, (v, r) in record.written.items() if d <= day and v > since and r != run_id]
        changed += [d for d, (v, r) in record.built.items() if d < day and v > since and r != run_id]
        inherited = [e for d, e in record.stale.items() if d < day]
        stale = dict(record.stale)
        for e in sorted(e for e in record.built if e > day):
            stale[e] = _marked(stale, e, day, "changed", run_id, version)
        # what this build found replaces the day's entry; marks other runs made after the snapshot
        # (a build of the same day at the same time) are not this build's to drop
        old = stale.pop(day, None)
        keep = {r: v for r, v in old.marks.items() if v > since and r != run_id} if old else {}
        if changed or any(e.reason == "changed" for e in inherited):
            cause = min([*changed, *(e.since for e in inherited if e.reason == "changed")])
            stale[day] = Stale(cause, "changed", {**keep, run_id: version})
        elif missing or inherited:
            cause = min([*missing, *(e.since for e in inherited)])
            stale[day] = Stale(cause, old.reason if old and keep else "missing", {**keep, run_id: version})
        elif old and keep:
            stale[day] = Stale(old.since, old.reason, keep)
        _write(layout, replace(record, version=version, built={**record.built, day: (version, run_id)}, stale=stale))
        return stale.get(day)


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
            ids[day] = read_table(piece, columns=["event_id"]).column(0).combine_chunks()
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
        stored = read_table(path, columns=["event_id"]).column(0).combine_chunks()
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
        if path.exists() and read_table(path, columns=["source_file"],
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
