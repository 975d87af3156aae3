"""Cooldowns: whether a model may be tried at all (a circuit breaker per model, one probe).

``Cooldowns`` is the frozen setting. A model's breaker is a frozen ``Breaker`` and every
decision about it is a pure function of that state and the time (``breaker_admit``,
``breaker_ready_in``, ``breaker_refuses_retry``, ``breaker_observe``), so a shared store can
hold the state and get the same answers; ``CooldownState`` keeps the breakers of one client
in memory.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from .._errors import ConfigError
from .._policy import Classification
from ._base import logger, positive, stats_key

__all__ = [
    "CLOSED",
    "FAILURE",
    "NEUTRAL",
    "OK",
    "Breaker",
    "CooldownState",
    "Cooldowns",
    "breaker_admit",
    "breaker_observe",
    "breaker_outcome",
    "breaker_ready_in",
    "breaker_refuses_retry",
]


@dataclass(frozen=True)
class Cooldowns:
    """A circuit breaker per model: skip it for a while after ``failures`` failures in a row.

    A failure is an outcome that allows falling back (5xx, timeouts, connection errors,
    invalid bodies, unknown model) other than a 429 (the limiter's business) or a 400 such as
    ``context_length_exceeded`` (the prompt's fault, not the model's). The breaker opens for
    ``cooldown`` seconds, or until the latest Retry-After of the streak if that is later. Then
    one call probes the model with a single attempt: a success closes the breaker, a failure
    opens it again for another ``cooldown``. Probing at this steady interval, rather than
    doubling the wait, puts a recovered model back in use within about ``cooldown`` seconds of
    the end of its outage, however long the outage was.

    Args:
        failures: consecutive failures that trip the breaker (5: more than one call's default
            three attempts, so a lone call never trips it alone).
        cooldown: seconds the breaker stays open before each probe (LiteLLM's default).
        max_cooldown: None (the default) keeps every cooldown at ``cooldown``; a number
            doubles the cooldown after each failed probe up to it (a longer Retry-After still
            wins), for a model you would rather leave alone through a long outage.
        window: a failure streak older than this many seconds is forgotten.
        probe_timeout: a probe that has not reported after this many seconds is given up,
            and another call may probe.
        probe_poll: while a probe is out, calls waiting for the model look again this often.
    """

    failures: int = 5
    cooldown: float = 5.0
    max_cooldown: Optional[float] = None
    window: float = 30.0
    probe_timeout: float = 60.0
    probe_poll: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.failures, bool) or not isinstance(self.failures, int):
            raise ConfigError(f"Cooldowns.failures must be an int, got {self.failures!r}")
        if self.failures < 1:
            raise ConfigError(f"Cooldowns.failures must be >= 1, got {self.failures}")
        for name in ("cooldown", "window", "probe_timeout", "probe_poll"):
            positive("Cooldowns", name, getattr(self, name))
        if self.max_cooldown is not None:
            positive("Cooldowns", "max_cooldown", self.max_cooldown)
            if self.max_cooldown < self.cooldown:
                raise ConfigError("Cooldowns.max_cooldown must be >= Cooldowns.cooldown")


@dataclass(frozen=True)
class Breaker:
    """One model's breaker, as plain data: the decisions below are pure functions of it and
    of the time, so a shared store (or a simulation) can hold it and get the same answers.

    ``open_until`` None means closed (trusted); past it, the breaker is half-open: one call
    (the holder of ``probe_until``) probes the model.
    """

    failures: int = 0
    last_failure: float = -math.inf
    hint_until: float = -math.inf  # the end of the latest Retry-After of the streak
    open_until: Optional[float] = None
    cooldown: float = 0.0
    probe_until: Optional[float] = None
    trips: int = 0


CLOSED = Breaker()

#: What an outcome means to a breaker.
OK, FAILURE, NEUTRAL = "ok", "failure", "neutral"


def breaker_outcome(verdict: Classification) -> str:
    """``ok``, ``failure`` (a fault of the model) or ``neutral`` (says nothing of its health)."""
    if verdict.ok:
        return OK
    status = getattr(verdict.error, "status_code", None)
    # A 429 is the limiter's business; a 400 that allows a fallback (context length) is
    # about the prompt, not the model.
    if not verdict.fallback or status in (400, 429):
        return NEUTRAL
    return FAILURE


def breaker_admit(b: Breaker, config: Cooldowns, now: float) -> Tuple[Breaker, Optional[str]]:
    """Whether a call may try the model now: (the new state, None or why not).

    Past the cooldown the first call to ask takes the probe; others are refused until it
    reports or ``probe_timeout`` passes.
    """
    if b.open_until is None:
        return b, None
    if now < b.open_until:
        return b, f"cooling down for {b.open_until - now:.3g}s more"
    if b.probe_until is not None and now < b.probe_until:
        return b, "cooled down; another call is probing it"
    return dataclasses.replace(b, probe_until=now + config.probe_timeout), None


def breaker_ready_in(b: Breaker, config: Cooldowns, now: float) -> float:
    """Seconds until ``breaker_admit`` may let a call through (a poll while a probe is out)."""
    if b.open_until is None:
        return 0.0
    if now < b.open_until:
        return b.open_until - now
    if b.probe_until is not None and now < b.probe_until:
        return min(config.probe_poll, b.probe_until - now)
    return 0.0


def breaker_refuses_retry(b: Breaker, now: float) -> Optional[str]:
    """Why a call that just failed on the model must not send it another attempt, or None.

    Open or half-open: the failure tripped it, came after the trip, or was the probe's (a
    probe is one attempt).
    """
    if b.open_until is None:
        return None
    if now < b.open_until:
        return f"the model cools down for {b.open_until - now:.3g}s"
    return "the model's breaker is half-open: a probe is one attempt"


def breaker_observe(
    b: Breaker, config: Cooldowns, outcome: str, retry_after: Optional[float], now: float
) -> Breaker:
    """The state after an attempt's outcome (``CLOSED`` after a success)."""
    if outcome == OK:
        return CLOSED
    half_open = b.open_until is not None and now >= b.open_until
    if outcome != FAILURE:
        # The probe proved nothing either way: the next call may probe again.
        return dataclasses.replace(b, probe_until=None) if half_open else b
    failures, hint_until = b.failures, b.hint_until
    if now - b.last_failure > config.window and b.open_until is None:
        failures, hint_until = 0, -math.inf
    failures += 1
    if retry_after is not None:
        hint_until = max(hint_until, now + retry_after)
    if half_open:  # the probe failed
        cap = config.max_cooldown
        cooldown = config.cooldown if cap is None else min(cap, b.cooldown * 2)
    elif b.open_until is None and failures >= config.failures:
        cooldown = config.cooldown
    else:
        open_until = b.open_until
        if open_until is not None:  # a late failure of a call admitted before the trip
            open_until = max(open_until, hint_until)
        return dataclasses.replace(
            b, failures=failures, last_failure=now, hint_until=hint_until, open_until=open_until
        )
    return Breaker(
        failures=failures,
        last_failure=now,
        hint_until=hint_until,
        open_until=max(now + cooldown, hint_until),
        cooldown=cooldown,
        probe_until=None,
        trips=b.trips + 1,
    )


class CooldownState:
    """The breakers of one client, in memory; the decisions are the functions above."""

    def __init__(self, config: Cooldowns) -> None:
        self.config = config
        self.models: Dict[Optional[str], Breaker] = {}

    def admit(self, model: Optional[str], now: float) -> Optional[str]:
        b = self.models.get(model)
        if b is None:
            return None
        after, refusal = breaker_admit(b, self.config, now)
        if after is not b:
            self.models[model] = after
            logger.info("probing model=%s after its cooldown", model)
        return refusal

    def ready_in(self, model: Optional[str], now: float) -> float:
        b = self.models.get(model)
        return 0.0 if b is None else breaker_ready_in(b, self.config, now)

    def refuse_retry(self, model: Optional[str], now: float) -> Optional[str]:
        b = self.models.get(model)
        return None if b is None else breaker_refuses_retry(b, now)

    def observe(self, model: Optional[str], verdict: Classification, now: float) -> None:
        b = self.models.get(model)
        outcome = breaker_outcome(verdict)
        if b is None and outcome != FAILURE:
            return  # the common case: a healthy model with no breaker state
        before = CLOSED if b is None else b
        after = breaker_observe(before, self.config, outcome, verdict.retry_after, now)
        if after is CLOSED:
            self.models.pop(model, None)
            if before.open_until is not None:
                logger.info("model=%s is trusted again", model)
            return
        self.models[model] = after
        if after.trips > before.trips:
            assert after.open_until is not None
            # The trip is news; each failed probe of a long outage is not.
            logger.log(
                logging.WARNING if before.open_until is None else logging.INFO,
                "model=%s cools down for %.3gs after %d failures in a row",
                model,
                after.open_until - now,
                after.failures,
            )

    def snapshot(self, now: float) -> Dict[str, Any]:
        return {
            stats_key(model): {
                "state": "closed"
                if b.open_until is None
                else ("open" if now < b.open_until else "probing"),
                "failures": b.failures,
                "cooling_for": round(max(0.0, (b.open_until or now) - now), 6),
                "trips": b.trips,
            }
            for model, b in self.models.items()
        }
