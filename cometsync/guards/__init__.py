"""Shared protections consulted by the call flow: the ``Guards`` seam, and the default-on
protections, one module each.

- ``budget``: ``RetryBudget``, whether a retry may be spent (Finagle/Envoy-style budget);
- ``limiter``: ``AdaptiveLimiter``, how many requests may be in flight per model, and when
  the next may leave (AIMD on 429/503s, plus the server's Retry-After and rate-limit headers);
- ``cooldowns``: ``Cooldowns``, whether a model may be tried at all (a circuit breaker);
- ``protections``: ``Protections`` (which of them a client runs) and ``ProtectiveGuards``
  (their state behind the hooks, for one client).

Each protection keeps its state in its own small class (``BudgetState``, ``LimiterState``,
``CooldownState``). Rate limits and the protections shared by many processes add:

- ``ratelimit``: ``RateLimit`` (GCRA pacing) and the token estimate of a request;
- ``admission``: the shared decisions (admission, observation, budget) as pure functions
  over a state dict, the model a virtual-time engine may run; ``_lua`` holds their twins;
- ``store``: where that state lives, ``MemoryStore`` or ``RedisStore``;
- ``shared``: ``SharedGuards``, the store's decisions layered on ``ProtectiveGuards``.
"""

from __future__ import annotations

from ._base import NO_GUARDS, Guards
from .budget import RetryBudget
from .cooldowns import Cooldowns
from .limiter import AdaptiveLimiter
from .protections import Protections, ProtectiveGuards
from .ratelimit import RateLimit

__all__ = [
    "NO_GUARDS",
    "AdaptiveLimiter",
    "Cooldowns",
    "Guards",
    "Protections",
    "ProtectiveGuards",
    "RateLimit",
    "RetryBudget",
]
