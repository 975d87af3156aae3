"""Rate limits and shared protections: a ``Guards`` that adds a store's decisions to the local ones.

The client's local protections (``ProtectiveGuards``: retry budget, AIMD limiter, cooldowns)
keep running unchanged; this layer adds, per (API key, model):

- the client-side rate limits (``RateLimit``, and the limits the server announces), paced
  by GCRA before each attempt leaves;
- the server's holds (a 429's Retry-After), for every process sharing the store;
- with a shared store (Redis): the breaker and the retry budget, fleet-wide.

Its decisions are ``admission``'s; its state is in a ``Store``: memory (per process) or
Redis. The adaptive concurrency limit stays per process: independent AIMD loops converge, as
TCP flows sharing a link do.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Dict, Iterator, Optional, Tuple

from .._clock import Clock
from .._errors import ConfigError
from .._policy import Classification
from . import admission as model_
from ._base import EVERY_MODEL, Guards, stats_key
from .cooldowns import NEUTRAL, OK, breaker_outcome
from .pacing import Turns, pace
from .protections import Protections
from .ratelimit import RateLimit, RateLimits, coerce_rate_limits
from .store import MemoryStore, RedisStore, Store, key_id

__all__ = ["SharedGuards", "build_guards"]

logger = logging.getLogger("cometsync")

# rpm = tpm = None (the class defaults): ``RateLimit()`` itself is refused as a user mistake.
_NO_LIMIT: RateLimit = object.__new__(RateLimit)
_NOTHING: Any = object()


class _Call(threading.local):
    """What this thread's call (driven by the Client) lets the first admission do at once."""

    tokens: Optional[int] = None  # the call's token estimate; None: not a Client call
    count = False  # the call is still to be counted in the shared retry budget
    reserved: Any = _NOTHING  # the model admitted and reserved by the last admission


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
        self._health = store.fleet  # breaker and budget too, when clients share the store
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
        # model -> (rpm, tpm) last told the store, and when (monotonic): told again after
        # half the keys' expiry, so an idle key's expiry does not lose the server's limits.
        self._learned: Dict[Optional[str], Tuple[float, float, float]] = {}
        self._settle: Dict[Optional[str], float] = {}  # tokens to settle at the next admission
        self._call = _Call()
        self._turns = Turns()  # try_acquire's reserved turns
        self.queue_ahead = 120.0  # try_acquire's wait budget: a default Timeout()'s

    # -- helpers ---------------------------------------------------------------------------
    def _limit(self, model: Optional[str]) -> RateLimit:
        return self._limits.get(model) or self._limits.get(None) or _NO_LIMIT

    def _admit_argv(
        self,
        model: Optional[str],
        mode: int,
        tokens: float,
        count: bool = False,
        ahead: float = 0.0,
    ) -> Any:
        limit = self._limit(model)
        cool = self._cool
        budget = self._budget
        with self._lock:
            settle = self._settle.pop(model, 0.0)
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
            settle,
            count and budget is not None and self._health,
            0.0 if budget is None else budget.ratio,
            self._floor,
            10.0 if budget is None else budget.window,
            ahead,
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
    ) -> None:
        cool = self._cool
        argv = model_.observe_argv(
            self._clock.time(),
            kind,
            retry_after,
            hold,
            rpm,
            tpm,
            0.0,  # settlements ride on admissions instead
            float(self._limit(model).tpm or 0),
            float(cool.failures if cool is not None else 1 << 30),
            5.0 if cool is None else cool.cooldown,
            0.0 if cool is None or cool.max_cooldown is None else cool.max_cooldown,
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
    @contextlib.contextmanager
    def call(self, tokens: int) -> Iterator[None]:
        """The Client drives one call on this thread, reckoned at ``tokens``.

        Knowing the call's tokens, its first admission of each model is one round trip that
        checks every shared reason to wait (breaker, hold, both rates), reserves, and counts
        the call in the retry budget; the attempt then leaves without another.
        """
        state = self._call
        state.tokens, state.count, state.reserved = tokens, False, _NOTHING
        try:
            yield
        finally:
            state.tokens, state.count, state.reserved = None, False, _NOTHING

    def on_call(self, now: float) -> None:
        if self._call.tokens is not None:
            self._call.count = True  # counted by the first admission, in the same round trip
        elif self._health and self._budget is not None and self.store.shared:
            b = self._budget
            self.store.budget(
                self._scope,
                model_.budget_argv(self._clock.time(), False, b.ratio, self._floor, b.window),
            )
        self.inner.on_call(now)

    def admit(self, model: Optional[str], now: float) -> Optional[str]:
        call = self._call
        tokens = call.tokens
        mode = model_.GATE if tokens is None else model_.ALL
        argv = self._admit_argv(model, mode, tokens or 0, call.count)
        call.count = False
        call.reserved = _NOTHING
        verdict, wait = self.store.admit(self._scope, model, argv)
        if verdict in ("hold", "cooldown", "probing"):
            self._remember(model, wait)
            return {
                "hold": f"the server asked every client of this key to wait {wait:.3g}s more",
                "cooldown": f"cooling down for {wait:.3g}s more (shared)",
                "probing": "cooled down; another client is probing it",
            }[verdict]
        probe = verdict in ("probe", "probe-wait")
        if probe:
            with self._lock:
                self._dirty[model] = True
        refusal = self.inner.admit(model, now)
        if refusal is not None:
            if probe:
                self._observe(model, model_.NEUTRAL)  # give the shared probe back at once
        elif mode == model_.ALL and verdict in ("go", "probe"):
            call.reserved = model  # the first attempt is admitted and reserved already
        return refusal

    def ready_in(self, model: Optional[str], now: float) -> Optional[float]:
        local = self.inner.ready_in(model, now) or 0.0
        with self._lock:
            wait, at = self._waits.get(model, (0.0, 0.0))
        return max(local, wait - (self._clock.monotonic() - at))

    def refuse_retry(self, model: Optional[str], now: float) -> Optional[str]:
        """The local breaker's answer, else the fleet's: open or half-open refuses a retry."""
        local = self.inner.refuse_retry(model, now)
        if local is not None or not self._health or self._cool is None:
            return local
        verdict, wait = self.store.admit(
            self._scope, model, self._admit_argv(model, model_.PEEK, 0)
        )
        if verdict == "cooldown":
            return f"the model cools down for {wait:.3g}s (shared)"
        if verdict == "half-open":
            return "the model's breaker is half-open (shared): a probe is one attempt"
        return None

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
        clock_now = self._clock.monotonic()
        with self._lock:
            told = self._learned.get(model)
            news = bool(rpm or tpm) and (
                told is None or told[:2] != (rpm, tpm) or clock_now - told[2] > self._ttl / 2
            )
            if news:
                self._learned[model] = (rpm, tpm, clock_now)
            outcome = breaker_outcome(verdict)  # the local breaker's own reading
            if outcome == OK:
                kind = model_.OK if self._dirty.pop(model, False) else model_.NO_HEALTH
            elif outcome == NEUTRAL:
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
        """Correct a token reservation to what was used (0: the attempt failed, refund it).

        No round trip of its own: the correction rides on this process's next admission
        of the model (a process that never sends the model again leaves it to decay).
        """
        if reserved == used or reserved <= 0:
            return
        with self._lock:
            self._settle[model] = self._settle.get(model, 0.0) + float(used - reserved)

    def _pace(self, model: Optional[str], tokens: int, give_up_at: Optional[float]) -> None:
        """Wait for this attempt's turn in the fleet's line (``pacing.pace``)."""

        def ask(mode: int, ahead: float) -> Tuple[str, float]:
            spend = tokens if mode == model_.SEND else 0
            argv = self._admit_argv(model, mode, spend, ahead=ahead)
            return self.store.admit(self._scope, model, argv)

        pace(ask, self._clock, lambda: self.settle(model, tokens, 0), model, give_up_at)

    @contextlib.contextmanager
    def slot(
        self, model: Optional[str], timeout: Optional[float] = None, tokens: int = 0
    ) -> Iterator[None]:
        """The local slot, then the shared admission (pacing); raises PoolTimeoutError."""
        start = self._clock.monotonic()
        with self.inner.slot(model, timeout):
            call = self._call
            if call.reserved is not _NOTHING and call.reserved == model:
                call.reserved = _NOTHING  # reserved by this call's admission of the model
            else:
                self._pace(model, tokens, None if timeout is None else start + timeout)
            yield

    def try_acquire(self, model: Optional[str], now: float) -> bool:
        """A virtual-time send: a due turn of this process's goes (unless a hold or cooldown
        began since); else a turn within ``queue_ahead`` is reserved (see ``acquire_in``)."""
        if not self.inner.try_acquire(model, now):
            return False
        if self._turns.take(model, now):
            seen, _ = self.store.admit(self._scope, model, self._admit_argv(model, model_.PEEK, 0))
            if seen not in ("hold", "cooldown"):
                return True
        argv = self._admit_argv(model, model_.SEND, 0, ahead=self.queue_ahead)
        verdict, wait = self.store.admit(self._scope, model, argv)
        if verdict == "go":
            return True
        self.inner.release(model, now)
        if verdict == "queued":
            self._turns.add(model, now + wait)
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
                EVERY_MODEL if m is None else m: {"rpm": lim.rpm, "tpm": lim.tpm}
                for m, lim in self._limits.items()
            },
            "learned": {
                stats_key(m): {"rpm": r, "tpm": t} for m, (r, t, _) in self._learned.items()
            },
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
    elif isinstance(shared_state, Store):  # e.g. a virtual fleet's MemoryStore(fleet=True)
        store = shared_state
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
