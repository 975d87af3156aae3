"""The ``Guards`` seam the call flow consults, and helpers shared by the protections.

The flow asks ``admit`` before trying a model, ``allow_retry`` before sleeping for a retry,
and tells ``observe`` every classified outcome. Drivers wrap each send in ``slot`` (real
threads) or pair ``try_acquire``/``release`` (a virtual clock, which must never block), so a
limiter can bound what is in flight. Implementations are thread-safe and read time only from
the ``now`` they are given (monotonic seconds) or from their injected clock.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any, Dict, Iterator, Optional

from .._errors import ConfigError
from .._policy import Classification

__all__ = ["EVERY_MODEL", "NO_GUARDS", "NO_MODEL", "Guards", "logger", "positive", "stats_key"]

logger = logging.getLogger("cometsync")

#: The ``stats()`` key of a limit for every model not named (``rate_limit=RateLimit(...)``).
EVERY_MODEL = "*"
#: The ``stats()`` key of calls that name no model (``models.list()``, the catalog).
NO_MODEL = "(no model)"


def stats_key(model: Optional[str]) -> str:
    """How ``stats()`` names a model: never the string ``"None"``."""
    return NO_MODEL if model is None else model


class Guards:
    """The protections' interface; this base class protects nothing."""

    def on_call(self, now: float) -> None:
        """A new call starts (retry budgets count calls)."""

    def admit(self, model: Optional[str], now: float) -> Optional[str]:
        """None when ``model`` may be tried now, else the reason to skip it."""
        return None

    def ready_in(self, model: Optional[str], now: float) -> Optional[float]:
        """Seconds until ``admit`` may accept ``model`` again; None when it cannot tell."""
        return None

    def allow_retry(self, model: Optional[str], now: float) -> bool:
        """Whether a retry may be spent now; called only when the policy wants one."""
        return True

    def refuse_retry(self, model: Optional[str], now: float) -> Optional[str]:
        """Why ``model`` must not be asked again by a call that just failed on it, or None.

        A breaker that is open or probing refuses: a probe is one attempt, and the call
        whose failure tripped the breaker sends nothing more while it cools down.
        """
        return None

    def observe(self, model: Optional[str], verdict: Classification, now: float) -> None:
        """Learn from an attempt's outcome."""

    def try_acquire(self, model: Optional[str], now: float) -> bool:
        """Take an in-flight slot for ``model`` if one is free now (never blocks)."""
        return True

    def acquire_in(self, model: Optional[str], now: float) -> Optional[float]:
        """After a refused ``try_acquire``: seconds until pacing allows one, None: a release."""
        return None

    def release(self, model: Optional[str], now: float) -> None:
        """Give back a slot taken by ``try_acquire``."""

    @contextlib.contextmanager
    def slot(
        self, model: Optional[str], timeout: Optional[float] = None, tokens: int = 0
    ) -> Iterator[None]:
        """Hold an in-flight slot for ``model`` while one request (``tokens`` estimated) is sent."""
        yield

    def settle(self, model: Optional[str], reserved: int, used: int) -> None:
        """Correct a token reservation made by ``slot`` to what was used (0: nothing sent)."""

    def stats(self) -> Dict[str, Any]:
        """A snapshot of the protections' state (plain data)."""
        return {}


NO_GUARDS = Guards()


def positive(owner: str, name: str, value: Any, *, zero: bool = False) -> None:
    """Refuse a setting that is not a finite number > 0 (>= 0 with ``zero``), naming it."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise ConfigError(f"{owner}.{name} must be a finite number {bound}, got {value!r}")
