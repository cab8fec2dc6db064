"""What the worked examples (examples/*/) share: stable ids, contract timestamps, and the JSON Lines
landing files their converters write.

An example puts this folder on `sys.path` and imports it (`from landing_files import ...`), so it
runs as a plain script (`python examples/<name>/<name>.py`) and when a test loads it from its file.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any


def stable_id(*parts: str) -> str:
    """A 16-hex-digit id of `parts` (blake2b of the parts joined by the unit separator): the same
    parts give the same id on every run, so a converted record keeps its id."""
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


def stamp(at: datetime) -> str:
    """A UTC datetime as the contracts' timestamp text (ISO 8601 with a `Z`)."""
    return at.isoformat().replace("+00:00", "Z")


def write_landing(landing: Path, kind: str, name: str, records: list[dict[str, Any]]) -> Path:
    """Write `records` as JSON Lines (UTF-8, not ASCII-escaped) to `landing/<kind>/<name>.jsonl`,
    making the folder; `kind` is `events` or `interventions`. Returns the file's path."""
    folder = landing / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path
