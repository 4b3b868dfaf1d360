"""A manual clock for tests: the waits the code under test asks for are recorded, not taken."""

from __future__ import annotations

import threading
import time


class ManualClock:
    """Time that moves only when someone sleeps (``monotonic()`` / ``sleep()``, the
    ``shared.retry.Clock`` protocol); every wait is recorded in :attr:`sleeps`.

    ``real=True``: real time plus the skipped waits, so request timeouts against a local server
    stay real while back-off and ``Retry-After`` waits are skipped.
    ``frozen=True``: time stands still; waits are recorded against the same instant.
    """

    def __init__(self, *, real: bool = False, frozen: bool = False) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []
        self._real = real
        self._frozen = frozen
        self._lock = threading.Lock()

    @property
    def now(self) -> float:
        return (time.monotonic() if self._real else 0.0) + self.offset

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            if not self._frozen:
                self.offset += seconds
