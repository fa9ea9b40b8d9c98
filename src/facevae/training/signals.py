"""Ctrl-C (SIGINT) and SIGTERM during training: finish the step, save, stop."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm


class StopRequest:
    """Set by the first Ctrl-C or SIGTERM; a second Ctrl-C raises KeyboardInterrupt at once."""

    def __init__(self, announce: bool) -> None:
        self.requested = False
        self.announce = announce  # print the "Stopping" line (rank 0 only)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        if self.announce:
            tqdm.write("Stopping: saving a checkpoint after this step (Ctrl-C again to quit at once)")

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Handle the signals inside the block (main thread only: Python delivers signals there)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
