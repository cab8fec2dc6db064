"""Where flywheel reads and writes, from the environment at call time (never at import time).

| variable | default | what |
|---|---|---|
| FLYWHEEL_LANDING | data/landing | folder that producers drop files into (events/, interventions/, otlp/); or s3://bucket/prefix |
| FLYWHEEL_STORE | data/store | the system of record: Parquet partitioned by date, manifests, staging; or s3://bucket/prefix |
| FLYWHEEL_DB | data/flywheel.duckdb | the DuckDB database analysts open (views over the store, documented); a local file, never a directory or a URL |
| FLYWHEEL_PUBLISH | data/publish | where the decision feed the AI product reads is published; or s3://bucket/prefix |
| FLYWHEEL_LEASE_SECONDS | 60 | with the store on an object store: how long a lease object (what stands for a lock file there) lives without its holder's renewal, i.e. how long a crashed holder makes others wait at most (flywheel/objectstore.py) |
| FLYWHEEL_POLICY | flywheel/policy/policy.yaml (in the package; policy/policy.yaml links to it) | the autonomy policy file |
| FLYWHEEL_MAX_REVIEW_LAG_DAYS | 28 | how long after its event an intervention is looked for (the nightly run rebuilds exactly the event days whose inputs changed, however late: see flywheel/ingest/changed_days.py) |
| FLYWHEEL_HEAVY_EDIT_THRESHOLD | 0.3 | normalised character edit distance at or above which an edit is heavy |
| FLYWHEEL_CALIBRATION_WINDOW_DAYS | 28 | days of events (ending at the day) that calibration looks at |
| FLYWHEEL_RELIABILITY_BINS | 10 | equal-count bins of the reliability diagram |
| FLYWHEEL_DUCKDB_MEMORY | 4GB | memory limit of each DuckDB query that builds the store's tables (partitions, outcomes, marts, failure documents, signals) (beyond it, DuckDB spills to <store>/_tmp); at least 16MiB |
| FLYWHEEL_MAX_DECOMPRESSED_BYTES | 16GiB | a compressed landing file (.gz) that expands to more than this is refused as `bad_file` (see flywheel/ingest/readers.py) |
| FLYWHEEL_MAX_COMPRESSION_RATIO | 100 | a compressed landing file that expands more than this many times its compressed size (checked once 64 MiB have come out) is refused as `bad_file`, a likely compression bomb |
| FLYWHEEL_REDACT | on | redact e-mails, phone and card numbers from the failure clustering text (off: 0, false, no, off) |
| FLYWHEEL_HASH_KEY | a random key kept in the store (`<store>/.hash_key`) | key of the keyed hash that replaces reviewer ids (rotation: flywheel/privacy.py) |
| FLYWHEEL_SOURCES | (none: the default flywheel/sources/sources.yaml) | a sources file merged over the default: where OpenTelemetry spans' scenario, model, prompt version, confidence and autonomy level come from (docs/otlp.md) |

FLYWHEEL_LANDING, FLYWHEEL_STORE and FLYWHEEL_PUBLISH name a local folder or an S3-compatible object
store (`s3://bucket/prefix`, credentials and endpoint from the standard AWS variables: see
`flywheel.objectstore`); the settings hold a `pathlib.Path` or a `UPath` accordingly (`root_of`).

The confidence gate's target and error level are policy (`gate.target`, `gate.delta` in the policy
file), so that a backtest can replay another policy; FLYWHEEL_GATE_TARGET is refused with a message
that says so.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from flywheel.objectstore import AnyPath, root_of


@dataclass(frozen=True)
class Settings:
    """Resolved paths and knobs; build with `Settings.from_env()`."""

    landing: AnyPath
    store: AnyPath
    db: Path
    publish: AnyPath = Path("data/publish")
    policy: Path | None = None
    max_review_lag_days: int = 28
    heavy_edit_threshold: float = 0.3
    calibration_window_days: int = 28
    reliability_bins: int = 10
    redact: bool = True
    duckdb_memory: str = "4GB"
    max_decompressed_bytes: int = 16 * 1024**3
    max_compression_ratio: float = 100.0
    sources: Path | None = None
    hash_key: str | None = field(default=None, repr=False)  # a secret: kept out of repr and logs

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        """Settings from the environment, defaults relative to the working directory.

        Keyword overrides that are not None win over the environment.
        """
        env = os.environ
        if env.get("FLYWHEEL_GATE_TARGET", "").strip():
            raise ValueError("FLYWHEEL_GATE_TARGET is no longer read: the confidence gate's target is the policy's "
                             "gate.target (and its error level gate.delta); see docs/decisions.md")
        settings = cls(
            landing=root_of(env.get("FLYWHEEL_LANDING", "data/landing")),
            store=root_of(env.get("FLYWHEEL_STORE", "data/store")),
            db=_local_file(env.get("FLYWHEEL_DB", "data/flywheel.duckdb")),
            publish=root_of(env.get("FLYWHEEL_PUBLISH", "data/publish")),
            policy=Path(env["FLYWHEEL_POLICY"]) if env.get("FLYWHEEL_POLICY") else None,
            max_review_lag_days=_int_env("FLYWHEEL_MAX_REVIEW_LAG_DAYS", 28),
            heavy_edit_threshold=_fraction_env("FLYWHEEL_HEAVY_EDIT_THRESHOLD", 0.3),
            calibration_window_days=max(1, _int_env("FLYWHEEL_CALIBRATION_WINDOW_DAYS", 28)),
            reliability_bins=max(1, _int_env("FLYWHEEL_RELIABILITY_BINS", 10)),
            redact=_flag_env("FLYWHEEL_REDACT", True),
            duckdb_memory=_duckdb_memory_env(),
            max_decompressed_bytes=_bytes(_memory_env("FLYWHEEL_MAX_DECOMPRESSED_BYTES", "16GiB"),
                                          "FLYWHEEL_MAX_DECOMPRESSED_BYTES"),
            max_compression_ratio=_ratio_env("FLYWHEEL_MAX_COMPRESSION_RATIO", 100.0),
            sources=Path(env["FLYWHEEL_SOURCES"]) if env.get("FLYWHEEL_SOURCES", "").strip() else None,
            hash_key=env.get("FLYWHEEL_HASH_KEY") or None,
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        for key in ("landing", "store", "publish"):
            if key in given:
                given[key] = root_of(given[key])  # type: ignore[arg-type]
        for key in ("db", "policy"):
            if key in given:
                given[key] = _local_file(given[key])  # type: ignore[arg-type]
        settings = replace(settings, **given)  # type: ignore[arg-type]
        if settings.db.is_dir():
            raise ValueError(f"FLYWHEEL_DB names a directory ({settings.db}); it must name the analysts' database "
                             f"file, e.g. {settings.db / 'flywheel.duckdb'}")
        return settings


def _local_file(text: object) -> Path:
    """A local file's path; a URL is refused (the analysts' database and the policy are local files)."""
    raw = os.fspath(text)  # type: ignore[call-overload]
    if "://" in raw:
        raise ValueError(f"{raw!r} must be a local file, not a URL (FLYWHEEL_DB and FLYWHEEL_POLICY are files on this "
                         "machine; the store, landing and publish areas may be s3:// URLs)")
    return Path(raw)


def _memory_env(name: str, default: str) -> str:
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", raw, re.IGNORECASE):
        raise ValueError(f"{name} must be an amount of memory such as 4GB or 512MiB, got {raw!r}")
    return raw


_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def _bytes(amount: str, name: str) -> int:
    """A number of bytes from an amount such as 16GiB or 500MB (checked by `_memory_env`); above 0."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]+)", amount.strip())
    assert m is not None
    value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if value <= 0:
        raise ValueError(f"{name} must be more than 0 bytes, got {amount!r}")
    return value


def _ratio_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number greater than 1, got {raw!r}") from None
    if not value > 1.0 or value != value or value == float("inf"):
        raise ValueError(f"{name} must be a number greater than 1, got {raw!r}")
    return value


DUCKDB_MEMORY_FLOOR = 16 * 1024**2


def _duckdb_memory_env() -> str:
    """FLYWHEEL_DUCKDB_MEMORY, refused below 16 MiB: DuckDB accepts a limit of 0B or 1KB and then
    fails the first query that allocates (its buffers alone take that much)."""
    raw = _memory_env("FLYWHEEL_DUCKDB_MEMORY", "4GB")
    if _bytes(raw, "FLYWHEEL_DUCKDB_MEMORY") < DUCKDB_MEMORY_FLOOR:
        raise ValueError(f"FLYWHEEL_DUCKDB_MEMORY must be at least 16MiB (DuckDB cannot run a query in less), got {raw!r}")
    return raw


def _flag_env(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be on or off (1/0, true/false, yes/no), got {raw!r}")


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of days, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _fraction_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number between 0 and 1, got {raw!r}") from None
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {value}")
    return value
