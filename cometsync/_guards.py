"""Shared protections consulted by the call flow: the hooks, and the default-on protections.

The flow asks ``admit`` before trying a model, ``allow_retry`` before sleeping for a retry,
and tells ``observe`` every classified outcome. Drivers wrap each send in ``slot`` (real
threads) or pair ``try_acquire``/``release`` (a virtual clock, which must never block), so a
limiter can bound what is in flight. Implementations are thread-safe and read time only from
the ``now`` they are given (monotonic seconds) or from their injected clock.

Each protection guards one decision, so they compose without surprises:

- ``RetryBudget``: whether a retry may be spent (Finagle/Envoy-style budget, gRPC's spirit);
- ``AdaptiveLimiter``: how many requests may be in flight per model, and when the next may
  leave (AIMD on 429/503s, plus the server's Retry-After and rate-limit headers for everyone);
- ``Cooldowns``: whether a model may be tried at all (a circuit breaker with one probe).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, Iterator, List, Optional

from ._clock import Clock
from ._errors import ConfigError, PoolTimeoutError
from ._policy import Classification

__all__ = [
    "NO_GUARDS",
    "AdaptiveLimiter",
    "Cooldowns",
    "Guards",
    "Protections",
    "ProtectiveGuards",
    "RetryBudget",
]

logger = logging.getLogger("cometsync")


class Guards:
    """The protections' interface; this base class protects nothing."""

    def on_call(self, now: float) -> None:
        """A new call starts (retry budgets count calls)."""

    def admit(self, model: Optional[str], now: float) -> Optional[str]:
        """None when ``model`` may be tried now, else the reason to skip it."""
        return None

    def ready_in(self, model: Optional[str], now: float) -> Optional[float]:
        """Seconds until ``admit`` may accept ``model`` again; None when it cannot tell."""
        return None

    def allow_retry(self, model: Optional[str], now: float) -> bool:
        """Whether a retry may be spent now; called only when the policy wants one."""
        return True

    def observe(self, model: Optional[str], verdict: Classification, now: float) -> None:
        """Learn from an attempt's outcome."""

    def try_acquire(self, model: Optional[str], now: float) -> bool:
        """Take an in-flight slot for ``model`` if one is free now (never blocks)."""
        return True

    def acquire_in(self, model: Optional[str], now: float) -> Optional[float]:
        """After a refused ``try_acquire``: seconds until pacing allows one, None: a release."""
        return None

    def release(self, model: Optional[str], now: float) -> None:
        """Give back a slot taken by ``try_acquire``."""

    @contextlib.contextmanager
    def slot(
        self, model: Optional[str], timeout: Optional[float] = None, tokens: int = 0
    ) -> Iterator[None]:
        """Hold an in-flight slot for ``model`` while one request (``tokens`` estimated) is sent."""
        yield

    def settle(self, model: Optional[str], reserved: int, used: int) -> None:
        """Correct a token reservation made by ``slot`` to what was used (0: nothing sent)."""

    def stats(self) -> Dict[str, Any]:
        """A snapshot of the protections' state (plain data)."""
        return {}


NO_GUARDS = Guards()


