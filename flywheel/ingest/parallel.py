"""Decode and validate a large JSON Lines file's blocks in worker processes, in order.

Parsing JSON and building rows is Python work that holds the GIL, so on a 2-core machine one
process leaves a core idle. For a big JSON Lines file (`staging.PARALLEL_MIN_BYTES` and up) the
main process decompresses the file and cuts it into blocks of whole lines (`batches.line_blocks`);
worker processes turn each block into staged Arrow tables and quarantine rows
(`staging.stage_chunk`, the same code the serial path runs); the main process takes the results
back in block order and writes them. The output is therefore identical to the serial path's (held
equal by `tests/test_ingest_fastpath.py`). At most `workers + 1` blocks (16 MB each) are in flight.
"""

from __future__ import annotations

import gc
import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import flywheel.ingest.readers as readers
from flywheel.ingest.batches import line_blocks

Piece = tuple[str, int, Any, list[dict[str, Any]]]  # kind, records read, staged table or None, quarantine rows


def pieces(path: Path, kind: str, rel: str, seq: int, key: bytes, workers: int) -> Iterator[Piece]:
    """The staged pieces of the JSON Lines file at `path`, in file order, computed by `workers` processes."""
    limit = readers.MAX_RECORD_BYTES
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        inflight: deque[Future[list[Piece]]] = deque()
        try:
            for first, block in line_blocks(path):
                inflight.append(pool.submit(stage_block, kind, first, block, rel, seq, key, limit))
                del block
                while len(inflight) > workers:
                    yield from inflight.popleft().result()
            while inflight:
                yield from inflight.popleft().result()
        finally:
            for future in inflight:
                future.cancel()


def stage_block(kind: str, first: int, block: bytes, rel: str, seq: int, key: bytes, limit: int) -> list[Piece]:
    """Worker side: the staged pieces of one block of lines (first line number `first`)."""
    from flywheel.ingest.batches import jsonl_chunks
    from flywheel.ingest.staging import stage_chunk

    readers.MAX_RECORD_BYTES = limit  # a spawned worker does not see the parent's setting
    was = gc.isenabled()
    gc.disable()  # see sync._no_gc
    try:
        out: list[Piece] = []
        pseudonyms: dict[str, str] = {}
        for chunk in jsonl_chunks(iter([(first, block)]), kind):
            quarantine: list[dict[str, Any]] = []
            table = stage_chunk(chunk, rel, seq, quarantine, key, pseudonyms)
            out.append((chunk.kind, len(chunk), table, quarantine))
        return out
    finally:
        if was:
            gc.enable()
