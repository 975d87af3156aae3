"""Streamed chat completions: the ``Stream`` object, ``accumulate``, and the call spec.

How a stream meets the call flow: the driver sends the request, then ``open_stream``
(``_stream_open``) reads it up to its first chunk; a failure before that chunk is the
attempt's outcome, so retry and fallback apply as for any call. Once the first chunk is in,
the spec's ``parse`` turns the ``StreamStart`` into the ``Stream`` the caller iterates, and
from then on a failure raises ``APIStreamError`` with the text received so far: text already
shown cannot be taken back, and a cut answer must never look whole.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import weakref
from typing import Any, Callable, Iterable, List, Mapping, Optional, Tuple

from ._accumulate import Accumulator
from ._attempt import Attempt
from ._clock import Clock
from ._errors import APIError, APIStreamError
from ._flow import CallSpec
from ._policy import ResponseLike
from ._sse import SKIP, ErrorEvent, parse_event
from ._stream_open import StreamStart
from ._types import ChatCompletion, ChatCompletionChunk, Usage

__all__ = ["OnAttempt", "Stream", "accumulate", "defer_success", "stream_spec"]

logger = logging.getLogger("cometsync")

OnAttempt = Callable[[Attempt], None]
_DRAIN_EVENTS = 64  # events read after [DONE] so the connection can be reused
_DRAIN_WAIT = 0.05  # seconds a read after [DONE] may wait


def defer_success(emit: OnAttempt) -> OnAttempt:
    """An ``on_attempt`` for streamed calls: a success is reported by its Stream once it ends.

    So every attempt is reported once, the streamed one with its total ``duration``.
    """

    def hook(attempt: Attempt) -> None:
        if attempt.decision != "success":
            emit(attempt)

    return hook


class _State:
    """Everything a Stream holds; kept apart so a finalizer can end it without the Stream."""

    def __init__(
        self,
        start: StreamStart,
        model: str,
        clock: Clock,
        emit: Optional[OnAttempt],
        scrub: Callable[[str], str],
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
        self.opened_at = clock.monotonic()
        self.acc = Accumulator(model)
        for chunk in self.pending:
            self.acc.add(chunk)
        self.attempts: Tuple[Attempt, ...] = ()
        self.lock = threading.Lock()
        self.ended = False
        self.done = False
        self.error: Optional[APIStreamError] = None

    @property
    def model(self) -> str:
        return str(self.acc.head.get("model") or self.acc.requested_model)

    def read(self) -> Optional[ChatCompletionChunk]:
        """The next chunk, or None at the end; raises APIStreamError when the stream breaks."""
        if self.ended:
            return None
        if self.pending:
            return self.pending.pop(0)
        cause: Optional[BaseException] = None
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
            problem, cause = str(exc), exc
        except ErrorEvent as exc:
            problem = f"the server sent an error event: {exc}"
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
        raise self.broken(problem) from cause

    def broken(self, problem: str) -> APIStreamError:
        """End the stream as broken after its first chunk; return the error to raise."""
        text = self.acc.text
        error = APIStreamError(
            self.scrub(
                f"the stream from model {self.model} broke after {self.acc.count} chunks "
                f"({len(text)} characters received): {problem}"
            ),
            model=self.model,
            partial=text,
        )
        self.end(error=error)
        error.attempts = self.attempts
        return error

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


class Stream:
    """A streamed chat completion: iterate it for ``ChatCompletionChunk`` objects.

    Use it as a context manager (or call ``close()``) to give its connection back to the pool
    when you stop early; it is also given back when the stream ends, breaks, or is garbage
    collected. Consume it from one thread; ``close()`` may be called from any.

    Raises (while iterating):
        APIStreamError: the stream broke after its first chunk (cut short, reset, stalled
            longer than the read timeout, an error event, a malformed event); ``.partial``
            holds the text received so far and ``.attempts`` the call's history.
    """

    def __init__(self, state: _State) -> None:
        self._state = state
        self._finalizer = weakref.finalize(
            self, state.end, reason="abandoned: garbage collected before its end"
        )
        self._finalizer.atexit = False

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> ChatCompletionChunk:
        chunk = self._state.read()
        if chunk is None:
            raise StopIteration
        return chunk

    def close(self) -> None:
        """Stop reading and give the connection back to the pool (idempotent)."""
        self._finalizer.detach()
        state = self._state
        state.end(
            reason="" if state.ended else f"closed by the caller after {state.acc.count} chunks"
        )

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def get_final_completion(self) -> ChatCompletion:
        """Read the rest of the stream and return the whole answer as a ``ChatCompletion``.

        Raises:
            APIStreamError: the stream broke, or was closed before its end (never a cut
                answer that looks whole).
        """
        for _ in self:
            pass
        state = self._state
        if state.error is not None:
            raise state.error
        if not state.done:
            raise state.broken("the stream was closed before its end")
        result = state.acc.completion(state.attempts)
        request_id = state.response.headers.get("x-request-id")
        return dataclasses.replace(result, _request_id=request_id) if request_id else result

    @property
    def text(self) -> str:
        """The content received so far (first choice)."""
        return self._state.acc.text

    @property
    def model(self) -> str:
        """The model that is answering (after fallback, not necessarily the requested one)."""
        return self._state.model

    @property
    def finish_reason(self) -> Optional[str]:
        """The first choice's finish_reason once it arrived, else None."""
        return self._state.acc.finish.get(0)

    @property
    def usage(self) -> Optional[Usage]:
        """The usage chunk's counts (``stream_options={"include_usage": True}``), else None."""
        return self._state.acc.usage

    @property
    def attempts(self) -> Tuple[Attempt, ...]:
        """The call's attempts; the last one gets its ``duration`` when the stream ends."""
        return self._state.attempts

    @property
    def closed(self) -> bool:
        """Whether the connection was given back (end, error, or close)."""
        return self._state.ended

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers."""
        return self._state.response.headers

    def __repr__(self) -> str:
        state = self._state
        status = (
            "done"
            if state.done
            else "failed"
            if state.error
            else "closed"
            if state.ended
            else "open"
        )
        return f"Stream(model={self.model!r}, chunks={state.acc.count}, {status})"


def accumulate(chunks: Iterable[ChatCompletionChunk]) -> ChatCompletion:
    """The ``ChatCompletion`` a stream amounts to: content, finish reason, usage, tool calls.

    Given a ``Stream``, reads what is left of it (chunks already consumed count too); given
    any other iterable of chunks, folds them.

    Raises:
        APIStreamError: a Stream broke or was closed before its end.
        ValueError: plain chunks that end before every choice has its finish_reason.
        TypeError: an item is not a ``ChatCompletionChunk``.
    """
    if isinstance(chunks, Stream):
        return chunks.get_final_completion()
    acc = Accumulator("")
    for chunk in chunks:
        if not isinstance(chunk, ChatCompletionChunk):
            raise TypeError(
                f"accumulate() takes ChatCompletionChunk items, got {type(chunk).__name__}"
            )
        acc.add(chunk)
    if not acc.finished:
        raise ValueError(
            "the chunks end before every choice has a finish_reason: the stream was cut short"
        )
    return acc.completion(())


def stream_spec(
    route: str,
    body: Mapping[str, Any],
    *,
    clock: Clock,
    emit: Optional[OnAttempt],
    scrub: Callable[[str], str] = str,
) -> CallSpec[Stream]:
    """The call spec of a streamed chat completion: its parse makes the ``Stream``.

    Args:
        route: the path as recorded in attempts.
        body: the JSON body without ``model``.
        clock: measures the stream's total duration.
        emit: receives the streamed attempt's final record when the stream ends.
        scrub: removes secrets from error text.
    """

    def parse(outcome: ResponseLike, model: Optional[str]) -> Stream:
        if not isinstance(outcome, StreamStart):
            raise ValueError("the driver did not open the stream")
        if outcome.first is None:
            raise ValueError(outcome.problem or "the stream has no chunk")
        return Stream(_State(outcome, model or "", clock, emit, scrub))

    def attach(stream: Stream, attempts: Tuple[Attempt, ...]) -> Stream:
        stream._state.attempts = tuple(attempts)
        return stream

    return CallSpec(
        method="POST",
        path="/chat/completions",
        route=route,
        parse=parse,
        body={**body, "stream": True},
        attach=attach,  # type: ignore[arg-type]
        stream=True,
    )
