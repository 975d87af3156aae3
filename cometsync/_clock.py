"""Time behind a protocol, so that every wait can be faked in tests and simulations."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    """What cometsync needs of time: a monotonic reading, the wall clock, and a sleep."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for latencies, deadlines, windows)."""
        ...

    def time(self) -> float:
        """Seconds since the epoch (only for Retry-After given as an HTTP date)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()
