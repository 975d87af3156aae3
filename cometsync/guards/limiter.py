"""The adaptive limiter: how many requests may be in flight per model, and when the next may
leave (AIMD on 429/503s, plus the server's Retry-After and rate-limit headers for everyone).

``AdaptiveLimiter`` is the frozen setting; ``LimiterState`` is where its state lives (one per
client), kept apart so it can move to a shared store without touching the decision.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional

from .._errors import ConfigError
from .._policy import Classification
from ._base import logger, positive, stats_key

__all__ = ["AdaptiveLimiter", "LimiterState", "ModelLimit"]


@dataclass(frozen=True)
class AdaptiveLimiter:
    """Per-model in-flight limit, AIMD: cut by ``decrease`` when overload repeats, +1 per round.

    The limit starts at the ceiling. Two overload answers (429/503/529) in a row for a model,
    with no success between them, cut it by ``decrease``; each success adds ``1 / limit``
    (about +1 per round of ``limit`` successes), back up to the ceiling.

    Args:
        ceiling: the most requests in flight per model; None means the client's max_workers.
        min_limit: the limit never goes below this.
        decrease: factor applied on a 429/503/529 (botocore's CUBIC uses 0.7).
        decrease_every: seconds between two cuts (one cut per congestion event, like TCP's
            once per round trip).
        pace: share the server's pacing with every thread: no request leaves before a
            Retry-After it sent has passed, and when its ``x-ratelimit-remaining-requests``
            falls to what is in flight, requests leave one per refill interval.
        skip_after: a model held by the server for longer than this many seconds is skipped
            (next model of the chain) instead of waited for.
    """

    ceiling: Optional[int] = None
    min_limit: int = 1
    decrease: float = 0.7
    decrease_every: float = 1.0
    pace: bool = True
    skip_after: float = 1.0

    def __post_init__(self) -> None:
        if self.ceiling is not None and (
            isinstance(self.ceiling, bool) or not isinstance(self.ceiling, int) or self.ceiling < 1
        ):
            raise ConfigError(f"AdaptiveLimiter.ceiling must be an int >= 1, got {self.ceiling!r}")
        if isinstance(self.min_limit, bool) or not isinstance(self.min_limit, int):
            raise ConfigError(f"AdaptiveLimiter.min_limit must be an int, got {self.min_limit!r}")
        if self.min_limit < 1:
            raise ConfigError(f"AdaptiveLimiter.min_limit must be >= 1, got {self.min_limit}")
        if not (isinstance(self.decrease, (int, float)) and 0 < self.decrease < 1):
            raise ConfigError(f"AdaptiveLimiter.decrease must be in (0, 1), got {self.decrease!r}")
        positive("AdaptiveLimiter", "decrease_every", self.decrease_every, zero=True)
        positive("AdaptiveLimiter", "skip_after", self.skip_after, zero=True)


@dataclass
class ModelLimit:
    limit: float
    in_flight: int = 0
    next_at: float = -math.inf  # no request leaves before this (server pacing)
    gap: float = 0.0  # seconds between two departures while the server's quota is spent
    last_cut: float = -math.inf
    overloads: int = 0  # overload answers in a row


class LimiterState:
    def __init__(self, config: AdaptiveLimiter, ceiling: int) -> None:
        self.config = config
        self.ceiling = config.ceiling or ceiling
        self.models: Dict[Optional[str], ModelLimit] = {}

    def _get(self, model: Optional[str]) -> ModelLimit:
        state = self.models.get(model)
        if state is None:
            state = self.models[model] = ModelLimit(limit=float(self.ceiling))
        return state

    def allowed(self, state: ModelLimit) -> int:
        return max(self.config.min_limit, math.floor(state.limit))

    def try_acquire(self, model: Optional[str], now: float) -> bool:
        state = self._get(model)
        if state.in_flight >= self.allowed(state) or now < state.next_at:
            return False
        state.in_flight += 1
        if state.gap > 0:
            state.next_at = max(state.next_at, now) + state.gap
        return True

    def acquire_in(self, model: Optional[str], now: float) -> Optional[float]:
        state = self._get(model)
        if state.in_flight >= self.allowed(state):
            return None
        return max(0.0, state.next_at - now)

    def release(self, model: Optional[str]) -> None:
        state = self._get(model)
        state.in_flight = max(0, state.in_flight - 1)

    def hold(self, model: Optional[str], now: float) -> float:
        state = self.models.get(model)
        return 0.0 if state is None else max(0.0, state.next_at - now)

    def observe(self, model: Optional[str], verdict: Classification, now: float) -> None:
        state = self._get(model)
        before = self.allowed(state)
        if verdict.overloaded:
            state.overloads += 1
            if state.overloads >= 2 and now - state.last_cut >= self.config.decrease_every:
                state.limit = max(float(self.config.min_limit), state.limit * self.config.decrease)
                state.last_cut = now
        elif verdict.ok:
            state.overloads = 0
            # Additive increase: about +1 per round of `limit` successes (TCP congestion
            # avoidance), so recovery is gradual and a cut is not undone by one lucky answer.
            state.limit = min(float(self.ceiling), state.limit + 1.0 / max(state.limit, 1.0))
        if self.config.pace:
            self._pace(state, verdict, now)
        after = self.allowed(state)
        if after != before:
            logger.log(
                logging.INFO if after < before else logging.DEBUG,
                "adaptive limit model=%s %d -> %d (%s)",
                model,
                before,
                after,
                "overload" if verdict.overloaded else "recovering",
            )

    def _pace(self, state: ModelLimit, verdict: Classification, now: float) -> None:
        if verdict.overloaded and verdict.retry_after is not None:
            state.next_at = max(state.next_at, now + verdict.retry_after)
        info = verdict.rate_limit
        if info is None:
            return
        if info.remaining <= state.in_flight:
            # What is left of the server's quota will not cover what is already in flight:
            # from now on one request per refill interval, which is what it can admit.
            state.gap = info.seconds_per_request
        else:
            state.gap = 0.0

    def snapshot(self, now: float) -> Dict[str, Any]:
        return {
            stats_key(model): {
                "limit": self.allowed(s),
                "ceiling": self.ceiling,
                "in_flight": s.in_flight,
                "hold": round(max(0.0, s.next_at - now), 6),
                "pace": s.gap,
            }
            for model, s in self.models.items()
        }
