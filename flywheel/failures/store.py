"""Where the failure model keeps its state in the store, and how a night reads and writes it.

`store/failures/state/event_date=D/snapshot.npz` is the model after night D: its clusters,
centroids and the documents it kept for the following nights' fits (`model.ModelState` bytes and
the kept documents as Parquet bytes, in one file written atomically, so a snapshot is whole or
absent). `store/failures/state/ids.json` holds the next cluster id to hand out, over every night
and every re-run, so an id is never handed out twice. Night D continues from the latest snapshot
before D; re-running D reads the same snapshots and so gives the same result, and reuses the ids
the earlier run of D gave its new clusters (`model.advance`'s `previous`).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from flywheel.failures.model import ModelState, kept_schema
from flywheel.store import Layout, write_bytes_atomic

_DAY_DIR = re.compile(r"^event_date=(\d{4}-\d{2}-\d{2})$")


@dataclass
class Snapshot:
    """The model after one night and the documents that night kept."""

    state: ModelState
    kept: pl.DataFrame

    def to_bytes(self) -> bytes:
        """The snapshot as one .npz file's bytes."""
        buf = io.BytesIO()
        self.kept.write_parquet(buf, compression="zstd")
        out = io.BytesIO()
        np.savez(out, state=np.frombuffer(self.state.to_bytes(), dtype=np.uint8),
                 kept=np.frombuffer(buf.getvalue(), dtype=np.uint8))
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Snapshot":
        """The snapshot `to_bytes` wrote."""
        with np.load(io.BytesIO(data)) as z:
            state = ModelState.from_bytes(z["state"].tobytes())
            kept = pl.read_parquet(io.BytesIO(z["kept"].tobytes()))
        return cls(state, kept.cast(kept_schema()))


def state_root(layout: Layout) -> Path:
    """The folder of the failure model's state."""
    return layout.root / "failures" / "state"


def snapshot_path(layout: Layout, day: date) -> Path:
    """The snapshot file of night `day`."""
    return state_root(layout) / f"event_date={day.isoformat()}" / "snapshot.npz"


def snapshot_days(layout: Layout) -> list[date]:
    """The nights with a snapshot, in order."""
    root = state_root(layout)
    if not root.exists():
        return []
    days = []
    for entry in root.iterdir():
        m = _DAY_DIR.match(entry.name)
        if m and (entry / "snapshot.npz").exists():
            days.append(date.fromisoformat(m.group(1)))
    return sorted(days)


def load_snapshot(layout: Layout, day: date) -> Snapshot | None:
    """The snapshot of night `day`, or None."""
    path = snapshot_path(layout, day)
    return Snapshot.from_bytes(path.read_bytes()) if path.exists() else None


def save_snapshot(layout: Layout, day: date, snapshot: Snapshot) -> Path:
    """Write the snapshot of night `day` atomically; returns its path."""
    path = snapshot_path(layout, day)
    write_bytes_atomic(snapshot.to_bytes(), path)
    return path


def previous_state(layout: Layout, day: date) -> ModelState | None:
    """The model after the latest night before `day`, or None for the first night."""
    before = [d for d in snapshot_days(layout) if d < day]
    snap = load_snapshot(layout, before[-1]) if before else None
    return snap.state if snap else None


def load_kept(layout: Layout, day: date) -> pl.DataFrame | None:
    """Only the documents night `day` kept (without parsing its model), or None."""
    path = snapshot_path(layout, day)
    if not path.exists():
        return None
    with np.load(io.BytesIO(path.read_bytes())) as z:
        return pl.read_parquet(io.BytesIO(z["kept"].tobytes())).cast(kept_schema())


def recent_documents(layout: Layout, day: date, window_days: int) -> pl.DataFrame:
    """The documents kept by the nights of the `window_days` days before `day` (with their clusters)."""
    frames = [kept for d in snapshot_days(layout) if day - timedelta(days=window_days) <= d < day
              if (kept := load_kept(layout, d)) is not None]
    return pl.concat(frames) if frames else pl.DataFrame(schema=kept_schema())


def ids_path(layout: Layout) -> Path:
    """The file holding the next cluster id to hand out."""
    return state_root(layout) / "ids.json"


def next_free_id(layout: Layout) -> int:
    """The next cluster id no night has handed out yet (1 for a new store)."""
    path = ids_path(layout)
    return int(json.loads(path.read_text())["next_id"]) if path.exists() else 1


def record_next_id(layout: Layout, next_id: int) -> None:
    """Raise the stored next id to `next_id` (never lowers it); call under the failures lock."""
    current = next_free_id(layout)
    if next_id > current:
        write_bytes_atomic(json.dumps({"next_id": next_id}).encode(), ids_path(layout))


def with_free_ids(state: ModelState, layout: Layout) -> ModelState:
    """`state` whose next id is past every id any night handed out."""
    return replace(state, next_id=max(state.next_id, next_free_id(layout)))
