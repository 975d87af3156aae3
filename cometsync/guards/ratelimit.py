"""Client-side rate limits of a key: the configuration, and what a request is reckoned to cost.

A limit is paced, not a minute-long burst (GCRA, the algorithm of redis-cell and of ATM
traffic shaping). With an emission interval ``T = 60 / rpm`` seconds per request (or
``60 / tpm`` per token), a request costing ``c`` units is admitted when, after adding it, the
bucket's theoretical arrival time is at most ``max(1 s, c * T)`` ahead of now. So the burst is
one second's worth of the rate, and never less than one request: 600 rpm allows 10 at once,
then one every 100 ms; 30 rpm allows 1, then one every 2 s; a request bigger than a second of
the token rate goes alone when the bucket is full.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Union

from .._errors import ConfigError

__all__ = [
    "DEFAULT_COMPLETION_RESERVE",
    "RateLimit",
    "RateLimits",
    "coerce_rate_limits",
    "estimate_tokens",
]

#: Completion tokens reserved for a request that sets no ``max_tokens`` (corrected by usage).
DEFAULT_COMPLETION_RESERVE = 256

#: Characters per token assumed for the prompt estimate (OpenAI's rule of thumb for English).
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class RateLimit:
    """The most a key may send: requests and/or tokens per minute, paced (see module doc).

    ``RateLimit()`` (neither) sets no limit of its own: only the limits the server announces in
    ``x-ratelimit-*`` headers are paced to.

    Args:
        rpm: requests per minute, or None for no request limit.
        tpm: tokens per minute (prompt + completion), or None for no token limit.

    Raises:
        ConfigError: a value that is not a finite number > 0.
    """

    rpm: Optional[float] = None
    tpm: Optional[float] = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is None:
                continue
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value <= 0:
                raise ConfigError(
                    f"RateLimit.{name} must be a finite number > 0 or None, got {value!r}"
                )


#: Limits per model; the key ``None`` applies to every model not named.
RateLimits = Dict[Optional[str], RateLimit]


def coerce_rate_limits(value: Union[RateLimit, Mapping[Any, Any], None]) -> RateLimits:
    """``rate_limit=`` as given to the Client: one limit for every model, or one per model.

    Raises:
        ConfigError: neither a ``RateLimit`` nor a dict of model id to ``RateLimit``.
    """
    if value is None:
        return {}
    if isinstance(value, RateLimit):
        return {None: value}
    if isinstance(value, Mapping):
        out: RateLimits = {}
        for model, limit in value.items():
            if not isinstance(model, str) or not model.strip():
                raise ConfigError(f"rate_limit keys must be model id strings, got {model!r}")
            if not isinstance(limit, RateLimit):
                raise ConfigError(
                    f"rate_limit[{model!r}] must be a cometsync.RateLimit, got {limit!r}"
                )
            out[model] = limit
        return out
    raise ConfigError(
        f"rate_limit must be a cometsync.RateLimit or a dict {{model: RateLimit}}, got {value!r}"
    )


def _text_chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Mapping):
        return sum(_text_chars(v) for k, v in value.items() if k in ("content", "text"))
    if isinstance(value, (list, tuple)):
        return sum(_text_chars(v) for v in value)
    return 0


def estimate_tokens(body: Optional[Mapping[str, Any]]) -> int:
    """Tokens to reserve before sending ``body``: prompt estimate + completion allowance.

    The prompt is reckoned at one token per 4 characters of its text (plus 4 per message for
    the chat framing); the completion at ``max_completion_tokens`` or ``max_tokens``, else
    ``DEFAULT_COMPLETION_RESERVE``. Embeddings reserve their input only. The reservation is
    corrected to the real ``usage`` when a non-streamed answer arrives, refunded on failure.
    """
    if not body:
        return 0
    if "messages" in body:
        messages = body.get("messages")
        count = len(messages) if isinstance(messages, (list, tuple)) else 0
        prompt = _text_chars(messages) // CHARS_PER_TOKEN + 4 * count
        cap = body.get("max_completion_tokens", body.get("max_tokens"))
        ok = isinstance(cap, int) and not isinstance(cap, bool) and cap >= 0
        completion = cap if ok else DEFAULT_COMPLETION_RESERVE
        return int(prompt + completion)
    if "input" in body:
        return max(1, _text_chars(body.get("input")) // CHARS_PER_TOKEN)
    return 0
