"""The file manifest: what a sync read from one landing file, kept as `manifests/<file id>.json`.

A manifest records the file's path, id and first-seen order (`seq`, earlier files win duplicate
ids), its format, what was read from it (records read, staged per kind, quarantined at read, why
the whole file was bad or refused) and the UTC days of its staged pieces; the sync adds the
file's size, modification time and SHA-256, by which an unchanged file is skipped. The staging
paths (`staging.stage_file`, and the per-record reference the tests hold it to) build it with
`file_manifest`; the sync (`sync.sync_landing`) reads and writes it here; the analysts' catalog and
the accounting check read it through DuckDB with `MANIFEST_COLUMNS`. A file on an object store
is recognised by its size and ETag instead of its modification time (`etag` in place of
`mtime_ns`, which stays null there).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from flywheel.ingest.readers import file_format
from flywheel.objectstore import is_remote
from flywheel.store import Layout, write_bytes_atomic

# The manifest's fields as DuckDB `read_json(..., columns = ...)` types.
MANIFEST_COLUMNS = (
    "{path: 'VARCHAR', file_id: 'VARCHAR', seq: 'BIGINT', folder: 'VARCHAR', format: 'VARCHAR', "
    "sha256: 'VARCHAR', size: 'BIGINT', mtime_ns: 'BIGINT', etag: 'VARCHAR', read: 'BIGINT', "
    "staged: 'STRUCT(events BIGINT, interventions BIGINT)', quarantined: 'BIGINT', bad_file: 'VARCHAR', "
    "refused: 'VARCHAR', event_days: 'VARCHAR[]', intervention_days: 'VARCHAR[]'}"
)


@dataclass
class FileResult:
    """What one sync did with one landing file."""

    path: str
    status: str  # new, changed, unchanged, refused, vanished (gone before it was read), renamed
    read: int = 0
    staged: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    bad: str | None = None  # why the whole file was quarantined unread (refused, unreadable), else None


def file_id(relpath: str) -> str:
    """A stable id for a landing path (relative to the landing folder)."""
    return hashlib.blake2b(relpath.encode("utf-8", errors="surrogateescape"), digest_size=10).hexdigest()


def file_manifest(folder_kind: str, rel: str, name: str, fid: str, seq: int, read: int, staged: dict[str, int],
                  quarantined: int, bad: str | None, refusal: str | None, event_days: list[str],
                  intervention_days: list[str]) -> dict[str, Any]:
    """The manifest of landing file `rel` (file name `name`) as staged: what was read from it and
    the days of its staged pieces (sorted here); the sync adds its sha256, size and mtime_ns (or
    etag, for a landing area on an object store)."""
    return {
        "path": rel, "file_id": fid, "seq": seq, "folder": folder_kind,
        "format": file_format(folder_kind, name), "read": read,
        "staged": staged, "quarantined": quarantined, "bad_file": bad,
        "refused": refusal, "event_days": sorted(event_days), "intervention_days": sorted(intervention_days),
    }


def load_manifests(layout: Layout) -> dict[str, dict[str, Any]]:
    """Every file manifest in the store, by file id."""
    out: dict[str, dict[str, Any]] = {}
    if is_remote(layout.manifests):
        fs, folder = layout.manifests.fs, layout.manifests.path  # type: ignore[attr-defined]
        names = [name for name in fs.glob(f"{folder}/*.json")]
        for name, data in fs.cat(names).items() if names else ():  # fetched concurrently
            out[name.rsplit("/", 1)[-1][: -len(".json")]] = json.loads(data)
        return out
    if layout.manifests.is_dir():
        for path in layout.manifests.glob("*.json"):
            out[path.stem] = json.loads(path.read_text())
    return out


def write_manifest(layout: Layout, fid: str, manifest: dict[str, Any]) -> None:
    """Write `manifest` as the manifest of file id `fid`, atomically."""
    write_bytes_atomic(json.dumps(manifest, indent=1).encode(), layout.manifest(fid))
