"""Where the failure model keeps its state in the store, and how a night reads and writes it.

`store/failures/state/event_date=D/snapshot.npz` is the model after night D: its clusters,
centroids and the documents it kept for the following nights' fits (`model.ModelState` bytes and
the kept documents as Parquet bytes, in one file written atomically, so a snapshot is whole or
absent), with the night's `digest` (of its content, not of the runs' names) and its `basis` (the
digest of every earlier snapshot it was built from). Night D continues from the latest snapshot
before D (its clusters and its next cluster id) and the documents kept by the nights of the window
before D: re-running D reads the same snapshots and so gives the same ids and assignments as its
first run. A night is stale when an earlier night it was built from has changed since, or a night
of its window was built after it (`is_stale`: another run rebuilt that night, or built it late);
`tables.refresh_stale` rebuilds such nights in order. Stores written before issue 16 also hold
`ids.json`, a store-wide id counter no longer read.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from flywheel.failures.model import ModelState, conform_kept, kept_schema
from flywheel.store import Layout, write_bytes_atomic

_DAY_DIR = re.compile(r"^event_date=(\d{4}-\d{2}-\d{2})$")


def content_digest(state: ModelState, kept: pl.DataFrame) -> str:
    """A digest of what a night computed (clusters, centroids, next id, kept documents), leaving
    out the names of the runs (`run_id`, `born_run`): the same night built by two runs from the
    same inputs has the same digest."""
    h = hashlib.blake2b(digest_size=16)
    clusters = [{k: v for k, v in c.to_json().items() if k != "born_run"} for c in state.clusters]
    meta = {"featurizer": state.featurizer.to_json(), "next_id": state.next_id,
            "day": state.day.isoformat() if state.day else None, "clusters": clusters}
    h.update(json.dumps(meta, sort_keys=True).encode())
    sums = state.sums.tocsr()
    for part in (sums.data.astype(np.float32), sums.indices.astype(np.int64), sums.indptr.astype(np.int64),
                 np.array(sums.shape, dtype=np.int64)):
        h.update(part.tobytes())
    h.update(kept.write_csv().encode())
    return h.hexdigest()


@dataclass
class Snapshot:
    """The model after one night, the documents that night kept, and the digests of the earlier
    snapshots the night was built from (`basis`: ISO day -> digest)."""

    state: ModelState
    kept: pl.DataFrame
    basis: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """`content_digest` of this night."""
        return content_digest(self.state, self.kept)

    def to_bytes(self) -> bytes:
        """The snapshot as one .npz file's bytes."""
        buf = io.BytesIO()
        self.kept.write_parquet(buf, compression="zstd")
        meta = json.dumps({"digest": self.digest, "basis": self.basis}, sort_keys=True).encode()
        out = io.BytesIO()
        np.savez(out, state=np.frombuffer(self.state.to_bytes(), dtype=np.uint8),
                 kept=np.frombuffer(buf.getvalue(), dtype=np.uint8), meta=np.frombuffer(meta, dtype=np.uint8))
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Snapshot":
        """The snapshot `to_bytes` wrote."""
        with np.load(io.BytesIO(data)) as z:
            state = ModelState.from_bytes(z["state"].tobytes())
            kept = pl.read_parquet(io.BytesIO(z["kept"].tobytes()))
            meta = json.loads(z["meta"].tobytes()) if "meta" in z.files else {}
        return cls(state, conform_kept(kept), dict(meta.get("basis", {})))


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


def snapshot_meta(layout: Layout, day: date) -> dict | None:
    """The `digest` and `basis` night `day`'s snapshot records (without parsing its model); {} for
    a snapshot written before they were recorded; None when there is no snapshot."""
    path = snapshot_path(layout, day)
    if not path.exists():
        return None
    with path.open("rb") as fh, np.load(fh) as z:  # reads the meta member only (also on an object store)
        return json.loads(z["meta"].tobytes()) if "meta" in z.files else {}


def _basis_days(days: list[date], day: date, window_days: int) -> list[date]:
    before = [d for d in days if d < day]
    return sorted({*before[-1:], *(d for d in before if d >= day - timedelta(days=window_days))})


def basis(layout: Layout, day: date, window_days: int) -> dict[str, str]:
    """The digests of the snapshots night `day` is built from now: the latest night before it (its
    model) and the nights of the `window_days` days before it (their kept documents)."""
    out = {}
    for d in _basis_days(snapshot_days(layout), day, window_days):
        meta = snapshot_meta(layout, d)
        out[d.isoformat()] = (meta or {}).get("digest", "")
    return out


def is_stale(layout: Layout, day: date, window_days: int) -> bool:
    """Whether night `day`'s snapshot was built from other earlier snapshots than the store holds
    now (an earlier night rebuilt with another result, or built after it); a snapshot that records
    no basis is stale. False when night `day` has no snapshot."""
    meta = snapshot_meta(layout, day)
    if meta is None:
        return False
    return "basis" not in meta or meta["basis"] != basis(layout, day, window_days)


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
        return conform_kept(pl.read_parquet(io.BytesIO(z["kept"].tobytes())))


def recent_documents(layout: Layout, day: date, window_days: int) -> pl.DataFrame:
    """The documents kept by the nights of the `window_days` days before `day` (with their clusters)."""
    frames = [kept for d in snapshot_days(layout) if day - timedelta(days=window_days) <= d < day
              if (kept := load_kept(layout, d)) is not None]
    return pl.concat(frames) if frames else pl.DataFrame(schema=kept_schema())
