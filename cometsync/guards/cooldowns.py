"""Cooldowns: whether a model may be tried at all (a circuit breaker per model, one probe).

``Cooldowns`` is the frozen setting; ``CooldownState`` (a ``Breaker`` per model) is where its
state lives (one per client), kept apart so it can move to a shared store without touching
the decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional

from .._errors import ConfigError
from .._policy import Classification
from ._base import logger, positive

__all__ = ["Breaker", "CooldownState", "Cooldowns"]


@dataclass(frozen=True)
class Cooldowns:
    """A circuit breaker per model: skip it for a while after ``failures`` failures in a row.

    A failure is an outcome that allows falling back (5xx, timeouts, connection errors,
    invalid bodies, unknown model) other than a 429: rate limits are the limiter's business.
    The cooldown lasts ``cooldown`` seconds, doubled after each failed probe up to
    ``max_cooldown``, and never ends before the longest Retry-After of the failure streak.
    Then one call probes the model; its next outcome closes the breaker or opens it again.

    Args:
        failures: consecutive failures that trip the breaker (5: more than one call's default
            three attempts, so a lone call never trips it alone).
        cooldown: first cooldown, seconds (LiteLLM's default).
        max_cooldown: the longest cooldown after repeated failed probes (a longer Retry-After
            still wins).
        window: a failure streak older than this many seconds is forgotten.
        probe_timeout: a probe that has not reported after this many seconds is given up,
            and another call may probe.
        probe_poll: while a probe is out, calls waiting for the model look again this often.
    """

    failures: int = 5
    cooldown: float = 5.0
    max_cooldown: float = 60.0
    window: float = 30.0
    probe_timeout: float = 60.0
    probe_poll: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.failures, bool) or not isinstance(self.failures, int):
            raise ConfigError(f"Cooldowns.failures must be an int, got {self.failures!r}")
        if self.failures < 1:
            raise ConfigError(f"Cooldowns.failures must be >= 1, got {self.failures}")
        for name in ("cooldown", "max_cooldown", "window", "probe_timeout", "probe_poll"):
            positive("Cooldowns", name, getattr(self, name))
        if self.max_cooldown < self.cooldown:
            raise ConfigError("Cooldowns.max_cooldown must be >= Cooldowns.cooldown")


@dataclass
class Breaker:
    failures: int = 0
    last_failure: float = -math.inf
    hint_until: float = -math.inf  # the end of the longest Retry-After of the streak
    open_until: Optional[float] = None  # None: closed (trusted)
    cooldown: float = 0.0
    probe_until: Optional[float] = None  # a probe is out until then
    trips: int = 0


class CooldownState:
    def __init__(self, config: Cooldowns) -> None:
        self.config = config
        self.models: Dict[Optional[str], Breaker] = {}

    def admit(self, model: Optional[str], now: float) -> Optional[str]:
        b = self.models.get(model)
        if b is None or b.open_until is None:
            return None
        if now < b.open_until:
            return f"cooling down for {b.open_until - now:.3g}s more"
        if b.probe_until is not None and now < b.probe_until:
            return "cooled down; another call is probing it"
        b.probe_until = now + self.config.probe_timeout
        logger.info("probing model=%s after its cooldown", model)
        return None

    def ready_in(self, model: Optional[str], now: float) -> float:
        b = self.models.get(model)
        if b is None or b.open_until is None:
            return 0.0
        if now < b.open_until:
            return b.open_until - now
        if b.probe_until is not None and now < b.probe_until:
            return min(self.config.probe_poll, b.probe_until - now)
        return 0.0

    def observe(self, model: Optional[str], verdict: Classification, now: float) -> None:
        b = self.models.get(model)
        if verdict.ok:
            if b is not None:
                if b.open_until is not None:
                    logger.info("model=%s is trusted again", model)
                del self.models[model]
            return
        status = getattr(verdict.error, "status_code", None)
        if not verdict.fallback or status == 429:
            if b is not None and b.open_until is not None and now >= b.open_until:
                b.probe_until = None  # the probe proved nothing either way: probe again
            return
        if b is None:
            b = self.models[model] = Breaker()
        if now - b.last_failure > self.config.window and b.open_until is None:
            b.failures = 0
            b.hint_until = -math.inf
        b.failures += 1
        b.last_failure = now
        if verdict.retry_after is not None:
            b.hint_until = max(b.hint_until, now + verdict.retry_after)
        half_open = b.open_until is not None and now >= b.open_until
        if half_open:
            b.cooldown = min(self.config.max_cooldown, b.cooldown * 2)
        elif b.open_until is None and b.failures >= self.config.failures:
            b.cooldown = self.config.cooldown
        else:
            if b.open_until is not None:  # a late failure of a call admitted before the trip
                b.open_until = max(b.open_until, b.hint_until)
            return
        b.open_until = max(now + b.cooldown, b.hint_until)
        b.probe_until = None
        b.trips += 1
        logger.warning(
            "model=%s cools down for %.3gs after %d failures in a row",
            model,
            b.open_until - now,
            b.failures,
        )

    def snapshot(self, now: float) -> Dict[str, Any]:
        return {
            str(model): {
                "state": "closed"
                if b.open_until is None
                else ("open" if now < b.open_until else "probing"),
                "failures": b.failures,
                "cooling_for": round(max(0.0, (b.open_until or now) - now), 6),
                "trips": b.trips,
            }
            for model, b in self.models.items()
        }
