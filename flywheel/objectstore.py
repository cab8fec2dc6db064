"""The store, landing and publish areas on an S3-compatible object store, chosen by URL.

`root_of("s3://bucket/prefix")` is a `UPath` over an s3fs filesystem (fsspec); `root_of("data/store")`
is a plain `pathlib.Path`. Every path built from a root is of the same kind, so code that joins,
globs, reads and writes paths works on both; what differs is here and in `flywheel.store`:

- **Atomic replace.** One object's PUT (or multipart Complete) replaces it atomically: a reader sees
  the old object or the new one. `flywheel.store` writes straight to the final key and, on any
  exception, discards the upload, so a failed write never publishes a truncated file.
- **Conditional writes** (`put`, `delete`, `cas_update`): `create=True` sends If-None-Match: * (the write
  fails if the object exists), `if_match=<etag>` sends If-Match (compare-and-swap); a lost
  condition raises `Conflict`. Locally the same calls hold an `flock` on a `.<name>.lock` beside the
  file. A document updated by CAS should carry a unique token or version: an object's ETag is the
  MD5 of its bytes, so the same bytes written again have the same ETag.
- **Lease** (`lease`): what `flock` does locally, a `.<name>.lock` object does here: created with
  If-None-Match {owner token, expires}, renewed by a heartbeat thread (If-Match), taken over with
  If-Match once expired, deleted with If-Match on release. A lease cannot fence a holder paused past
  its TTL: it stops duplicate work; what must never interleave is written by CAS.
- **Engines.** `url(path)` is what DuckDB and polars read; `register(con, root)` gives a DuckDB
  connection the s3fs filesystem (no httpfs extension needed); `polars_options(path)` are polars'
  `storage_options`; `read_table(path, ...)` is `pyarrow.parquet.read_table` for either kind of path.

Credentials and endpoint come from the standard variables: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
(AWS_SESSION_TOKEN), AWS_ENDPOINT_URL (an S3-compatible server such as SeaweedFS or MinIO; unset
for AWS), AWS_REGION or AWS_DEFAULT_REGION. s3fs is the optional dependency `flywheel[s3]`; a local
root needs nothing of it. Listings are never cached (`use_listings_cache=False`): another process's
writes must be seen.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from upath import UPath

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    # The checker sees one type: a UPath offers the pathlib methods flywheel calls on store paths
    # (/, name, parent, exists, is_dir, glob, rglob, read_bytes, write_bytes, stat, unlink, mkdir).
    # What it cannot do (os.* calls, open(), resolve(), fsync) is behind `is_remote` checks.
    AnyPath: TypeAlias = Path
else:
    AnyPath = Path | UPath
"""A path in a local folder (`pathlib.Path`) or an object store (`UPath`, s3://)."""

REMOTE_SCHEMES = ("s3",)


class Conflict(Exception):
    """A conditional write lost: the object exists (create) or changed since its ETag was read (if_match)."""


def storage_options() -> dict[str, Any]:
    """s3fs' options from the standard AWS variables (read at call time)."""
    env = os.environ
    opts: dict[str, Any] = {"use_listings_cache": False}
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        opts.update(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"])
        if env.get("AWS_SESSION_TOKEN"):
            opts["token"] = env["AWS_SESSION_TOKEN"]
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        opts["endpoint_url"] = endpoint
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        opts["client_kwargs"] = {"region_name": region}
    return opts


def root_of(text: str | os.PathLike[str]) -> AnyPath:
    """The root named by `text`: a `UPath` for s3://bucket/prefix, else a local `pathlib.Path`.

    Raises ValueError for another URL scheme or an s3 URL without a bucket."""
    if isinstance(text, UPath):
        return cast(AnyPath, text)
    raw = os.fspath(text)
    scheme, sep, rest = raw.partition("://")
    if not sep:
        return Path(raw)
    if scheme.lower() not in REMOTE_SCHEMES:
        raise ValueError(f"{raw!r}: only local folders and s3://bucket/prefix URLs are supported")
    if not rest.strip("/"):
        raise ValueError(f"{raw!r}: an s3 URL must name a bucket (s3://bucket/prefix)")
    try:
        import s3fs  # noqa: F401  (the optional dependency: a clear message when it is missing)
    except ImportError as exc:
        raise ValueError(f"{raw!r} needs s3fs: pip install 'flywheel[s3]'") from exc
    return cast(AnyPath, UPath(f"s3://{rest.rstrip('/')}", **storage_options()))


def is_remote(path: object) -> bool:
    """True for a path on an object store."""
    return isinstance(path, UPath) and path.protocol in REMOTE_SCHEMES


def url(path: AnyPath) -> str:
    """What DuckDB and polars read: 's3://bucket/key' for a remote path, else the absolute local path."""
    if is_remote(path):
        return str(path)
    return str(Path(path).resolve())


def register(con: Any, root: AnyPath, fs: Any = None) -> None:
    """Give the DuckDB connection `con` an s3fs filesystem (`duckdb_filesystem`, through
    `register_filesystem`) so that `read_parquet('s3://...')` and `COPY ... TO 's3://...'` work;
    nothing for a local root. `fs` (a `Listing`'s) is registered in place of the default one, whose
    listings are never cached (what another process just wrote is seen at once: what the steps need)."""
    if is_remote(root):
        if fs is None:
            fs = duckdb_filesystem()
        if "s3" not in con.list_filesystems():  # registering twice is an error
            con.register_filesystem(fs)


OPENED_SECONDS = 5.0
"""How long the details of an object just opened answer DuckDB's question of its modification time."""

_duckdb_fs_class: Any = None


def duckdb_filesystem(**options: Any) -> Any:
    """The s3fs filesystem DuckDB reads the store through (`storage_options()`, updated with `options`).

    DuckDB asks for an object's modification time (`modified`) right after opening it; s3fs answers
    with another HEAD request, although opening the object has just fetched its details. This
    filesystem answers from those details (the same version of the object that DuckDB is reading)
    when they are at most `OPENED_SECONDS` old, else asks the store: on a 30-day run on a bucket,
    16,253 of 89,026 requests were those repeated HEADs."""
    global _duckdb_fs_class
    if _duckdb_fs_class is None:
        import s3fs

        class DuckDBS3FileSystem(s3fs.S3FileSystem):  # type: ignore[misc]
            def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
                f = super()._open(path, mode, **kwargs)
                details = getattr(f, "details", None)
                if "r" in mode and isinstance(details, dict) and "LastModified" in details:
                    self.__dict__.setdefault("_opened", {})[self._strip_protocol(path)] = (details, time.monotonic())
                return f

            def modified(self, path: str, version_id: str | None = None, refresh: bool = False) -> Any:
                hit = self.__dict__.setdefault("_opened", {}).pop(self._strip_protocol(path), None)
                if hit is not None and not refresh and version_id is None and time.monotonic() - hit[1] <= OPENED_SECONDS:
                    return hit[0]["LastModified"]
                return super().modified(path, version_id=version_id, refresh=refresh)

        _duckdb_fs_class = DuckDBS3FileSystem
    return _duckdb_fs_class(**{**storage_options(), **options})


class Listing:
    """One flat listing of a bucket's store prefix and an s3fs filesystem of its own that keeps it
    (and every listing after it) `seconds` long, for binding views: `exists(glob)` answers from the
    listing, and DuckDB given `fs` (`register`) binds every view with one listing per folder instead
    of a request per file (the catalog's build binds every view: several times faster on a bucket).
    Files written by others meanwhile show after that delay, so it is for binding views and
    analysts' sessions, never for the steps."""

    def __init__(self, root: AnyPath, seconds: float) -> None:
        self.fs = duckdb_filesystem(use_listings_cache=True, listings_expiry_time=seconds, skip_instance_cache=True)
        self.base = cast(UPath, root).path.rstrip("/")
        self.keys: list[str] = self.fs.find(self.base)  # one paginated listing; fills every folder's cache

    def exists(self, relative: str) -> bool:
        """Whether any key matches the glob `relative` under the root (`*` stays within a folder)."""
        from fsspec.utils import glob_translate

        pattern = re.compile(glob_translate(f"{self.base}/{relative}"))
        return any(pattern.match(key) for key in self.keys)


def listing(root: AnyPath, seconds: float) -> Listing | None:
    """A `Listing` of the bucket `root`, or None for a local root."""
    return Listing(root, seconds) if is_remote(root) else None


def polars_options(path: AnyPath) -> dict[str, str] | None:
    """polars' `storage_options` for reading or writing `url(path)`; None for a local path."""
    if not is_remote(path):
        return None
    opts = storage_options()
    out: dict[str, str] = {}
    if "key" in opts:
        out.update(aws_access_key_id=opts["key"], aws_secret_access_key=opts["secret"])
        if "token" in opts:
            out["aws_session_token"] = opts["token"]
    if "endpoint_url" in opts:
        out["aws_endpoint_url"] = opts["endpoint_url"]
        if opts["endpoint_url"].startswith("http://"):
            out["aws_allow_http"] = "true"
    if "client_kwargs" in opts:
        out["aws_region"] = opts["client_kwargs"]["region_name"]
    return out


def read_table(path: AnyPath, **options: Any) -> Any:
    """`pyarrow.parquet.read_table` of the Parquet file at `path` (columns=, filters=, ... as there),
    a remote one read through its filesystem (range reads: only the columns asked for)."""
    import pyarrow.parquet as pq

    if is_remote(path):
        remote = cast(UPath, path)
        return pq.read_table(remote.path, filesystem=remote.fs, **options)
    return pq.read_table(path, **options)


# --- conditional reads and writes ------------------------------------------------------------------

def _split(path: AnyPath) -> tuple[Any, str, str]:
    remote = cast(UPath, path)
    bucket, _, key = remote.path.partition("/")
    return remote.fs, bucket, key


def _lost_condition(exc: BaseException) -> bool:
    text = f"{exc} {exc.__cause__}"
    return any(s in text for s in ("PreconditionFailed", "pre-conditions", "412", "ConditionalRequestConflict"))


def local_etag(data: bytes) -> str:
    """The ETag of `data` as a single PUT gives it (the MD5 of the bytes, quoted); local files use it too."""
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


def get(path: AnyPath) -> tuple[bytes, str]:
    """(bytes, ETag) of the object or file at `path`, read in one request; FileNotFoundError if absent."""
    if not is_remote(path):
        data = Path(path).read_bytes()
        return data, local_etag(data)
    from fsspec.asyn import sync

    fs, bucket, key = _split(path)

    async def fetch() -> tuple[bytes, str]:
        reply = await fs._call_s3("get_object", Bucket=bucket, Key=key)
        body = reply["Body"]
        try:
            return await body.read(), reply["ETag"]
        finally:
            body.close()

    return sync(fs.loop, fetch)


def etag(path: AnyPath) -> str | None:
    """The ETag of `path`, or None if it does not exist (locally: computed from the bytes)."""
    if not is_remote(path):
        try:
            return local_etag(Path(path).read_bytes())
        except FileNotFoundError:
            return None
    try:
        return cast(UPath, path).fs.info(cast(UPath, path).path)["ETag"]
    except FileNotFoundError:
        return None


def put(path: AnyPath, data: bytes, *, create: bool = False, if_match: str | None = None) -> str:
    """Write `data` to `path` in one request and return its new ETag. `create=True`: only if `path`
    does not exist; `if_match`: only if its ETag is still that. A lost condition raises `Conflict`.
    Locally the check and the write (temporary file, fsync, rename) hold an flock beside the file."""
    if not is_remote(path):
        local = Path(path)
        if not create and if_match is None:
            _write_local(local, data)
            return local_etag(data)
        with _local_lock(local):
            current = etag(local)
            if (create and current is not None) or (if_match is not None and current != if_match):
                raise Conflict(str(local))
            _write_local(local, data)
        return local_etag(data)
    fs, bucket, key = _split(path)
    cond = {"IfNoneMatch": "*"} if create else {"IfMatch": if_match} if if_match is not None else {}
    try:
        reply = fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **cond)
    except (OSError, FileNotFoundError) as exc:
        if cond and (_lost_condition(exc) or isinstance(exc, FileNotFoundError)):
            raise Conflict(str(path)) from exc
        raise
    return reply["ETag"]


def delete(path: AnyPath, *, if_match: str | None = None) -> None:
    """Delete `path` (nothing if absent); with `if_match`, only while its ETag is that (else `Conflict`)."""
    if not is_remote(path):
        local = Path(path)
        if if_match is None:
            local.unlink(missing_ok=True)
            return
        with _local_lock(local):
            if etag(local) != if_match:
                raise Conflict(str(local))
            local.unlink()
        return
    fs, bucket, key = _split(path)
    try:
        fs.call_s3("delete_object", Bucket=bucket, Key=key, **({"IfMatch": if_match} if if_match else {}))
    except (OSError, FileNotFoundError) as exc:
        if if_match and (_lost_condition(exc) or isinstance(exc, FileNotFoundError)):
            raise Conflict(str(path)) from exc
        if not isinstance(exc, FileNotFoundError):
            raise


def cas_update(path: AnyPath, change: Callable[[bytes | None], bytes]) -> bytes:
    """Replace the object at remote `path` by `change(old bytes, or None if absent)`, safely against
    other processes doing the same: a compare-and-swap loop on the ETag (re-read and retry on
    `Conflict`). `change` may run more than once; returns what was written. `store.update` is the
    one to call: it does this for a remote path and the same under an flock locally."""
    while True:
        try:
            old, tag = get(path)
        except FileNotFoundError:
            old, tag = None, None
        new = change(old)
        try:
            put(path, new, create=tag is None, if_match=tag)
            return new
        except Conflict:
            continue


def _write_local(path: Path, data: bytes) -> None:
    """`data` to the local file `path` through a temporary file beside it, fsync and rename (the
    local half of `put`; `store.write_bytes_atomic` is the same for the store's tables, with its
    fault points)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def flock(lock: Path, mode: int = fcntl.LOCK_EX) -> Iterator[None]:
    """Hold `fcntl.flock` `mode` (LOCK_EX or LOCK_SH) on the local file `lock` (created if missing)
    for the block: what a local store locks with (`store.exclusive`, `store.shared`)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+b") as fh:
        fcntl.flock(fh.fileno(), mode)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _local_lock(path: Path) -> AbstractContextManager[None]:
    return flock(path.parent / f".{path.name}.lock")


# --- lease -------------------------------------------------------------------------------------------

LEASE_TTL = 60.0
"""Seconds a lease lives without renewal (FLYWHEEL_LEASE_SECONDS); the holder's heartbeat renews it
every third of that. A holder that dies keeps others waiting this long at most."""


def lease_ttl() -> float:
    """FLYWHEEL_LEASE_SECONDS (read at call time), default `LEASE_TTL`; at least 1."""
    raw = os.environ.get("FLYWHEEL_LEASE_SECONDS", "").strip()
    if not raw:
        return LEASE_TTL
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"FLYWHEEL_LEASE_SECONDS must be a number of seconds (at least 1), got {raw!r}") from None
    if not value >= 1.0 or value == float("inf"):
        raise ValueError(f"FLYWHEEL_LEASE_SECONDS must be a number of seconds (at least 1), got {raw!r}")
    return value


