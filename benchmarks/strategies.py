"""The retry strategies compared by the fault-model scenarios.

cometsync's strategies run the SDK's real ``call_flow``. The baselines that are not cometsync
policies are written as tiny generators yielding the same ``Send``/``Sleep`` actions, so the
engine drives them exactly like cometsync's flow:

* ``fallback-doc``: the fallback document's loop: each model of the chain once; after a
  ``RateLimitError`` or a 500/503/504/524 sleep a fixed 2 s and move to the next model;
  any other error is raised.
* ``ratelimit-doc``: the rate-limit document's loop: 5 attempts on one model, only 429 is
  retried, waiting ``min(30 s, 1 s * 2**attempt) + U(0, 1 s)`` (attempt from 0).
* ``openai-default``: openai-python's default policy on one model: 2 retries; ``x-should-retry``
  wins, else 408/409/429/>=500 and connection errors are retried; the wait is the server's
  Retry-After when ``0 < v <= 120 s`` (a longer one stops the retries), else
  ``min(0.5 * 2**n, 8) * (1 - 0.25 * U)``.

The two documents' examples call the official SDK, whose own default retries would run
underneath their loops; like the documents' text, these baselines model the loops alone.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Tuple

from cometsync._clock import Clock
from cometsync._errors import APIError
from cometsync._flow import CallSpec, Outcome, Send, Sleep, call_flow
from cometsync._headers import parse_retry_after
from cometsync._policy import ResponseLike, RetryPolicy, classify, invalid_body
from cometsync._types import Timeout
from cometsync.guards import NO_GUARDS, Guards
from simulator.virtual import Flow

__all__ = ["BASELINES", "FlowFactory", "Strategy", "cometsync_strategy"]

# (spec, chain, rng, clock, timeout) -> a flow for one call
FlowFactory = Callable[[CallSpec[Any], Sequence[str], random.Random, Clock, Timeout], Flow]
# clock -> (the run's flow factory, the guards its flows share or None)
Starter = Callable[[Clock], Tuple[FlowFactory, Optional[Guards]]]


@dataclass(frozen=True)
class Strategy:
    """A named way of running calls; ``start(clock)`` makes one run's flow factory and guards.

    ``start`` is called once per run, so shared protections (a retry budget, a limiter,
    cooldowns) live for exactly one run and every call of that run shares them, as the calls
    of one ``Client`` do.
    """

    name: str
    description: str
    start: Starter
    single_model: bool = False


def _error_of(outcome: Outcome, model: Optional[str], now: float) -> Optional[APIError]:
    """None for a usable 2xx, else the error cometsync's vocabulary gives the outcome."""
    assert outcome is not None
    verdict = classify(outcome, RetryPolicy(), model=model, now=now)  # type: ignore[arg-type]
    return None if verdict.ok else verdict.error


def _send(spec: CallSpec[Any], model: str, timeout: Timeout, attempt: int) -> Send:
    body = None if spec.body is None else {**spec.body, "model": model}
    return Send(model, spec.method, spec.path, body, timeout, spec.stream, attempt)


def _parse(spec: CallSpec[Any], outcome: Outcome, model: str) -> Any:
    """The result of a usable 2xx; a malformed body raises as the SDK under a recipe would."""
    try:
        return spec.parse(outcome, model)  # type: ignore[arg-type]
    except ValueError as exc:
        raise invalid_body(model, _status(outcome) or 200, str(exc)) from exc


def _status(outcome: Outcome) -> Optional[int]:
    status = getattr(outcome, "status_code", None)
    return status if isinstance(status, int) else None


def fallback_doc_flow(
    spec: CallSpec[Any], chain: Sequence[str], rng: random.Random, clock: Clock, timeout: Timeout
) -> Flow:
    """The fallback document's loop (see the module docstring)."""
    last: Optional[APIError] = None
    for model in chain:
        outcome = yield _send(spec, model, timeout, 1)
        error = _error_of(outcome, model, clock.time())
        if error is None:
            return _parse(spec, outcome, model)
        status = _status(outcome)
        if status == 429 or status in (500, 503, 504, 524):
            last = error
            yield Sleep(2.0)
            continue
        raise error
    assert last is not None
    raise last


def ratelimit_doc_flow(
    spec: CallSpec[Any], chain: Sequence[str], rng: random.Random, clock: Clock, timeout: Timeout
) -> Flow:
    """The rate-limit document's loop (see the module docstring)."""
    model = chain[0]
    for attempt in range(5):
        outcome = yield _send(spec, model, timeout, attempt + 1)
        error = _error_of(outcome, model, clock.time())
        if error is None:
            return _parse(spec, outcome, model)
        if _status(outcome) != 429 or attempt == 4:
            raise error
        yield Sleep(min(30.0, 1.0 * 2**attempt) + rng.random() * 1.0)
    raise AssertionError("unreachable")  # pragma: no cover


