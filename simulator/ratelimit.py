"""The simulator's rate limiter: per-key token buckets for requests and tokens per minute,
plus a cap on concurrent requests, with the ``x-ratelimit-*`` headers the real gateway sends.

Not locked by itself: :class:`simulator.core.Core` calls it under its lock.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from . import wire
from .scenario_types import RateLimits

__all__ = ["Bucket", "KeyState", "RateLimiter"]


class Bucket:
    """A token bucket: ``capacity`` tokens, refilled at ``capacity / 60`` per second."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, capacity: int, now: float) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / 60.0
        self.tokens = float(capacity)
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, cost: float) -> float:
        """Seconds until ``cost`` tokens are there (a cost above capacity waits for a full one)."""
        return max(0.0, (min(cost, self.capacity) - self.tokens) / self.rate)

    def take(self, cost: float) -> None:
        self.tokens -= min(cost, self.capacity)

    def headers(self, kind: str, out: Dict[str, str]) -> None:
        out[f"x-ratelimit-limit-{kind}"] = str(int(self.capacity))
        out[f"x-ratelimit-remaining-{kind}"] = str(max(0, int(self.tokens)))
        reset = (self.capacity - self.tokens) / self.rate
        out[f"x-ratelimit-reset-{kind}"] = wire.format_duration(reset)


class KeyState:
    """One API key's limiter state."""

    __slots__ = ("ends", "requests", "tokens")

    def __init__(self, limits: RateLimits, now: float) -> None:
        self.requests = Bucket(limits.rpm, now) if limits.rpm else None
        self.tokens = Bucket(limits.tpm, now) if limits.tpm else None
        self.ends: Dict[int, float] = {}  # seq -> planned end, of the key's requests in flight


class RateLimiter:
    """Every key's buckets and requests in flight; a key's state is made on its first request."""

    def __init__(self) -> None:
        self.keys: Dict[str, KeyState] = {}

    def clear(self) -> None:
        """Forget every key (a reset or a new scenario)."""
        self.keys = {}

    def admit(
        self, limits: RateLimits, key: str, now: float, cost: int, out: Dict[str, str]
    ) -> Optional[Tuple[float, str]]:
        """Admit (taking tokens) or return (seconds until capacity returns, which limit).

        Either way the buckets' ``x-ratelimit-*`` headers are written into ``out``.
        """
        if not (limits.rpm or limits.tpm or limits.concurrency):
            return None
        state = self.keys.get(key)
        if state is None:
            state = self.keys[key] = KeyState(limits, now)
        wait, which = 0.0, ""
        if state.requests is not None:
            state.requests.refill(now)
            w = state.requests.wait(1)
            if w > wait:
                wait, which = w, f"requests per minute (limit {limits.rpm})"
        if state.tokens is not None:
            state.tokens.refill(now)
            w = state.tokens.wait(cost)
            if w > wait:
                wait, which = w, f"tokens per minute (limit {limits.tpm}, requested {cost})"
        if limits.concurrency and len(state.ends) >= limits.concurrency:
            w = max(0.001, min(state.ends.values()) - now)
            if w > wait:
                wait, which = w, f"concurrent requests (limit {limits.concurrency})"
        if wait <= 0:
            if state.requests is not None:
                state.requests.take(1)
            if state.tokens is not None:
                state.tokens.take(cost)
        if state.requests is not None:
            state.requests.headers("requests", out)
        if state.tokens is not None:
            state.tokens.headers("tokens", out)
        return (wait, which) if wait > 0 else None

    def hold(self, limits: RateLimits, key: str, seq: int, end: float) -> bool:
        """Count request ``seq`` against the key's concurrency until ``end`` or :meth:`release`."""
        state = self.keys.get(key)
        if state is None or not limits.concurrency:
            return False
        state.ends[seq] = end
        return True

    def release(self, key: str, seq: int) -> None:
        """Request ``seq`` of ``key`` is no longer in flight."""
        state = self.keys.get(key)
        if state is not None:
            state.ends.pop(seq, None)
