"""Diff the edits of a run's later days in a helper process while the failure model builds the
nights in order.

A night's failure step is two kinds of work: the day's edit frame (`documents.day_edits`: every
changed draft diffed, Python per edit, independent of other days) and the night's model step
(`model.advance`, which needs the night before it). A run over several days (a backfill, a night
that rebuilds the days late reviews changed) used to do both in one process, one day after the
other. `EditsAhead` starts a helper process that computes the edit frames of the days after the
first while the calling process runs the nights; each night then takes its day's frame from the
helper instead of diffing it.

The helper only computes: it reads the day's rows from the store and returns the frame with the
fingerprint of the rows it read (`documents.prepare_edit_frame`). The calling process keeps the
frame in the store under the `edits` lock, as it would have kept its own, after checking that the
fingerprint is that of the rows it read itself; a frame computed from other rows (the day was
rebuilt meanwhile), a helper that failed or died, or a day the helper has not begun is computed by
the calling process, as without a helper. The tables built are therefore the same with or without
it, and the store's writes happen in the same process in the same order (the fault-injection
tests count them). The helper dies with the calling process (`processes.spawned_pool`).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterable
from concurrent.futures import Future
from datetime import date
from types import TracebackType

import polars as pl

from flywheel.config import Settings
from flywheel.failures.documents import prepare_edit_frame
from flywheel.processes import spawned_pool, usable_cores

log = logging.getLogger(__name__)

# Helpers at most: one keeps a 2-core machine busy (the calling process runs the model meanwhile),
# and each holds a day's rows; the calling process takes one frame per night.
MAX_HELPERS = 2


class EditsAhead:
    """The edit frames of `days` after the first, computed ahead in `workers` helper processes
    (default: one per core beyond the first, at most `MAX_HELPERS`; none for a single day or inside a
    daemonic process, which may not start any). Use as a context manager; pass it to
    `build_failures(..., ahead=...)` for each day in order."""

    def __init__(self, settings: Settings, days: Iterable[date], workers: int | None = None):
        ordered = sorted(set(days))
        if workers is None:
            workers = min(MAX_HELPERS, usable_cores() - 1)
        if multiprocessing.current_process().daemon:
            workers = 0
        workers = min(workers, len(ordered) - 1)
        self._futures: dict[date, Future] = {}
        self._pool = spawned_pool(workers) if workers > 0 else None
        if self._pool is not None:
            # the first day is the calling process's own: it would wait for the helper to start
            self._futures = {day: self._pool.submit(prepare_edit_frame, settings, day) for day in ordered[1:]}

    def take(self, day: date, key: str) -> pl.DataFrame | None:
        """The edit frame of `day` computed ahead from rows whose fingerprint is `key`; None when there
        is none to take (no helper for the day, not begun yet: then cancelled, failed, computed from
        other rows, or a kept frame was already current when the helper looked). Waits for a day
        the helper is computing."""
        future = self._futures.pop(day, None)
        if future is None or future.cancel():
            return None
        try:
            got = future.result()
        except Exception as exc:  # noqa: BLE001 - the caller computes the day itself
            log.warning("the edit frame of %s computed ahead failed (%s: %s); computing it here", day,
                        type(exc).__name__, exc)
            return None
        if got is None or got[0] != key:
            return None
        return got[1]

    def close(self) -> None:
        """Cancel what has not begun and wait for what has (at most one day per helper)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._futures.clear()

    def __enter__(self) -> EditsAhead:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
