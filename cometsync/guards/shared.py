"""Rate limits and shared protections: a ``Guards`` that adds a store's decisions to the local ones.

The client's local protections (``ProtectiveGuards``: retry budget, AIMD limiter, cooldowns)
keep running unchanged; this layer adds, per (API key, model):

- the client-side rate limits (``RateLimit``, and the limits the server announces), paced
  by GCRA before each attempt leaves;
- the server's holds (a 429's Retry-After), for every process sharing the store;
- with a shared store (Redis): the breaker and the retry budget, fleet-wide.

Its decisions are ``_admission``'s; its state is in a ``Store``: memory (per process) or
Redis. The adaptive concurrency limit stays per process: independent AIMD loops converge, as
TCP flows sharing a link do.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Dict, Iterator, Optional, Tuple

from .._clock import Clock
from .._errors import ConfigError, PoolTimeoutError
from .._policy import Classification
from . import admission as model_
from ._base import Guards
from .protections import Protections
from .ratelimit import RateLimit, RateLimits, coerce_rate_limits
from .store import MemoryStore, RedisStore, Store, key_id

__all__ = ["SharedGuards", "build_guards"]

logger = logging.getLogger("cometsync")

_NO_LIMIT = RateLimit()


class SharedGuards(Guards):
    """Local protections plus rate limits, holds and (when shared) breaker and budget in a store.

    Args:
        inner: the local protections, consulted after the store (their state stays local).
        store: where the shared state lives.
        scope: the API key's id (``key_id``), which separates keys sharing one store.
        protections: the configuration whose breaker and budget are shared.
        rate_limits: per model, ``None`` for every other model.
        ceiling: the client's max_workers (the budget's default floor).
        clock: time for waits (monotonic) and for the store (wall, shared by every process).
    """

    def __init__(
        self,
        inner: Guards,
        store: Store,
        *,
        scope: str,
        protections: Protections,
        rate_limits: RateLimits,
        ceiling: int,
        clock: Clock,
    ) -> None:
        self.inner = inner
        self.store = store
        self._scope = scope
        self._limits = rate_limits
        self._clock = clock
        self._health = isinstance(store, RedisStore)
        self._cool = protections.cooldown
        self._budget = protections.budget
        floor = None if self._budget is None else self._budget.min_retries
        self._floor = float(max(10, ceiling) if floor is None else floor)
        limiter = protections.limiter
        self._skip_after = 1.0 if limiter is None else limiter.skip_after
        windows = [60.0]
        if self._cool is not None:
            windows.append(self._cool.window)
        if self._budget is not None:
            windows.append(self._budget.window)
        self._ttl = max(windows)
        self._lock = threading.Lock()
        self._waits: Dict[Optional[str], Tuple[float, float]] = {}  # model -> (until, set at)
        self._dirty: Dict[Optional[str], bool] = {}  # saw a failure or probed since a success
        self._learned: Dict[Optional[str], Tuple[float, float]] = {}  # model -> last rpm, tpm

    # -- helpers ---------------------------------------------------------------------------
    def _limit(self, model: Optional[str]) -> RateLimit:
        return self._limits.get(model) or self._limits.get(None) or _NO_LIMIT

    def _admit_argv(self, model: Optional[str], mode: int, tokens: float) -> Any:
        limit = self._limit(model)
        cool = self._cool
        return model_.admit_argv(
            self._clock.time(),
            mode,
            float(limit.rpm or 0),
            float(limit.tpm or 0),
            float(tokens),
            60.0 if cool is None else cool.probe_timeout,
            0.1 if cool is None else cool.probe_poll,
            self._skip_after,
            self._ttl,
        )

    def _observe(
        self,
        model: Optional[str],
        kind: int,
        *,
        retry_after: float = -1.0,
        hold: float = -1.0,
        rpm: float = 0.0,
        tpm: float = 0.0,
        settle: float = 0.0,
    ) -> None:
        cool = self._cool
        argv = model_.observe_argv(
            self._clock.time(),
            kind,
            retry_after,
            hold,
            rpm,
            tpm,
            settle,
            float(self._limit(model).tpm or 0),
            float(cool.failures if cool is not None else 1 << 30),
            5.0 if cool is None else cool.cooldown,
            60.0 if cool is None else cool.max_cooldown,
            30.0 if cool is None else cool.window,
            self._ttl,
        )
        event, value = self.store.observe(self._scope, model, argv)
        if event == "tripped":
            logger.warning("model=%s cools down for %.3gs across the fleet", model, value)
        elif event == "closed":
            logger.info("model=%s is trusted again across the fleet", model)

    def _remember(self, model: Optional[str], wait: float) -> None:
        with self._lock:
            self._waits[model] = (wait, self._clock.monotonic())

    # -- the flow's hooks ------------------------------------------------------------------
    def on_call(self, now: float) -> None:
        if self._health and self._budget is not None and self.store.shared:
            b = self._budget
            self.store.budget(
                self._scope,
                model_.budget_argv(self._clock.time(), False, b.ratio, self._floor, b.window),
            )
        self.inner.on_call(now)

    def admit(self, model: Optional[str], now: float) -> Optional[str]:
        verdict, wait = self.store.admit(self._scope, model, self._admit_argv(model, 0, 0))
        if verdict in ("hold", "cooldown", "probing"):
            self._remember(model, wait)
            return {
                "hold": f"the server asked every client of this key to wait {wait:.3g}s more",
                "cooldown": f"cooling down for {wait:.3g}s more (shared)",
                "probing": "cooled down; another client is probing it",
            }[verdict]
        if verdict == "probe":
            with self._lock:
                self._dirty[model] = True
        refusal = self.inner.admit(model, now)
        if refusal is not None and verdict == "probe":
            self._observe(model, model_.NEUTRAL)  # give the shared probe back at once
        return refusal

    def ready_in(self, model: Optional[str], now: float) -> Optional[float]:
        local = self.inner.ready_in(model, now) or 0.0
        with self._lock:
            wait, at = self._waits.get(model, (0.0, 0.0))
        return max(local, wait - (self._clock.monotonic() - at))

    def allow_retry(self, model: Optional[str], now: float) -> bool:
        if self._health and self._budget is not None and self.store.shared:
            b = self._budget
            argv = model_.budget_argv(self._clock.time(), True, b.ratio, self._floor, b.window)
            if not self.store.budget(self._scope, argv):
                return False
        return self.inner.allow_retry(model, now)

    def observe(self, model: Optional[str], verdict: Classification, now: float) -> None:
        self.inner.observe(model, verdict, now)
        hold = -1.0
        if verdict.overloaded and verdict.retry_after is not None:
            hold = verdict.retry_after
        info = verdict.rate_limit
        if info is not None and info.remaining == 0:
            hold = max(hold, info.seconds_per_request)  # the quota is spent until one returns
        rpm = float(info.limit) if info is not None else 0.0
        tpm = float(verdict.token_limit.limit) if verdict.token_limit is not None else 0.0
        with self._lock:
            learned = self._learned.get(model)
            news = (rpm or tpm) and learned != (rpm, tpm)
            if news:
                self._learned[model] = (rpm, tpm)
            status = getattr(verdict.error, "status_code", None)
            if verdict.ok:
                kind = model_.OK if self._dirty.pop(model, False) else model_.NO_HEALTH
            elif not verdict.fallback or status == 429:
                kind = model_.NEUTRAL
            else:
                kind = model_.FAIL
                self._dirty[model] = True
        if not self._health:
            kind = model_.NO_HEALTH  # the local cooldowns already judge health
        if kind == model_.NO_HEALTH and hold < 0 and not news:
            return  # nothing the store does not know already: no round trip
        self._observe(
            model,
            kind,
            retry_after=-1.0 if verdict.retry_after is None else verdict.retry_after,
            hold=hold,
            rpm=rpm if news else 0.0,
            tpm=tpm if news else 0.0,
        )

    def settle(self, model: Optional[str], reserved: int, used: int) -> None:
        """Correct a token reservation to what was used (0: the attempt failed, refund it)."""
        if reserved == used or reserved <= 0:
            return
        with self._lock:
            learned_tpm = self._learned.get(model, (0.0, 0.0))[1]
        if not (self._limit(model).tpm or learned_tpm):
            return
        self._observe(model, model_.NO_HEALTH, settle=float(used - reserved))

    def _pace(self, model: Optional[str], tokens: int, give_up_at: Optional[float]) -> None:
        while True:
            verdict, wait = self.store.admit(
                self._scope, model, self._admit_argv(model, model_.SEND, tokens)
            )
            if verdict == "go":
                return
            now = self._clock.monotonic()
            if give_up_at is not None and now + wait > give_up_at:
                raise PoolTimeoutError(
                    f"model {model}: the rate limit ({verdict}) allows no request before the "
                    f"attempt's timeout (next in {wait:.3g}s)"
                )
            self._clock.sleep(wait)

    @contextlib.contextmanager
    def slot(
        self, model: Optional[str], timeout: Optional[float] = None, tokens: int = 0
    ) -> Iterator[None]:
        """The local slot, then the shared admission (pacing); raises PoolTimeoutError."""
        start = self._clock.monotonic()
        with self.inner.slot(model, timeout):
            self._pace(model, tokens, None if timeout is None else start + timeout)
            yield

    def try_acquire(self, model: Optional[str], now: float) -> bool:
        if not self.inner.try_acquire(model, now):
            return False
        verdict, wait = self.store.admit(
            self._scope, model, self._admit_argv(model, model_.SEND, 0)
        )
        if verdict == "go":
            return True
        self.inner.release(model, now)
        self._remember(model, wait)
        return False

    def acquire_in(self, model: Optional[str], now: float) -> Optional[float]:
        local = self.inner.acquire_in(model, now)
        with self._lock:
            wait, at = self._waits.get(model, (0.0, 0.0))
        shared = max(0.0, wait - (self._clock.monotonic() - at))
        return None if local is None else max(local, shared)

    def release(self, model: Optional[str], now: float) -> None:
        self.inner.release(model, now)

    def stats(self) -> Dict[str, Any]:
        out = dict(self.inner.stats())
        out["shared"] = {
            "store": self.store.describe(),
            "rate_limits": {
                str(m): {"rpm": lim.rpm, "tpm": lim.tpm} for m, lim in self._limits.items()
            },
            "learned": {str(m): {"rpm": r, "tpm": t} for m, (r, t) in self._learned.items()},
        }
        return out

    def close(self) -> None:
        """Close the store's connections (only those it opened)."""
        self.store.close()


def build_guards(
    inner: Guards,
    protections: Protections,
    *,
    api_key: str,
    rate_limit: Any,
    shared_state: Any,
    shared_namespace: str,
    ceiling: int,
    clock: Clock,
) -> Guards:
    """``inner`` alone when neither a rate limit nor shared state is asked, else SharedGuards."""
    limits = coerce_rate_limits(rate_limit)
    if shared_state is None and not limits:
        if shared_namespace != "cometsync":
            raise ConfigError("shared_namespace needs shared_state")
        return inner
    store: Store
    if shared_state is None:
        store = MemoryStore()
    else:
        store = RedisStore(shared_state, shared_namespace, clock)
    return SharedGuards(
        inner,
        store,
        scope=key_id(api_key),
        protections=protections,
        rate_limits=limits,
        ceiling=ceiling,
        clock=clock,
    )