OPENAI_MAX_RETRY_AFTER = 120.0


def _openai_should_retry(outcome: Outcome, now: float) -> bool:
    if isinstance(outcome, APIError):
        return True  # connection errors and timeouts
    response: ResponseLike = outcome  # type: ignore[assignment]
    retry_after = parse_retry_after(response.headers, now)
    if retry_after is not None and retry_after > OPENAI_MAX_RETRY_AFTER:
        return False
    should = response.headers.get("x-should-retry")
    if should in ("true", "false"):
        return should == "true"
    status = response.status_code
    return status in (408, 409, 429) or status >= 500


def openai_default_flow(
    spec: CallSpec[Any], chain: Sequence[str], rng: random.Random, clock: Clock, timeout: Timeout
) -> Flow:
    """openai-python's default retries on one model (see the module docstring)."""
    model = chain[0]
    max_retries = 2
    for retries in range(max_retries + 1):
        outcome = yield _send(spec, model, timeout, retries + 1)
        error = _error_of(outcome, model, clock.time())
        if error is None:
            return _parse(spec, outcome, model)
        if retries == max_retries or not _openai_should_retry(outcome, clock.time()):
            raise error
        headers = getattr(outcome, "headers", {})
        retry_after = parse_retry_after(headers, clock.time())
        if retry_after is not None and 0 < retry_after <= OPENAI_MAX_RETRY_AFTER:
            delay = retry_after
        else:
            delay = min(0.5 * 2.0**retries, 8.0) * (1 - 0.25 * rng.random())
        yield Sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _fixed(factory: FlowFactory) -> Starter:
    return lambda clock: (factory, None)


BASELINES: Tuple[Strategy, ...] = (
    Strategy(
        "fallback-doc",
        "fallback document: each model once, fixed 2 s sleep",
        _fixed(fallback_doc_flow),
    ),
    Strategy(
        "ratelimit-doc",
        "rate-limit document: 5 attempts, 429 only, min(30, 2^n) + U(0,1) s",
        _fixed(ratelimit_doc_flow),
        single_model=True,
    ),
    Strategy(
        "openai-default",
        "openai-python default: 2 retries, Retry-After <= 120 s, one model",
        _fixed(openai_default_flow),
        single_model=True,
    ),
)


def cometsync_strategy(
    name: str,
    description: str,
    policy: Optional[RetryPolicy] = None,
    guards: Optional[Callable[[Clock], Guards]] = None,
) -> Strategy:
    """cometsync's real flow with ``policy`` and, per run, the guards ``guards(clock)`` makes."""
    base = policy or RetryPolicy()

    def start(clock: Clock) -> Tuple[FlowFactory, Optional[Guards]]:
        shared = guards(clock) if guards is not None else NO_GUARDS

        def factory(
            spec: CallSpec[Any],
            chain: Sequence[str],
            rng: random.Random,
            clock: Clock,
            timeout: Timeout,
        ) -> Flow:
            own = dataclasses.replace(base, backoff=base.backoff.with_rng(rng))
            return call_flow(spec, chain, own, clock=clock, timeout=timeout, guards=shared)

        return factory, (shared if guards is not None else None)

    return Strategy(name, description, start)


#: In-flight ceiling given to the protections: the calls of a run come from one client whose
#: thread pool would hold this many (open-loop arrivals have no other bound).
CEILING = 64


def _protections() -> Tuple[Strategy, ...]:
    """cometsync as ``Client()`` runs it, the policy alone, and each protection alone."""
    from cometsync.guards import AdaptiveLimiter, Cooldowns, Protections, RetryBudget

    def guarded(protections: Protections) -> Callable[[Clock], Guards]:
        return lambda clock: protections.build(ceiling=CEILING, clock=clock)

    only = {
        "budget": ("retry budget", Protections(budget=RetryBudget(), limiter=None, cooldown=None)),
        "limiter": (
            "adaptive limiter",
            Protections(budget=None, limiter=AdaptiveLimiter(), cooldown=None),
        ),
        "cooldown": (
            "model cooldowns",
            Protections(budget=None, limiter=None, cooldown=Cooldowns()),
        ),
    }
    return (
        cometsync_strategy(
            "cometsync-default",
            "cometsync as Client() runs it: RetryPolicy() over the chain, default protections on",
            guards=guarded(Protections()),
        ),
        cometsync_strategy(
            "cometsync-policy-only",
            "cometsync RetryPolicy() over the chain, protections off",
        ),
        *(
            cometsync_strategy(
                f"cometsync+{short}",
                f"cometsync's policy with only the {text} on",
                guards=guarded(p),
            )
            for short, (text, p) in only.items()
        ),
    )


def all_strategies() -> Tuple[Strategy, ...]:
    """The baselines, cometsync's default (protections on), the policy alone, each protection."""
    return (*BASELINES, *_protections())
