"""The run's deadline: every storage call of a run counts against the run's time budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Deadline:
    """A moment on the caller's monotonic *clock* (seconds)."""

    at: float
    clock: Callable[[], float] = field(default=time.monotonic)

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    def left(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - self.clock()

    def passed(self) -> bool:
        return self.left() <= 0
