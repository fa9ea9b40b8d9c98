"""The worker processes that decode images for `prepare`, which end when prepare's process ends.

A parent killed with SIGKILL runs no cleanup, and forked workers hold the write end of their
own task pipe, so without help they would wait for work for ever. Each worker therefore asks
Linux to kill it when its parent dies (prctl PR_SET_PDEATHSIG) and, everywhere, watches its
parent's pid from a thread and exits within WATCH_SECONDS once the parent is gone. Ctrl-C is
left to the parent, which stops the pool and deletes the partial cache.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCH_SECONDS = 0.5


def decoding_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` processes that ignore Ctrl-C and end with this process."""
    # fork: workers need only Pillow/simplejpeg, and a fresh interpreter would import torch again.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method), initializer=_start_worker,
                               initargs=(os.getpid(),))


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _start_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # no usable libc: the watcher below still ends the worker
            pass
    threading.Thread(target=_exit_when_orphaned, args=(parent,), name="watch-parent", daemon=True).start()


def _exit_when_orphaned(parent: int) -> None:
    """Exit the worker once its parent is gone (it is then re-parented, so getppid changes)."""
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    os._exit(1)