def _positive(owner: str, name: str, value: Any, *, zero: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise ConfigError(f"{owner}.{name} must be a finite number {bound}, got {value!r}")


# -- configuration (frozen; the state lives in ProtectiveGuards, one per client) -------------


@dataclass(frozen=True)
class RetryBudget:
    """Retries may not exceed ``ratio`` of the calls of the last ``window`` s, plus a floor.

    Args:
        ratio: retries allowed per call started in the window (0.2: at most ~1.2 attempts
            per call when everything fails; Envoy's and Finagle's default budget). 0.1, the
            SRE book's ratio, also refused retries a merely flaky gateway (~18 % of calls
            failing independently) needed, and did worse in every benchmark scenario.
        min_retries: retries always allowed per window, so a lone call on a quiet client
            keeps its full ``max_retries`` on every model of its chain. None (the default)
            means ``max(10, max_workers)``: one retry per worker, so a first burst as large
            as the pool, all failing at once (a concurrency cap), may each retry once.
        window: seconds of history counted (Finagle's budget uses 10 s too).
    """

    ratio: float = 0.2
    min_retries: Optional[int] = None
    window: float = 10.0

    def __post_init__(self) -> None:
        _positive("RetryBudget", "ratio", self.ratio, zero=True)
        if self.min_retries is not None:
            _positive("RetryBudget", "min_retries", self.min_retries, zero=True)
        _positive("RetryBudget", "window", self.window)


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
        _positive("AdaptiveLimiter", "decrease_every", self.decrease_every, zero=True)
        _positive("AdaptiveLimiter", "skip_after", self.skip_after, zero=True)


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
            _positive("Cooldowns", name, getattr(self, name))
        if self.max_cooldown < self.cooldown:
            raise ConfigError("Cooldowns.max_cooldown must be >= Cooldowns.cooldown")


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


# -- state -------------------------------------------------------------------------------


class _BudgetState:
    """Calls and retries counted in ten slices of the window (constant memory)."""

    def __init__(self, config: RetryBudget, ceiling: int) -> None:
        self.config = config
        self.floor = max(10, ceiling) if config.min_retries is None else config.min_retries
        self._slice = config.window / 10.0
        self._slices: Deque[List[float]] = deque()  # [slice index, calls, retries]
        self.refused = 0

    def _current(self, now: float) -> List[float]:
        index = math.floor(now / self._slice)
        while self._slices and self._slices[0][0] <= index - 10:
            self._slices.popleft()
        if not self._slices or self._slices[-1][0] != index:
            self._slices.append([index, 0.0, 0.0])
        return self._slices[-1]

    def totals(self, now: float) -> tuple[float, float]:
        self._current(now)
        return sum(s[1] for s in self._slices), sum(s[2] for s in self._slices)

    def on_call(self, now: float) -> None:
        self._current(now)[1] += 1

    def allow(self, now: float) -> bool:
        calls, retries = self.totals(now)
        if retries + 1 > self.config.ratio * calls + self.floor:
            self.refused += 1
            return False
        self._current(now)[2] += 1
        return True

    def snapshot(self, now: float) -> Dict[str, Any]:
        calls, retries = self.totals(now)
        allowed = self.config.ratio * calls + self.floor
        return {
            "calls": int(calls),
            "retries": int(retries),
            "allowed": math.floor(allowed),
            "refused": self.refused,
        }


@dataclass
class _ModelLimit:
    limit: float
    in_flight: int = 0
    next_at: float = -math.inf  # no request leaves before this (server pacing)
    gap: float = 0.0  # seconds between two departures while the server's quota is spent
    last_cut: float = -math.inf
    overloads: int = 0  # overload answers in a row


class _LimiterState:
    def __init__(self, config: AdaptiveLimiter, ceiling: int) -> None:
        self.config = config
        self.ceiling = config.ceiling or ceiling
        self.models: Dict[Optional[str], _ModelLimit] = {}

    def _get(self, model: Optional[str]) -> _ModelLimit:
        state = self.models.get(model)
        if state is None:
            state = self.models[model] = _ModelLimit(limit=float(self.ceiling))
        return state

    def allowed(self, state: _ModelLimit) -> int:
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

    def _pace(self, state: _ModelLimit, verdict: Classification, now: float) -> None:
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
            str(model): {
                "limit": self.allowed(s),
                "ceiling": self.ceiling,
                "in_flight": s.in_flight,
                "hold": round(max(0.0, s.next_at - now), 6),
                "pace": s.gap,
            }
            for model, s in self.models.items()
        }


@dataclass
class _Breaker:
    failures: int = 0
    last_failure: float = -math.inf
    hint_until: float = -math.inf  # the end of the longest Retry-After of the streak
    open_until: Optional[float] = None  # None: closed (trusted)
    cooldown: float = 0.0
    probe_until: Optional[float] = None  # a probe is out until then
    trips: int = 0


class _CooldownState:
    def __init__(self, config: Cooldowns) -> None:
        self.config = config
        self.models: Dict[Optional[str], _Breaker] = {}

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
            b = self.models[model] = _Breaker()
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
            None if protections.budget is None else _BudgetState(protections.budget, ceiling)
        )
        self._limiter = (
            None if protections.limiter is None else _LimiterState(protections.limiter, ceiling)
        )
        self._cooldowns = (
            None if protections.cooldown is None else _CooldownState(protections.cooldown)
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
        self, limiter: _LimiterState, model: Optional[str], timeout: Optional[float]
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
