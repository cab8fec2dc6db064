"""Pull records from a source (Langfuse today) into the landing folder, incrementally and idempotently.

A source yields `Pulled` items: contract events and interventions (with the source's record id and
version), and records it could not map, each with a named reason. `pull` lands them: events go to
`<landing>/events/<source>/`, interventions to `<landing>/interventions/<source>/`, as JSON Lines
files named by the SHA-256 of their bytes (so the same records never make a second file), written
atomically (temporary name, fsync, rename); the landing sync then stores them like any other
landing file. Records that cannot be mapped are never dropped: they go to a quarantine file of the
pull beside the source's state (`<store>/sources/<source>/quarantine/<sha256>.jsonl`, one JSON object
a line: source, kind, record_id, version, reason, detail, raw; reviewer ids in raw pseudonymised as
stored interventions' are).

The source's state (`<store>/sources/<source>/state.json`, written atomically after the landing
files) keeps the high-water mark (the latest event time pulled), and every (record id, version)
landed or quarantined, so a re-pull lands nothing twice and an annotation changed since (a new
version) lands again. A pull asks the source for events from the high-water mark minus the
source's `overlap` and for annotations from the high-water mark minus its `annotation_lookback`,
so late-arriving records and late annotations of older events are read again; what was seen is
skipped. Entries older than both windows are dropped from the state: the source is never asked
for them again.

Every pull reconciles: fetched = landed + duplicates + quarantined, per kind (`PullReport`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Protocol

from flywheel.config import Settings
from flywheel.privacy import hash_key, pseudonymise
from flywheel.sources.verdicts import PullSource
from flywheel.store import exclusive, write_bytes_atomic

Kind = Literal["events", "interventions"]
STATE_VERSION = 1

# Keys whose values name a reviewer in a source's raw records (Langfuse authorUserId, Phoenix
# user_id, MLflow source_id, the contract's reviewer_id): pseudonymised in the quarantine file as
# stored interventions are (flywheel/privacy.py).
REVIEWER_KEYS = frozenset({"reviewer_id", "authorUserId", "user_id", "source_id"})


@dataclass(frozen=True)
class Pulled:
    """One record a source fetched: a contract record (`record` set) or a quarantined one (`reason` set).

    `at` is the time the source's window filters on: an event's start (which also moves the
    high-water mark), an annotation's last change; the state's pruning uses it too. `raw` is what
    the source gave, kept for quarantine."""

    kind: str
    record_id: str
    version: str
    at: datetime | None
    record: dict[str, Any] | None = None
    reason: str = ""
    detail: str = ""
    raw: Any = None


@dataclass(frozen=True)
class Window:
    """What a pull asks for: events that started at or after `events_since`, annotations made at or
    after `annotations_since` (None: everything the source has)."""

    events_since: datetime | None
    annotations_since: datetime | None


class Source(Protocol):
    """What `pull` needs of a source: its name, and the records in a window."""

    name: str

    def fetch(self, window: Window) -> Iterable[Pulled]: ...


@dataclass
class PullReport:
    """What one pull did, per kind: fetched = landed + duplicates + quarantined."""

    source: str
    fetched: Counter = field(default_factory=Counter)
    landed: Counter = field(default_factory=Counter)
    duplicates: Counter = field(default_factory=Counter)
    quarantined: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    files: list[Path] = field(default_factory=list)
    hwm_before: str | None = None
    hwm_after: str | None = None
    window: Window | None = None

    def reconciles(self) -> bool:
        """Whether every kind's fetched count equals landed + duplicates + quarantined."""
        kinds = set(self.fetched) | set(self.landed) | set(self.duplicates) | set(self.quarantined)
        return all(self.fetched[k] == self.landed[k] + self.duplicates[k] + self.quarantined[k] for k in kinds)

    def lines(self) -> list[str]:
        """The report as printed by `flywheel pull`."""
        out = [f"{self.source}: high-water mark {self.hwm_before or '(none)'} -> {self.hwm_after or '(none)'}"]
        for kind in sorted(set(self.fetched) | set(self.quarantined)):
            out.append(f"  {kind}: fetched {self.fetched[kind]} = landed {self.landed[kind]} + duplicates "
                       f"{self.duplicates[kind]} + quarantined {self.quarantined[kind]}")
        for reason, n in sorted(self.reasons.items()):
            out.append(f"  quarantined {n}: {reason}")
        for path in self.files:
            out.append(f"  wrote {path}")
        if not self.reconciles():  # pragma: no cover - the counting below makes it hold
            out.append("  COUNTS DO NOT RECONCILE")
        return out


def source_dir(settings: Settings, source: str) -> Path:
    """The folder of a source's state and quarantine files in the store."""
    return settings.store / "sources" / source


