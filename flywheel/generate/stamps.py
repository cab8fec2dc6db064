"""Identifiers and timestamps, vectorised.

Ids are unique by construction: a distinct 64-bit key per record (family, day, index) is XOR-ed
with a seed-derived salt and passed through the splitmix64 finaliser, a bijection, so two keys never
give the same id, and the ids look random. Timestamps are RFC 3339 strings written in a local
offset (mostly `Z`), with or without milliseconds; the instant (and so the UTC date) is unchanged.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

DAY_MS = 86_400_000

# Id families: each owns its own key space.
EVENT_IDS, INTERVENTION_IDS, BAD_EVENT_IDS, BAD_INTERVENTION_IDS, TRACE_HI, TRACE_LO = 1, 2, 3, 4, 5, 6

_HEX = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def mix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: a bijection of uint64 that scatters nearby keys."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


def hex16(x: np.ndarray) -> np.ndarray:
    """uint64 values as rows of 16 lower-case hex ASCII bytes, shape (n, 16), dtype uint8."""
    b = np.ascontiguousarray(x.astype(">u8")).view(np.uint8).reshape(-1, 8)
    return np.ascontiguousarray(_HEX[b]).view(np.uint8).reshape(-1, 16)


def _strings(prefix: str, body: np.ndarray) -> pl.Series:
    """A string Series of `prefix` + each row of the uint8 matrix `body` (fixed width, ASCII)."""
    n, width = body.shape
    pre = np.frombuffer(prefix.encode(), dtype=np.uint8)
    data = np.concatenate([np.broadcast_to(pre, (n, len(pre))), body], axis=1) if len(pre) else body
    size = data.shape[1]
    offs = (np.arange(n + 1, dtype=np.int64) * size).astype(np.int32)
    arr = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offs), pa.py_buffer(np.ascontiguousarray(data).tobytes())])
    return pl.Series(arr)


def _keys(seed: int, family: int, day: int, index: np.ndarray) -> np.ndarray:
    salt = mix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    key = (np.uint64(family) << np.uint64(56)) | (np.uint64(day) << np.uint64(36)) | index.astype(np.uint64)
    return mix64(key ^ salt)


def ids(seed: int, family: int, day: int, index: np.ndarray, prefix: str) -> pl.Series:
    """Unique ids `prefix` + 16 hex for (family, day, index); index < 2**36, day < 2**20."""
    return _strings(prefix, hex16(_keys(seed, family, day, index)))


def trace_ids(seed: int, day: int, index: np.ndarray) -> pl.Series:
    """W3C-style 32-hex trace ids."""
    hi = hex16(_keys(seed, TRACE_HI, day, index))
    lo = hex16(_keys(seed, TRACE_LO, day, index))
    return _strings("", np.concatenate([hi, lo], axis=1))


def labels(codes: np.ndarray, names: tuple[str, ...] | list[str]) -> pl.Series:
    """names[codes] as a string Series (fast: a gather, no Python strings)."""
    return pl.Series(list(names), dtype=pl.String).gather(np.asarray(codes, dtype=np.int64))


def format_timestamps(ms: np.ndarray, offset_min: np.ndarray, with_ms: np.ndarray, plus_zero: np.ndarray) -> pl.Series:
    """RFC 3339 strings of UTC epoch milliseconds `ms`, written in the given local offsets.

    `with_ms` adds `.mmm`; a zero offset is written `Z`, or `+00:00` where `plus_zero`.
    """
    local = ms.astype(np.int64) + offset_min.astype(np.int64) * 60_000
    uniq = np.unique(offset_min).tolist()
    names = {o: ("-" if o < 0 else "+") + f"{abs(o) // 60:02d}:{abs(o) % 60:02d}" for o in uniq}
    frame = pl.DataFrame({
        "t": pl.Series(local, dtype=pl.Int64).cast(pl.Datetime("ms")),
        "frac": local % 1000,
        "ms": with_ms,
        "off": offset_min.astype(np.int64),
        "pz": plus_zero,
    })
    suffix = pl.col("off").replace_strict(names, return_dtype=pl.String)
    out = frame.select(pl.concat_str([
        pl.col("t").dt.strftime("%Y-%m-%dT%H:%M:%S"),
        pl.when(pl.col("ms")).then(pl.lit(".") + pl.col("frac").cast(pl.String).str.zfill(3)).otherwise(pl.lit("")),
        pl.when(pl.col("off") != 0).then(suffix).when(pl.col("pz")).then(pl.lit("+00:00")).otherwise(pl.lit("Z")),
    ]).alias("s"))
    return out.to_series()


def offsets(rng: np.random.Generator, n: int, table: tuple[tuple[int, float], ...]) -> np.ndarray:
    """n UTC offsets (minutes) drawn from (offset, share) pairs."""
    values = np.array([o for o, _ in table], dtype=np.int64)
    p = np.array([w for _, w in table], dtype=float)
    return values[rng.choice(len(values), size=n, p=p / p.sum())]
