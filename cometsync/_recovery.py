"""Mid-stream recovery as the call flow sees it: the action that hands a stream to its reader,
the outcome a broken stream sends back, and the pure rules for both.

A stream broken after its first chunk is not retried by a loop of its own: the ``Stream``
resumes the call flow that opened it (``_flow.call_flow``) with a :class:`StreamBreak`, so
the retry limits, the backoff, the budget, the guards and the deadline apply exactly as
before the first chunk. The new request continues the partial answer (the original messages
plus an assistant message holding it: a prefill) or, where the model refuses a prefill and
the reader allows it, asks again from scratch.
"""

from __future__ import annotations

import json
import logging
import re
from typing import (
    Any,
    Callable,
    Collection,
    Dict,
    Generator,
    Mapping,
    NamedTuple,
    Optional,
    Tuple,
    Union,
)

from ._attempt import Attempt
from ._errors import APIError, APIStreamError
from ._policy import NO_RESPONSE, Classification, ResponseLike, RetryPolicy, Step, classify

__all__ = [
    "Deliver",
    "FlowHandle",
    "StreamBreak",
    "break_step",
    "break_verdict",
    "broken_record",
    "continuation_body",
    "prefill_refused_step",
    "refuses_prefill",
    "resume_body",
]


class Deliver(NamedTuple):
    """Hand ``result`` (an open stream) to the caller now; when it breaks, its reader sends
    the flow a :class:`StreamBreak` (and closes the flow when it ends well).

    Attributes:
        result: the parsed result, carrying the attempts so far.
        continued: whether the request carried the partial answer as a prefill, so the new
            stream's text continues the old one (False: a fresh answer from the start).
    """

    result: Any
    continued: bool = False


class StreamBreak(NamedTuple):
    """What a stream broken after its first chunk sends back into its flow.

    Attributes:
        error: the failure as the reader would have raised it (``.partial`` holds the text).
        cause: what broke it, classified like an attempt's outcome: the transport's error (a
            timeout, a reset), the response an error event stands for, or None (a stream cut
            short or a malformed event: an invalid body).
        continuation: the request body (without ``model``) that asks for the rest of the
            answer, or None when the partial answer cannot be a prefill (tool calls, several
            choices, no text yet).
        restart: whether asking again from scratch (without the prefill) is allowed: the
            reader was shown nothing yet, or it opted in to restarts.
        chunks: how many chunks had arrived before the break.
    """

    error: APIStreamError
    cause: Union[APIError, ResponseLike, None]
    continuation: Optional[Mapping[str, Any]]
    restart: bool
    chunks: int = 0


logger = logging.getLogger("cometsync")


class FlowHandle:
    """A delivered stream's way back into its call flow: the driver's loop, resumed.

    Args:
        flow: the call flow, suspended at its ``Deliver``.
        drive: the driver's loop from a first action (a thunk) to the next ``Deliver``.
    """

    def __init__(
        self,
        flow: Generator[Any, Any, Any],
        drive: Callable[[Callable[[], Any]], Deliver],
    ) -> None:
        self._flow = flow
        self._drive = drive

    def resume(self, brk: StreamBreak) -> Deliver:
        """Send the break into the flow and drive it to the next delivered stream.

        Raises:
            APIError: the recovery failed (the flow raises the original break).
        """
        try:
            return self._drive(lambda: self._flow.send(brk))
        except StopIteration:
            raise RuntimeError("the call flow ended without delivering a stream") from None
        except BaseException:
            self._flow.close()
            raise

    def close(self) -> None:
        """The stream is done: end the flow (idempotent)."""
        try:
            self._flow.close()
        except ValueError:  # closed from another thread while a recovery drives it
            logger.debug("a stream's call flow was busy when the stream closed")


def broken_record(
    entry: Attempt, brk: StreamBreak, step: Step, duration: float, scrub: Callable[[str], str]
) -> Attempt:
    """The record of a delivered stream's attempt once it broke: failed, and what follows."""
    record = Attempt._record(
        entry.model,
        entry.route,
        entry.status,
        entry.latency,
        entry.attempt,
        scrub(f"{type(brk.error).__name__}: {brk.error}"),
        step.delay,
        step.decision,
        step.reason,
        entry.queued,
    )
    record.__dict__["duration"] = duration
    return record


def continuation_body(body: Mapping[str, Any], partial: str) -> Dict[str, Any]:
    """The body asking for the rest of ``partial``: the messages plus it as a prefill."""
    messages = list(body.get("messages") or ())
    return {**body, "messages": [*messages, {"role": "assistant", "content": partial}]}


def resume_body(
    brk: StreamBreak,
    body: Optional[Mapping[str, Any]],
    model: Optional[str],
    refused: Collection[Optional[str]],
) -> Optional[Tuple[Optional[Dict[str, Any]], bool]]:
    """The body of a recovery attempt on ``model`` and whether it carries the prefill, or
    None when this model may not be asked.

    The continuation unless this model refused a prefill earlier in the call (or there is
    none); then the original request (a clean restart), if the reader allows restarts.
    """
    if brk.continuation is not None and model not in refused:
        return {**brk.continuation, "model": model}, True
    if not brk.restart:
        return None
    return (None if body is None else {**body, "model": model}), False


def break_verdict(
    brk: StreamBreak, policy: RetryPolicy, *, model: Optional[str], now: float
) -> Classification:
    """A break is the failure of its attempt, decided like any other.

    An error event counts as the status it names (so a mid-answer content-filter 400 is not
    asked again), a timeout or a reset as that transport error, a stream cut short or a
    malformed event as an invalid body (retried, then the next model). The error recorded is
    the stream error itself.
    """
    if brk.cause is None:
        return Classification(ok=False, retry=True, fallback=True, error=brk.error)
    return classify(brk.cause, policy, model=model, now=now)._replace(error=brk.error)


def break_step(step: Step, brk: StreamBreak) -> Step:
    """``step`` with a reason that says chunks had arrived: a stall is not "no response"."""
    if step.reason != NO_RESPONSE:  # only a timeout fails over at once
        return step
    return step._replace(
        reason=f"stream stalled after {brk.chunks} chunks (read timed out mid-stream): "
        "the next model at once"
    )


_REFUSAL = re.compile(
    r"prefill|trailing assistant|final assistant|last message|must end with a user"
    r"|ending with an? assistant",
    re.IGNORECASE,
)


def refuses_prefill(outcome: Any) -> bool:
    """Whether an answer to a prefilled request is the model refusing the prefill itself.

    A 400 (or 422) whose error text is about a trailing assistant message, as Anthropic's
    "does not support assistant message prefill" and similar gateway messages are. Only asked
    of requests that carried a prefill, so a false positive costs one clean restart.
    """
    if getattr(outcome, "status_code", None) not in (400, 422):
        return False
    try:
        text = json.dumps(outcome.json())
    except (ValueError, TypeError, AttributeError):
        text = bytes(getattr(outcome, "content", b"") or b"").decode("utf-8", "replace")
    return bool(_REFUSAL.search(text))


def prefill_refused_step(restart: bool, has_next_model: bool) -> Step:
    """What follows a refused prefill: the same model at once without it, else move on.

    Never the refusal's own 400 as the call's outcome: the flow raises the original break.
    """
    if restart:
        return Step("retry", delay=0.0, reason="the model refused the prefill: restarting")
    return Step(
        "fallback" if has_next_model else "raise",
        reason="the model refused the prefill and the reader did not allow a restart",
    )