@contextmanager
def lease(lock: AnyPath, ttl: float | None = None, poll: float = 0.05) -> Iterator[None]:
    """Hold the lease object `lock` (exclusive, blocking) for the block; see the module docstring.
    `ttl` defaults to `lease_ttl()`.

    Raises `Conflict` on leaving the block if the lease was taken over meanwhile (the heartbeat
    could not renew it in time, e.g. the process was paused past `ttl`): the block's work did not
    run alone, and the step should be run again."""
    token = uuid.uuid4().hex
    life = lease_ttl() if ttl is None else ttl

    def body() -> bytes:
        return json.dumps({"owner": token, "pid": os.getpid(), "expires": time.time() + life}).encode()

    wait = poll
    while True:
        try:
            tag = put(lock, body(), create=True)
            break
        except Conflict:
            pass
        try:
            held, held_tag = get(lock)
        except FileNotFoundError:
            continue  # released meanwhile: try to create it again
        if _expires(held) < time.time():
            try:
                tag = put(lock, body(), if_match=held_tag)
                log.warning("lease %s: took over an expired lease (%s)", lock, held[:200].decode(errors="replace"))
                break
            except Conflict:
                pass
        time.sleep(wait)
        wait = min(1.0, wait * 1.5)
    state: dict[str, Any] = {"tag": tag, "lost": False}
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(life / 3):
            try:
                state["tag"] = put(lock, body(), if_match=state["tag"])
            except Conflict:
                state["lost"] = True
                log.error("lease %s was taken over by another process while held", lock)
                return
            except Exception:  # noqa: BLE001 - a failed renewal is retried at the next beat
                log.warning("lease %s: renewal failed; retried", lock, exc_info=True)

    beat = threading.Thread(target=heartbeat, name=f"lease-{lock.name}", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        if not state["lost"]:
            try:
                delete(lock, if_match=state["tag"])
            except Conflict:
                state["lost"] = True
    if state["lost"]:
        raise Conflict(f"lease {lock} was lost while held: another process may have done the same work")


def _expires(body: bytes) -> float:
    try:
        return float(json.loads(body)["expires"])
    except (ValueError, KeyError, TypeError):
        return 0.0  # unreadable: treated as expired
