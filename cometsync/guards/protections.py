"""Which protections a client runs (``Protections``), and ``ProtectiveGuards``, which puts
their state behind the flow's ``Guards`` hooks for one client.

Each protection guards one decision, so they compose without surprises: the budget decides
whether a retry may be spent, the limiter how many requests may be in flight and when the
next may leave, the cooldowns whether a model may be tried at all.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, Optional

from .._clock import Clock
from .._errors import ConfigError, PoolTimeoutError
from .._policy import Classification
from ._base import Guards
from .budget import BudgetState, RetryBudget
from .cooldowns import Cooldowns, CooldownState
from .limiter import AdaptiveLimiter, LimiterState

__all__ = ["Protections", "ProtectiveGuards"]


@dataclass(frozen=True)
class Protections:
    """Which protections a client runs; each may be None (off). The default has all three."""

    budget: Optional[RetryBudget] = field(default_factory=RetryBudget)
    limiter: Optional[AdaptiveLimiter] = field(default_factory=AdaptiveLimiter)
    cooldown: Optional[Cooldowns] = field(default_factory=Cooldowns)

    def __post_init__(self) -> None:
        for name, kind in (
            ("budget", RetryBudget),
            ("limiter", AdaptiveLimiter),
            ("cooldown", Cooldowns),
        ):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise ConfigError(
                    f"Protections.{name} must be a cometsync.{kind.__name__} or None, got {value!r}"
                )

    @classmethod
    def off(cls) -> Protections:
        """No protection: every call retries and sends exactly as its policy says."""
        return cls(budget=None, limiter=None, cooldown=None)

    def build(self, *, ceiling: int, clock: Clock) -> ProtectiveGuards:
        """Fresh state for one client (or one simulated client)."""
        return ProtectiveGuards(self, ceiling=ceiling, clock=clock)


class ProtectiveGuards(Guards):
    """The three protections of a ``Protections`` behind the flow's hooks, for one client.

    One lock guards all state: every critical section is a few arithmetic operations, far
    cheaper than the HTTP exchange around it.
    """

    def __init__(self, protections: Protections, *, ceiling: int, clock: Clock) -> None:
        self.protections = protections
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._budget = (
            None if protections.budget is None else BudgetState(protections.budget, ceiling)
        )
        self._limiter = (
            None if protections.limiter is None else LimiterState(protections.limiter, ceiling)
        )
        self._cooldowns = (
            None if protections.cooldown is None else CooldownState(protections.cooldown)
        )

    def on_call(self, now: float) -> None:
        if self._budget is not None:
            with self._cond:
                self._budget.on_call(now)

    def admit(self, model: Optional[str], now: float) -> Optional[str]:
        with self._cond:
            if self._limiter is not None:
                hold = self._limiter.hold(model, now)
                if hold > self._limiter.config.skip_after:
                    return f"the server asked to wait {hold:.3g}s more"
            if self._cooldowns is not None:
                return self._cooldowns.admit(model, now)
        return None

    def ready_in(self, model: Optional[str], now: float) -> Optional[float]:
        with self._cond:
            hold = 0.0 if self._limiter is None else self._limiter.hold(model, now)
            cool = 0.0 if self._cooldowns is None else self._cooldowns.ready_in(model, now)
        return max(hold, cool)

    def refuse_retry(self, model: Optional[str], now: float) -> Optional[str]:
        if self._cooldowns is None:
            return None
        with self._cond:
            return self._cooldowns.refuse_retry(model, now)

    def allow_retry(self, model: Optional[str], now: float) -> bool:
        if self._budget is None:
            return True
        with self._cond:
            return self._budget.allow(now)

    def observe(self, model: Optional[str], verdict: Classification, now: float) -> None:
        with self._cond:
            if self._limiter is not None:
                self._limiter.observe(model, verdict, now)
            if self._cooldowns is not None:
                self._cooldowns.observe(model, verdict, now)
            # A shorter hold or a higher limit may let a waiting sender go.
            self._cond.notify_all()

    def try_acquire(self, model: Optional[str], now: float) -> bool:
        if self._limiter is None:
            return True
        with self._cond:
            return self._limiter.try_acquire(model, now)

    def acquire_in(self, model: Optional[str], now: float) -> Optional[float]:
        if self._limiter is None:
            return 0.0
        with self._cond:
            return self._limiter.acquire_in(model, now)

    def release(self, model: Optional[str], now: float) -> None:
        if self._limiter is None:
            return
        with self._cond:
            self._limiter.release(model)
            self._cond.notify_all()

    @contextlib.contextmanager
    def slot(
        self, model: Optional[str], timeout: Optional[float] = None, tokens: int = 0
    ) -> Iterator[None]:
        """Wait for an in-flight slot (at most ``timeout`` s), hold it while the body runs.

        Raises:
            PoolTimeoutError: no slot within ``timeout``; nothing was sent.
        """
        if self._limiter is not None:
            self._wait_for_slot(self._limiter, model, timeout)
        try:
            yield
        finally:
            self.release(model, self._clock.monotonic())

    def _wait_for_slot(
        self, limiter: LimiterState, model: Optional[str], timeout: Optional[float]
    ) -> None:
        start = self._clock.monotonic()
        while True:
            with self._cond:
                now = self._clock.monotonic()
                if limiter.try_acquire(model, now):
                    return
                pause = limiter.acquire_in(model, now)
                left = None if timeout is None else start + timeout - now
                if left is not None and (left <= 0 or (pause is not None and pause > left)):
                    state = limiter.models[model]
                    raise PoolTimeoutError(
                        f"no request slot for model {model} within {timeout:g}s "
                        f"(limit {limiter.allowed(state)}, {state.in_flight} in flight, "
                        f"server hold {max(0.0, state.next_at - now):.3g}s)"
                    )
                if pause is None:
                    # Woken by a release or an observation; the bound is real time, as the
                    # wait is for another thread (clock-ok: a timed wait on a condition).
                    self._cond.wait(left)
                    continue
            self._clock.sleep(pause)

    def stats(self) -> Dict[str, Any]:
        now = self._clock.monotonic()
        with self._cond:
            return {
                "budget": None if self._budget is None else self._budget.snapshot(now),
                "limiter": None if self._limiter is None else self._limiter.snapshot(now),
                "cooldowns": None if self._cooldowns is None else self._cooldowns.snapshot(now),
            }
