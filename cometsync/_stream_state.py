"""What a ``Stream`` holds and does: read chunks, end once, and recover a broken stream.

Kept apart from the ``Stream`` so a finalizer can end it without the Stream, and so the
recovery (a break sent back into the call flow, the new stream adopted in place of the old
one) reads on its own.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from typing import Any, Callable, List, Mapping, Optional, Tuple

from ._accumulate import Accumulator
from ._attempt import Attempt
from ._clock import Clock
from ._errors import APIError, APIStreamError
from ._policy import ResponseLike
from ._recovery import Deliver, FlowHandle, StreamBreak, continuation_body
from ._sse import SKIP, ErrorEvent, error_status, parse_event
from ._stream_open import StreamStart
from ._transport import Response
from ._types import ChatCompletionChunk, Usage

__all__ = ["OnAttempt", "OnRestart", "State", "add_usage"]

logger = logging.getLogger("cometsync")

OnAttempt = Callable[[Attempt], None]
#: Called with the text a restart discards, before the restarted answer's first chunk.
OnRestart = Callable[[str], None]
_DRAIN_EVENTS = 64  # events read after [DONE] so the connection can be reused
_DRAIN_WAIT = 0.05  # seconds a read after [DONE] may wait


def add_usage(a: Optional[Usage], b: Optional[Usage]) -> Optional[Usage]:
    """The sum of two usage reports (None when neither was reported)."""
    if a is None or b is None:
        return a or b
    return Usage.from_dict(
        {
            "prompt_tokens": a.prompt_tokens + b.prompt_tokens,
            "completion_tokens": a.completion_tokens + b.completion_tokens,
            "total_tokens": a.total_tokens + b.total_tokens,
        }
    )


def _has_content(chunk: ChatCompletionChunk) -> bool:
    return any(c.delta.content or c.delta.to_dict().get("tool_calls") for c in chunk.choices)


class State:
    """Everything a Stream holds; kept apart so a finalizer can end it without the Stream."""

    def __init__(
        self,
        start: StreamStart,
        model: str,
        clock: Clock,
        emit: Optional[OnAttempt],
        scrub: Callable[[str], str],
        body: Optional[Mapping[str, Any]] = None,
    ) -> None:
        assert start.first is not None
        self.response = start.response
        self.events = start.events
        # The chunks read before the stream was handed over (the first, then any role-only
        # ones held while waiting for the first content chunk).
        self.pending: List[ChatCompletionChunk] = [start.first, *start.rest]
        self.clock = clock
        self.emit = emit
        self.scrub = scrub
        self.body = body
        self.opened_at = clock.monotonic()
        self.acc = Accumulator(model)
        for chunk in self.pending:
            self.acc.add(chunk)
        self.attempts: Tuple[Attempt, ...] = ()
        self.lock = threading.Lock()
        self.ended = False
        self.done = False
        self.error: Optional[APIStreamError] = None
        # Recovery (see _recovery): set when the client binds the call flow to the stream.
        self.flow: Optional[FlowHandle] = None
        self.on_restart: List[OnRestart] = []
        self.shown = False  # content handed to the reader's own iteration
        self.draining = False  # get_final_completion is reading: nothing is shown
        self.recoveries = 0
        self.restarts = 0
        self.spent: Optional[Usage] = None  # usage reported by attempts given up on

    @property
    def model(self) -> str:
        return str(self.acc.head.get("model") or self.acc.requested_model)

    @property
    def usage(self) -> Optional[Usage]:
        return add_usage(self.spent, self.acc.usage)

    def next_chunk(self) -> Optional[ChatCompletionChunk]:
        """The next chunk for the reader (marking shown content), or None at the end."""
        chunk = self.read()
        if chunk is not None and not self.draining and not self.shown:
            self.shown = _has_content(chunk)
        return chunk

    def read(self) -> Optional[ChatCompletionChunk]:
        """The next chunk, or None at the end; raises APIStreamError when the stream breaks
        (after recovery, when it is on, failed)."""
        if self.ended:
            return None
        if self.pending:
            return self.pending.pop(0)
        cause: Optional[BaseException] = None
        flow_cause: Any = None
        try:
            for event in self.events:
                chunk = parse_event(event, self.model)
                if chunk is None:
                    self.end(done=True)
                    return None
                if chunk is not SKIP:
                    self.acc.add(chunk)
                    return chunk  # type: ignore[no-any-return]
        except APIError as exc:
            problem, cause, flow_cause = str(exc), exc, exc
        except ErrorEvent as exc:
            problem = f"the server sent an error event: {exc}"
            flow_cause = _event_response(self.response, exc)
        except ValueError as exc:
            problem = str(exc)
        except Exception as exc:  # e.g. close() from another thread pulled the body away
            if self.ended:
                return None
            problem, cause = f"{type(exc).__name__}: {exc}", exc
        else:
            if self.acc.finished:
                self.end(done=True)
                return None
            problem = "the stream ended without [DONE] or a finish_reason: it was cut short"
        if self.ended:  # closed by the caller while a read was waiting: not a failure
            return None
        if self.flow is not None:
            brk = self._break(problem, flow_cause)
            if brk is not None:
                return self._recover(brk, cause)
        raise self.broken(problem) from cause

    def _error(self, problem: str) -> APIStreamError:
        text = self.acc.text
        return APIStreamError(
            self.scrub(
                f"the stream from model {self.model} broke after {self.acc.count} chunks "
                f"({len(text)} characters received): {problem}"
            ),
            model=self.model,
            partial=text,
        )

    def broken(self, problem: str) -> APIStreamError:
        """End the stream as broken after its first chunk; return the error to raise."""
        error = self._error(problem)
        self.end(error=error)
        error.attempts = self.attempts
        return error

    # -- recovery ----------------------------------------------------------------------------

    def _break(self, problem: str, cause: Any) -> Optional[StreamBreak]:
        """The break to send into the flow, or None when no recovery may show sound text.

        A continuation needs the partial answer as plain text of one choice; a restart is
        allowed when the reader was shown nothing yet or opted in (``on_restart``).
        """
        continuation = None
        message = self.acc.messages.get(0, {})
        text = self.acc.text
        if (
            self.body is not None
            and text
            and len(self.acc.messages) == 1
            and not message.get("tool_calls")
            and not message.get("function_call")
        ):
            continuation = continuation_body(self.body, text)
        restart = bool(self.on_restart) or not self.shown
        if continuation is None and not restart:
            return None
        return StreamBreak(self._error(problem), cause, continuation, restart, self.acc.count)

    def _recover(
        self, brk: StreamBreak, cause: Optional[BaseException]
    ) -> Optional[ChatCompletionChunk]:
        """Ask again through the call flow; adopt the new stream, or raise the original break."""
        assert self.flow is not None
        logger.info("stream from model=%s broke; recovering: %s", self.model, brk.error)
        try:
            self.response.close()
        except Exception:  # a failing close must not stop the recovery
            logger.debug("closing a broken stream's response failed", exc_info=True)
        try:
            delivered = self.flow.resume(brk)
        except APIError as failed:
            if isinstance(failed, APIStreamError):
                failed.partial = self.acc.text
            self.attempts = failed.attempts
            with self.lock:
                self.ended = True
                self.error = failed if isinstance(failed, APIStreamError) else None
            raise failed from cause
        if self.ended:  # closed by the caller while the recovery was under way
            delivered.result.close()
            return None
        return self._adopt(delivered, brk)

    def _adopt(self, delivered: Deliver, brk: StreamBreak) -> ChatCompletionChunk:
        """Read on from the recovered stream: its chunks continue the answer, or restart it."""
        new = delivered.result
        new._finalizer.detach()  # its state lives on in this one
        other: State = new._state
        self.response, self.events = other.response, other.events
        self.attempts, self.opened_at = other.attempts, other.opened_at
        held, self.pending = other.pending[0], other.pending[1:]
        self.spent = add_usage(self.spent, self.acc.usage)
        self.recoveries += 1
        if delivered.continued:
            self.acc.head.clear()  # the id and model of the answer that finishes it
            self.acc.usage = None
            for chunk in other.pending:
                self.acc.add(chunk)
            return held
        discarded = self.acc.text
        self.acc = Accumulator(self.acc.requested_model)
        for chunk in other.pending:
            self.acc.add(chunk)
        self.restarts += 1
        self.shown = False
        logger.info("stream restarted on model=%s after %s", self.model, brk.error)
        for hook in self.on_restart:
            try:
                hook(discarded)
            except Exception:  # an observer's bug must not break the caller's stream
                logger.exception("on_restart hook raised; the stream goes on")
        return held

    # -- the end -------------------------------------------------------------------------

    def end(
        self, *, done: bool = False, error: Optional[APIStreamError] = None, reason: str = ""
    ) -> None:
        """Release the connection and report the attempt's final record (once)."""
        with self.lock:
            if self.ended:
                return
            self.ended = True
            self.done = done
            self.error = error
        if done:
            self._drain()
        try:
            self.response.close()
        except Exception:  # a failing close must not hide the stream's own outcome
            logger.debug("closing a stream's response failed", exc_info=True)
        self._report(error, reason)
        if self.flow is not None:
            self.flow.close()

    def _drain(self) -> None:
        """Read what follows [DONE] (normally just the body's end) so the connection can be
        reused, but never wait for it: a server holding the body open costs 50 ms at most,
        then the connection is closed instead of reused."""
        try:
            with self.response.short_reads(_DRAIN_WAIT):
                for _ in zip(range(_DRAIN_EVENTS), self.events):
                    pass
        except (APIError, ValueError, OSError):
            pass

    def _report(self, error: Optional[APIStreamError], reason: str) -> None:
        if not self.attempts:
            return
        last = self.attempts[-1]
        elapsed = self.clock.monotonic() - self.opened_at
        final = dataclasses.replace(
            last,
            duration=last.latency + elapsed,
            decision="raise" if error is not None else last.decision,
            error=None if error is None else f"APIStreamError: {error}",
            reason=reason or last.reason,
        )
        self.attempts = (*self.attempts[:-1], final)
        if self.emit is not None:
            try:
                self.emit(final)
            except Exception:  # an observer's bug must not break the caller's stream
                logger.exception("on_attempt hook raised on a stream's final record")


def _event_response(response: Any, error: ErrorEvent) -> ResponseLike:
    """The response an in-stream error event stands for (its status, else 500)."""
    body = json.dumps(error.payload).encode()
    return Response(error_status(error.payload), response.headers, body, response.url)