def load_state(settings: Settings, source: str) -> dict[str, Any]:
    """The source's state, or an empty one before its first pull."""
    path = source_dir(settings, source) / "state.json"
    if not path.exists():
        return {"version": STATE_VERSION, "hwm": None, "seen": {}, "quarantined": {}}
    state = json.loads(path.read_text(encoding="utf-8"))
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"{path}: state version {state.get('version')!r}, expected {STATE_VERSION}")
    return state


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from an RFC 3339 string (or None when it is not one)."""
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.astimezone(timezone.utc) if t.tzinfo is not None else None


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def window_of(state: dict[str, Any], config: PullSource, full: bool = False) -> Window:
    """The window of the next pull: from the high-water mark minus the overlap (events) and minus
    the annotation lookback (annotations); everything when there is no mark yet or `full`."""
    hwm = parse_time(state.get("hwm"))
    if hwm is None or full:
        return Window(None, None)
    return Window(hwm - config.overlap, hwm - config.annotation_lookback)


def _key(item: Pulled) -> str:
    return f"{item.kind}\x1f{item.record_id}"


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode() + b"\n"
                    for r in rows)


def _write_content_addressed(folder: Path, rows: list[dict[str, Any]]) -> Path | None:
    """Write rows as JSON Lines to `folder/<sha256>.jsonl` (nothing when there are none or the file
    exists: the same bytes make the same name); returns the path written, or None."""
    if not rows:
        return None
    data = _jsonl(rows)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:32]}.jsonl"
    if path.exists():
        return None
    write_bytes_atomic(data, path)
    return path


def pull(settings: Settings, source: Source, config: PullSource, full: bool = False) -> PullReport:
    """Fetch the source's records in the window its state gives, land the new ones, quarantine what
    cannot be mapped, and save the state; returns the reconciled counts. See the module docstring.

    `full` asks for everything the source has (the (id, version) dedupe still applies)."""
    folder = source_dir(settings, source.name)
    with exclusive(folder / ".pull.lock"):
        state = load_state(settings, source.name)
        window = window_of(state, config, full)
        report = PullReport(source.name, hwm_before=state.get("hwm"), window=window)
        seen: dict[str, list[Any]] = state["seen"]
        quarantined: dict[str, list[Any]] = state["quarantined"]
        this_pull: set[tuple[str, str]] = set()
        rows: dict[str, list[dict[str, Any]]] = {"events": [], "interventions": []}
        bad: list[dict[str, Any]] = []
        hwm = parse_time(state.get("hwm"))
        key = hash_key(settings.store)
        for item in source.fetch(window):
            report.fetched[item.kind] += 1
            rec = _key(item)
            at = _iso(item.at) if item.at is not None else None
            if item.kind == "events" and item.at is not None and (hwm is None or item.at > hwm):
                hwm = item.at
            if (rec, item.version) in this_pull or (seen.get(rec) or [None])[0] == item.version:
                report.duplicates[item.kind] += 1
                continue
            this_pull.add((rec, item.version))
            if item.record is None:
                if quarantined.get(rec, [None, None])[:2] == [item.version, item.reason]:
                    report.duplicates[item.kind] += 1  # quarantined before, for the same reason
                    continue
                report.quarantined[item.kind] += 1
                report.reasons[item.reason] += 1
                quarantined[rec] = [item.version, item.reason, at]
                bad.append({"source": source.name, "kind": item.kind, "record_id": item.record_id,
                            "version": item.version, "reason": item.reason, "detail": item.detail,
                            "raw": _pseudonymised(item.raw, key)})
                continue
            report.landed[item.kind] += 1
            rows[item.kind].append(item.record)
            seen[rec] = [item.version, at]
            quarantined.pop(rec, None)
        for kind in ("events", "interventions"):
            written = _write_content_addressed(settings.landing / kind / source.name, rows[kind])
            if written is not None:
                report.files.append(written)
        written = _write_content_addressed(folder / "quarantine", bad)
        if written is not None:
            report.files.append(written)
        state["hwm"] = _iso(hwm) if hwm is not None else None
        report.hwm_after = state["hwm"]
        _prune(state, config)
        write_bytes_atomic(json.dumps(state, indent=1, sort_keys=True).encode(), folder / "state.json")
    return report


def _pseudonymised(raw: Any, key: bytes) -> Any:
    """`raw` with the string values of REVIEWER_KEYS (at any depth) replaced by their pseudonyms."""
    if isinstance(raw, dict):
        return {k: pseudonymise(v, key) if k in REVIEWER_KEYS and isinstance(v, str) else _pseudonymised(v, key)
                for k, v in raw.items()}
    if isinstance(raw, list):
        return [_pseudonymised(v, key) for v in raw]
    return raw


def _prune(state: dict[str, Any], config: PullSource) -> None:
    """Drop the entries older than both windows: the source is not asked for them again."""
    hwm = parse_time(state.get("hwm"))
    if hwm is None:
        return
    horizon = hwm - max(config.overlap, config.annotation_lookback)
    for table in (state["seen"], state["quarantined"]):
        for key in [k for k, v in table.items() if (t := parse_time(v[-1])) is not None and t < horizon]:
            del table[key]
