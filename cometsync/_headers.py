"""Pure readings of response headers: Retry-After, the rate-limit headers, their durations.

Split from ``_policy`` (which re-exports them) so the decisions and the header formats each
stay small; nothing here does I/O, keeps state or reads the clock (``now`` is passed in).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Mapping, Optional

__all__ = ["RateLimitInfo", "parse_duration", "parse_rate_limit", "parse_retry_after"]


@dataclass(frozen=True)
class RateLimitInfo:
    """The ``x-ratelimit-*-requests`` (or ``-tokens``) headers: limit, left, seconds until full."""

    limit: int
    remaining: int
    reset: float

    @property
    def seconds_per_request(self) -> float:
        """How often one request's worth of quota comes back (the server's refill pace)."""
        return self.reset / max(1, self.limit - self.remaining)


def parse_retry_after(headers: Mapping[str, str], now: float) -> Optional[float]:
    """The server's requested wait in seconds, or None.

    ``retry-after-ms`` wins, then ``retry-after`` as seconds, then as an HTTP date (relative
    to ``now``, seconds since the epoch). Garbage, NaN and negative values give None or 0.
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        value = _finite(raw_ms)
        if value is not None:
            return max(0.0, value / 1000.0)
    raw = headers.get("retry-after")
    if raw is None:
        return None
    value = _finite(raw)
    if value is not None:
        return max(0.0, value)
    try:
        when = parsedate_to_datetime(raw.strip())
        if when is None or when.tzinfo is None:  # RFC 9110 dates are GMT; naive means garbage
            return None
        wait = when.timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None  # year 99999999999 overflows datetime: garbage like any other
    return max(0.0, wait) if math.isfinite(wait) else None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> Optional[float]:
    """Seconds in ``120ms``, ``1.5s``, ``6m0s``, ``1h2m`` or a bare number; None for garbage."""
    text = text.strip()
    bare = _finite(text)
    if bare is not None:
        return bare if bare >= 0 else None
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def parse_rate_limit(headers: Mapping[str, str], kind: str = "requests") -> Optional[RateLimitInfo]:
    """The request-rate (or ``kind="tokens"``) headers, or None if any is missing."""
    raw_limit = headers.get(f"x-ratelimit-limit-{kind}")
    raw_remaining = headers.get(f"x-ratelimit-remaining-{kind}")
    if raw_limit is None or raw_remaining is None:  # the common case: no exception to pay for
        return None
    try:
        limit = int(raw_limit.strip())
        remaining = int(raw_remaining.strip())
    except (ValueError, AttributeError):
        return None
    reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}", ""))
    if reset is None or limit < 1 or remaining < 0:
        return None
    return RateLimitInfo(limit=limit, remaining=min(remaining, limit), reset=reset)


def _finite(text: str) -> Optional[float]:
    try:
        value = float(text.strip())
    except (AttributeError, ValueError):
        return None
    return value if math.isfinite(value) else None
