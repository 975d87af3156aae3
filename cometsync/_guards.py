"""Shared protections consulted by the call flow: the hooks, and a do-nothing default.

The flow asks ``admit`` before trying a model, ``allow_retry`` before sleeping for a retry,
and tells ``observe`` every classified outcome. Drivers wrap each send in ``slot`` so a
limiter can bound what is in flight. Implementations must be thread-safe and read time only
from the ``now`` they are given (monotonic seconds), so a virtual clock can drive them.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from ._policy import Classification

__all__ = ["NO_GUARDS", "Guards"]


class Guards:
    """The protections' interface; this base class protects nothing."""

    def on_call(self, now: float) -> None:
        """A new call starts (retry budgets count calls)."""

    def admit(self, model: Optional[str], now: float) -> Optional[str]:
        """None when ``model`` may be tried now, else the reason to skip it."""
        return None

    def allow_retry(self, model: Optional[str], now: float) -> bool:
        """Whether a retry may be spent now; called only when the policy wants one."""
        return True

    def observe(self, model: Optional[str], verdict: Classification, now: float) -> None:
        """Learn from an attempt's outcome."""

    @contextlib.contextmanager
    def slot(self, model: Optional[str], timeout: Optional[float] = None) -> Iterator[None]:
        """Hold an in-flight slot for ``model`` while one request is sent (real threads only)."""
        yield


NO_GUARDS = Guards()
