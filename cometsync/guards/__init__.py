"""Shared protections consulted by the call flow: the ``Guards`` seam, and the default-on
protections, one module each.

- ``budget``: ``RetryBudget``, whether a retry may be spent (Finagle/Envoy-style budget);
- ``limiter``: ``AdaptiveLimiter``, how many requests may be in flight per model, and when
  the next may leave (AIMD on 429/503s, plus the server's Retry-After and rate-limit headers);
- ``cooldowns``: ``Cooldowns``, whether a model may be tried at all (a circuit breaker);
- ``protections``: ``Protections`` (which of them a client runs) and ``ProtectiveGuards``
  (their state behind the hooks, for one client).

Each protection keeps its state in its own small class (``BudgetState``, ``LimiterState``,
``CooldownState``): that is the seam where a shared store can later hold it.
"""

from __future__ import annotations

from ._base import NO_GUARDS, Guards
from .budget import RetryBudget
from .cooldowns import Cooldowns
from .limiter import AdaptiveLimiter
from .protections import Protections, ProtectiveGuards

__all__ = [
    "NO_GUARDS",
    "AdaptiveLimiter",
    "Cooldowns",
    "Guards",
    "Protections",
    "ProtectiveGuards",
    "RetryBudget",
]
