"""Worker processes that die with the process that started them.

flywheel starts helper processes for CPU-bound Python work (the landing sync's blocks, the edit
diffs): `spawned_pool` gives a `ProcessPoolExecutor` of spawned processes ("spawn": safe in a
threaded parent such as a Dagster run) whose workers the kernel kills when their parent dies. A
run killed mid-way (SIGKILL, out of memory) then leaves no worker behind that would hold a lock,
keep its parent's output pipes open or publish after the run has been started again."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor


def spawned_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` spawned processes that die with this one (`die_with_parent`)."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=die_with_parent, initargs=(os.getpid(),))


def die_with_parent(parent: int) -> None:
    """Worker initializer: have the kernel SIGKILL this process when its parent dies (Linux
    prctl PR_SET_PDEATHSIG), and exit now if the parent is already gone. Elsewhere: nothing."""
    if sys.platform != "linux":
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform says, else the count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
