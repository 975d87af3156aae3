"""The sans-IO call flow: the fallback chain times the retry loop, for one call.

``call_flow`` is a generator that does no I/O. It yields actions and receives outcomes::

    flow = call_flow(spec, chain, policy, clock=clock, timeout=timeout)
    action = next(flow)
    while True:
        if isinstance(action, Send):   outcome = <the HTTP exchange, or the APIError it raised>
                                       # or Queued(outcome, seconds) if it waited to be sent
        else:                          outcome = <sleep action.seconds>; None
        action = flow.send(outcome)    # StopIteration.value is the result; failures are raised

The client drives it with a real transport and clock; the simulator's virtual-time engine
drives thousands at once. Every retry and fallback decision of cometsync is made here (through
the pure functions of ``_policy``), so both drivers run exactly the same logic.
"""

from __future__ import annotations

import logging
from typing import (
    Any,
    Callable,
    Generator,
    List,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

from ._actions import Action, CallSpec, Outcome, Queued, Send, Sleep, _no_attach
from ._clock import Clock
from ._errors import APIError, APITimeoutError, ModelCooldownError, PoolTimeoutError
from ._lazy import Deferred, Unbuilt, build_record, built
from ._policy import (
    Classification,
    RetryPolicy,
    Step,
    _with_error,
    assess,
    decide,
    demote,
    invalid_body,
)
from ._recovery import (
    Deliver,
    StreamBreak,
    break_step,
    break_verdict,
    broken_record,
    prefill_refused_step,
    refuses_prefill,
    resume_body,
)
from ._types import Attempt, Timeout
from .guards import NO_GUARDS, Guards

__all__ = ["Action", "CallSpec", "Deliver", "Outcome", "Queued", "Send", "Sleep", "call_flow"]

logger = logging.getLogger("cometsync")

T = TypeVar("T")


# Builds a Send or a Sleep without the NamedTuple's Python-level __new__ (once per attempt).
_new = tuple.__new__


def call_flow(
    spec: CallSpec[T],
    chain: Sequence[Optional[str]],
    policy: RetryPolicy,
    *,
    clock: Clock,
    timeout: Timeout,
    deadline: Optional[float] = None,
    guards: Guards = NO_GUARDS,
    on_attempt: Optional[Callable[[Attempt], None]] = None,
    scrub: Callable[[str], str] = str,
) -> Generator[Action, Outcome, T]:
    """Run one call through ``chain`` (models in order), retrying each per ``policy``.

    Args:
        spec: the request and how to parse its answer.
        chain: models to try in order; ``[None]`` for routes without a model.
        policy: retries per model, backoff, Retry-After limits.
        clock: monotonic time for latencies and the deadline; wall time for HTTP dates.
        timeout: per-attempt timeout, capped by what is left of ``deadline``.
        deadline: seconds for the whole call, or None.
        guards: shared protections (retry budget, limiter, cooldowns).
        on_attempt: called with each attempt's record once its decision is made.
        scrub: removes secrets from error text before it is recorded.

    Returns:
        The parsed result of the first successful attempt, carrying the attempt history.

    Raises:
        APIError: the last failure (its own class), with ``.attempts`` set, when the chain
            is exhausted or a failure may not be retried or fallen back from; once a
            delivered stream broke, that first ``APIStreamError`` (a recovery's own failure,
            e.g. a fallback refusing the prefill, is recorded but never raised as the cause).
    """
    start = clock.monotonic()
    monotonic, wall = clock.monotonic, clock.time  # bound once: read each attempt
    stop_at = None if deadline is None else start + deadline
    history: List[Union[Attempt, Unbuilt]] = []
    last_error: Union[APIError, Deferred, None] = None
    skipped: List[str] = []
    if all(model is None for model in chain):
        # A route without a model (catalog, models list) is no model's traffic: it takes no
        # limiter slot, no cooldown, and neither counts nor spends in the retry budget.
        guards = NO_GUARDS
    guards.on_call(start)
    # The base class protects nothing: its calls, several per attempt, can be skipped.
    guarded = type(guards) is not Guards
    eager = guarded or on_attempt is not None  # an error's readers: build it at once
    waited = 0.0  # seconds this flow waited for a cooling model, counted in the next send
    resume: Optional[StreamBreak] = None  # the latest break of a delivered stream
    first_break: Optional[APIError] = None
    refused: List[Optional[str]] = []  # models that refused a prefill in this call

    def record(entry: Union[Attempt, Unbuilt], replace: bool = False) -> None:
        if on_attempt is not None and type(entry) is tuple:
            entry = build_record(entry, scrub)
        if replace:
            history[-1] = entry
        else:
            history.append(entry)
        if on_attempt is not None:
            try:
                on_attempt(entry)  # type: ignore[arg-type]
            except Exception:  # an observer's bug must not lose the call's result
                logger.exception("on_attempt hook raised; the call goes on")

    def attempts() -> Tuple[Attempt, ...]:
        for i, entry in enumerate(history):
            if type(entry) is tuple:
                history[i] = build_record(entry, scrub)
        return tuple(history)  # type: ignore[arg-type]

    def guard_retry(
        step: Step, verdict: Classification, model: Optional[str], has_next: bool, now: float
    ) -> Tuple[Step, bool]:
        """The guards' say on a would-be retry; True: the retry waits for the model first.

        A model whose breaker is open (this failure tripped it, or this attempt was its
        probe) is not asked again: the next model at once, or on the last one a wait for
        the model to be admitted again, as a new call would (below).
        """
        if step.decision != "retry":
            return step, False
        held = guards.refuse_retry(model, now)
        if held is not None and has_next:
            return demote(verdict, has_next, held), False
        if not guards.allow_retry(model, now):
            return demote(verdict, has_next, "retry budget exhausted"), False
        if held is not None:
            return step._replace(reason=f"{held}; the retry waits for it"), True
        return step, False

    def fail(failure: Union[APIError, Deferred]) -> APIError:
        error = first_break or built(failure)
        error.attempts = attempts()
        return error

    for index, model in enumerate(chain):
        has_next = index + 1 < len(chain)
        refusal = guards.admit(model, clock.monotonic())
        if refusal is not None and not has_next and last_error is None:
            began = clock.monotonic()
            model, refusal = yield from _await_model(
                chain, model, refusal, guards, policy, clock, stop_at
            )
            waited = clock.monotonic() - began
        if refusal is not None:
            skipped.append(f"{model}: {refusal}")
            logger.info("skipping model=%s: %s", model, refusal)
            continue
        body = None if spec.body is None else {**spec.body, "model": model}
        method, path, route, stream = spec.method, spec.path, spec.route, spec.stream
        previous_delay: Optional[float] = None
        attempt = free = 0  # free: attempts that do not count as retries (a refused prefill)
        while True:
            attempt += 1
            prefilled = False
            if resume is not None:
                planned = resume_body(resume, spec.body, model, refused)
                if planned is None:  # it refused the prefill, and a restart is not allowed
                    if has_next:
                        break
                    raise fail(resume.error)
                body, prefilled = planned
            sent_at = monotonic()
            capped = timeout
            if stop_at is not None:
                left = stop_at - sent_at
                if left <= 0:
                    if last_error is None:
                        raise fail(APITimeoutError(f"deadline of {deadline:g}s passed"))
                    raise fail(_deadline_named(last_error, deadline, stop_at, sent_at))
                capped = timeout.capped(left)
            outcome = yield _new(
                Send, (model, method, path, body, capped, stream, attempt, stop_at)
            )
            done_at = monotonic()
            queued, waited = waited, 0.0
            if isinstance(outcome, Queued):
                queued += outcome.seconds
                sent_at += outcome.seconds
                outcome = outcome.outcome
            if outcome is None:
                raise TypeError("the driver answered a Send with None")
            # Positional: the keyword call costs more, once per attempt.
            verdict, deferred = assess(outcome, policy, model, wall(), method)  # type: ignore[arg-type]
            result: Any = None
            if verdict.ok:
                try:
                    result = spec.parse(outcome, model)  # type: ignore[arg-type]
                except (ValueError, RecursionError) as exc:  # a custom transport's deep JSON
                    status = getattr(outcome, "status_code", 200)
                    verdict = Classification(
                        ok=False,
                        retry=True,
                        fallback=True,
                        error=invalid_body(model, status, str(exc)),
                    )
            if eager and deferred is not None:
                verdict, deferred = _with_error(verdict, deferred.build()), None
            no_prefill: Optional[Step] = None
            if prefilled and not verdict.ok and refuses_prefill(outcome):
                # Says nothing of the model's health and is not a retry of a failure.
                assert resume is not None
                refused.append(model)
                no_prefill = prefill_refused_step(resume.restart, has_next)
            elif guarded and not isinstance(outcome, PoolTimeoutError):  # never sent: says
                guards.observe(model, verdict, done_at)  # nothing of the model
            time_left = None if stop_at is None else stop_at - done_at
            step = no_prefill or decide(
                verdict, attempt - free, policy, previous_delay, time_left, has_next
            )
            rewait = False
            if guarded and no_prefill is None:
                step, rewait = guard_retry(step, verdict, model, has_next, done_at)
            if resume is not None and step.decision == "success":
                step = step._replace(
                    reason="recovery: " + ("continued" if prefilled else "restarted")
                )
            status_code = getattr(outcome, "status_code", None)
            status_code = status_code if isinstance(status_code, int) else None
            failure = verdict.error if deferred is None else deferred
            decision, delay, reason = step
            fields: Unbuilt = (
                model,
                route,
                status_code,
                done_at - sent_at,
                attempt,
                failure,
                delay,
                decision,
                reason,
                queued,
            )
            if on_attempt is None:  # record(), inlined: once per attempt
                history.append(fields)
            else:
                record(fields)
            if no_prefill is not None and decision == "retry":
                free += 1
                continue
            if decision == "success":
                if not spec.recover:
                    return result if spec.attach is _no_attach else spec.attach(result, attempts())
                # The flow keeps no reference to the stream it hands out: the stream holds
                # the flow, and a cycle would keep an abandoned stream (and its connection).
                box, result = [result], None
                brk = yield Deliver(spec.attach(box.pop(), attempts()), prefilled)
                if not isinstance(brk, StreamBreak):
                    return None  # type: ignore[return-value]  # the reader is done with it
                resume, first_break = brk, first_break or brk.error
                done_at = clock.monotonic()
                verdict = break_verdict(brk, policy, model=model, now=clock.time())
                guards.observe(model, verdict, done_at)
                step = decide(
                    verdict,
                    attempt - free,
                    policy,
                    previous_delay,
                    None if stop_at is None else stop_at - done_at,
                    has_next,
                )
                step, rewait = guard_retry(step, verdict, model, has_next, done_at)
                step = break_step(step, brk)
                delivered = attempts()[-1]  # every record is built: the Deliver above built them
                record(broken_record(delivered, brk, step, done_at - sent_at, scrub), replace=True)
                failure, decision = verdict.error, step.decision
            if no_prefill is not None:
                if decision == "raise":
                    raise fail(failure or APIError("the model refused the prefill"))
                break
            assert failure is not None
            last_error = failure
            if decision == "raise":
                raise fail(_deadline_named(last_error, deadline, stop_at, done_at))
            if decision == "fallback":
                break
            delay = step.delay
            assert delay is not None
            yield _new(Sleep, (delay,))
            previous_delay = delay
            if not guarded:  # nothing below applies (a wait for the model needs a guard)
                continue
            woke = clock.monotonic()
            if has_next and guards.refuse_retry(model, woke) is not None:
                # The breaker tripped while this call slept: the next model, no retry sent.
                # (On the last model such a retry still goes: holding those calls back too
                # releases them together when the probe succeeds, which measured worse.)
                logger.info("model=%s began cooling down; the next model instead", model)
                break
            if rewait:
                refusal = guards.admit(model, woke)
                if refusal is not None:
                    began = clock.monotonic()
                    _, refusal = yield from _await_model(
                        (model,), model, refusal, guards, policy, clock, stop_at
                    )
                    waited = clock.monotonic() - began
                if refusal is not None:
                    logger.info("not retrying model=%s: %s", model, refusal)
                    raise fail(last_error)
    if last_error is None:
        # Nothing was sent: every model of the chain was refused by the guards.
        raise fail(_all_skipped(skipped))
    raise fail(last_error)


def _deadline_named(
    error: Union[APIError, Deferred],
    deadline: Optional[float],
    stop_at: Optional[float],
    now: float,
) -> Union[APIError, Deferred]:
    """A timeout cut short by the call's deadline says so, not just "read timed out"."""
    if stop_at is None or deadline is None or now < stop_at:
        return error
    if isinstance(error, APITimeoutError) and not error.message.startswith("the call's deadline"):
        error.message = f"the call's deadline of {deadline:g}s ran out: {error.message}"
        error.args = (error.message, *error.args[1:])
    return error


def _await_model(
    chain: Sequence[Optional[str]],
    model: Optional[str],
    refusal: Optional[str],
    guards: Guards,
    policy: RetryPolicy,
    clock: Clock,
    stop_at: Optional[float],
) -> Generator[Action, Outcome, Tuple[Optional[str], Optional[str]]]:
    """Every model of the chain was refused: wait for the first to come back, if it is soon.

    Soon means within ``policy.max_retry_after`` in all and before the deadline: the same
    bound as a server's Retry-After, because a cooldown is the client keeping a server's wish.
    Returns the model to try (as the chain's last) and why it is still refused, or None.
    """
    waited = 0.0
    while refusal is not None:
        now = clock.monotonic()
        known = [(w, m) for m in chain for w in (guards.ready_in(m, now),) if w is not None]
        if not known:
            break
        wait, pick = min(known, key=lambda pair: pair[0])
        wait = max(wait, _MIN_WAIT)
        if waited + wait > policy.max_retry_after or (
            stop_at is not None and now + wait >= stop_at
        ):
            break
        logger.info("every model is cooling down; waiting %.3gs for model=%s", wait, pick)
        yield Sleep(wait)
        waited += wait
        model, refusal = pick, guards.admit(pick, clock.monotonic())
    return model, refusal


_MIN_WAIT = 0.01  # a guard that says "ready" yet refuses must not make the flow spin


def _all_skipped(skipped: Sequence[str]) -> APIError:
    return ModelCooldownError("no model of the chain may be tried now: " + "; ".join(skipped))
