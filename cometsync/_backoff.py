"""Backoff strategies: small frozen objects with one pure method, ``delay``.

Each takes ``base`` and ``cap`` in seconds and an optional ``random.Random``; without one
they share a private generator (never the module-level ``random`` functions), so tests and
simulations pass a seeded ``Random`` and get the same delays every run.

The retry number ``n`` counts from 1 (the first retry). ``expo(n) = min(cap, base * 2**(n-1))``,
so the first retry waits about ``base``. Brooker's formulas (AWS blog, 2015):

* ``Exponential``: ``expo(n)`` (plus an optional additive ``U(0, jitter)``)
* ``FullJitter``: ``U(0, expo(n))``
* ``EqualJitter``: ``expo(n)/2 + U(0, expo(n)/2)``
* ``DecorrelatedJitter``: ``min(cap, U(base, 3 * previous))``, starting from ``previous = base``
* ``ScaledJitter``: ``expo(n) * (1 - spread * U(0, 1))`` (openai-python's shape)
* ``Constant``: always ``delay`` (the fallback document's fixed sleep)
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Optional, TypeVar

from ._errors import ConfigError

__all__ = [
    "Backoff",
    "Constant",
    "DecorrelatedJitter",
    "EqualJitter",
    "Exponential",
    "FullJitter",
    "ScaledJitter",
]

_SHARED_RNG = random.Random()
_MAX_EXPONENT = 62  # 2**62 already dwarfs any sane cap; avoids float overflow for huge n

B = TypeVar("B", bound="Backoff")


@dataclass(frozen=True)
class Backoff:
    """Base of the strategies: validated ``base``/``cap`` and the injected generator."""

    base: float = 0.5
    cap: float = 8.0
    rng: Optional[random.Random] = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not (self.base >= 0 and self.cap >= 0):
            raise ConfigError(f"{type(self).__name__}: base and cap must be >= 0 seconds")
        if self.cap < self.base:
            raise ConfigError(
                f"{type(self).__name__}: cap ({self.cap}) must be >= base ({self.base})"
            )

    def delay(self, retry: int, previous: Optional[float] = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based).

        Args:
            retry: which retry this is, counting from 1.
            previous: the delay chosen before this one (only decorrelated jitter uses it).
        """
        raise NotImplementedError

    def with_rng(self: B, rng: random.Random) -> B:
        """A copy drawing from ``rng`` (how simulations give each client its own stream)."""
        return dataclasses.replace(self, rng=rng)

    def expo(self, retry: int) -> float:
        """The capped exponential envelope ``min(cap, base * 2**(retry-1))``."""
        exponent = min(max(retry - 1, 0), _MAX_EXPONENT)
        return min(self.cap, self.base * 2.0**exponent)

    def _random(self) -> random.Random:
        return self.rng if self.rng is not None else _SHARED_RNG


@dataclass(frozen=True)
class Exponential(Backoff):
    """Plain capped exponential backoff, optionally plus ``U(0, jitter)`` seconds."""

    jitter: float = 0.0

    def delay(self, retry: int, previous: Optional[float] = None) -> float:
        if self.jitter > 0:
            extra = (self.rng if self.rng is not None else _SHARED_RNG).uniform(0.0, self.jitter)
        else:
            extra = 0.0
        exponent = min(max(retry - 1, 0), _MAX_EXPONENT)  # expo(), inlined: once per retry
        return min(self.cap, self.base * 2.0**exponent) + extra


@dataclass(frozen=True)
class FullJitter(Backoff):
    """``U(0, expo(n))``: the fewest calls under contention in Brooker's experiment."""

    def delay(self, retry: int, previous: Optional[float] = None) -> float:
        # expo(), inlined (once per retry): conditionals give exactly what min/max give.
        exponent = retry - 1 if 0 < retry <= _MAX_EXPONENT else (0 if retry < 1 else _MAX_EXPONENT)
        envelope = self.base * 2.0**exponent
        cap = self.cap
        envelope = envelope if envelope < cap else cap
        return (self.rng if self.rng is not None else _SHARED_RNG).uniform(0.0, envelope)


@dataclass(frozen=True)
class EqualJitter(Backoff):
    """``expo(n)/2 + U(0, expo(n)/2)``: never retries sooner than half the envelope."""

    def delay(self, retry: int, previous: Optional[float] = None) -> float:
        exponent = min(max(retry - 1, 0), _MAX_EXPONENT)  # expo(), inlined: once per retry
        half = min(self.cap, self.base * 2.0**exponent) / 2.0
        return half + (self.rng if self.rng is not None else _SHARED_RNG).uniform(0.0, half)


@dataclass(frozen=True)
class DecorrelatedJitter(Backoff):
    """``min(cap, U(base, 3 * previous))``: grows from the last delay, not the retry count."""

    def delay(self, retry: int, previous: Optional[float] = None) -> float:
        prev = self.base if previous is None or previous < self.base else previous
        rng = self.rng if self.rng is not None else _SHARED_RNG
        return min(self.cap, rng.uniform(self.base, prev * 3.0))


@dataclass(frozen=True)
class ScaledJitter(Backoff):
    """``expo(n) * (1 - spread * U)``: openai-python's default shape with ``spread=0.25``."""

    spread: float = 0.25

    def delay(self, retry: int, previous: Optional[float] = None) -> float:
        return self.expo(retry) * (1.0 - self.spread * self._random().random())


@dataclass(frozen=True)
class Constant(Backoff):
    """The same ``base`` seconds before every retry (the fallback document's ``sleep(2)``)."""

    base: float = 2.0

    def __post_init__(self) -> None:
        # The cap means nothing for a constant wait; keep it consistent instead of failing.
        object.__setattr__(self, "cap", max(self.cap, self.base))
        super().__post_init__()

    def delay(self, retry: int, previous: Optional[float] = None) -> float:
        return self.base
