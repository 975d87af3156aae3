"""Streamed chat completions: the ``Stream`` object, ``accumulate``, and the call spec.

How a stream meets the call flow: the driver sends the request, then ``open_stream``
(``_stream_open``) reads it up to its first chunk; a failure before that chunk is the
attempt's outcome, so retry and fallback apply as for any call. Once the first chunk is in,
the spec's ``parse`` turns the ``StreamStart`` into the ``Stream`` the caller iterates, and
from then on a failure raises ``APIStreamError`` with the text received so far: text already
shown cannot be taken back, and a cut answer must never look whole. With recovery on
(``stream_recovery=True``), the break is first sent back into the call flow, which asks again
for the rest of the answer (``_recovery``, ``_stream_state``).
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any, Callable, Iterable, Mapping, Optional, Tuple

from ._accumulate import Accumulator
from ._attempt import Attempt
from ._clock import Clock
from ._flow import CallSpec
from ._policy import ResponseLike
from ._recovery import FlowHandle
from ._stream_open import StreamStart
from ._stream_state import OnAttempt, OnRestart, State
from ._types import ChatCompletion, ChatCompletionChunk, Usage

__all__ = ["OnAttempt", "OnRestart", "Stream", "accumulate", "defer_success", "stream_spec"]


def defer_success(emit: OnAttempt) -> OnAttempt:
    """An ``on_attempt`` for streamed calls: a success is reported by its Stream once it ends.

    So every attempt is reported once, the streamed one with its total ``duration``.
    """

    def hook(attempt: Attempt) -> None:
        if attempt.decision != "success":
            emit(attempt)

    return hook


class Stream:
    """A streamed chat completion: iterate it for ``ChatCompletionChunk`` objects.

    Use it as a context manager (or call ``close()``) to give its connection back to the pool
    when you stop early; it is also given back when the stream ends, breaks, or is garbage
    collected. Consume it from one thread; ``close()`` may be called from any.

    With recovery on (the default), a break after the first chunk is asked again under the
    call's retry policy, budget, guards and deadline: continued from the partial answer (the
    chunks that follow carry only the rest, so the text joins seamlessly), or, when the model
    refuses a prefill, restarted from scratch: only if nothing was shown yet or the reader
    opted in with :meth:`on_restart` (``restarts`` counts them, and grows before the first
    restarted chunk arrives).

    Raises (while iterating):
        APIStreamError: the stream broke after its first chunk (cut short, reset, stalled
            longer than the read timeout, an error event, a malformed event) and could not be
            recovered; ``.partial`` holds the answer received so far and ``.attempts`` the
            call's history, recovery attempts included.
    """

    def __init__(self, state: State) -> None:
        self._state = state
        self._finalizer = weakref.finalize(
            self, state.end, reason="abandoned: garbage collected before its end"
        )
        self._finalizer.atexit = False

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> ChatCompletionChunk:
        chunk = self._state.next_chunk()
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
        state = self._state
        state.draining = True
        try:
            for _ in self:
                pass
        finally:
            state.draining = False
        if state.error is not None:
            raise state.error
        if not state.done:
            raise state.broken("the stream was closed before its end")
        final = state.acc.completion(state.attempts)
        if state.spent is not None and state.usage is not None:
            final = dataclasses.replace(final, usage=state.usage)
        request_id = state.response.headers.get("x-request-id")
        return dataclasses.replace(final, _request_id=request_id) if request_id else final

    def on_restart(self, callback: OnRestart) -> Stream:
        """Allow clean restarts and be told of each, before its first chunk arrives.

        Without it, a stream broken after text was shown is only continued (never restarted
        from scratch): where the model refuses to continue, ``APIStreamError`` is raised as
        without recovery, so a reader never shows an answer twice unawares.

        Args:
            callback: called with the text the restart discards (what was shown so far).
        """
        self._state.on_restart.append(callback)
        return self

    @property
    def restarts(self) -> int:
        """How many times the answer started over from scratch (check it to discard text)."""
        return self._state.restarts

    @property
    def recoveries(self) -> int:
        """How many times a broken stream was recovered (continued or restarted)."""
        return self._state.recoveries

    def _bind_flow(self, flow: FlowHandle) -> None:
        """Recovery: the client hands over the call flow that delivered this stream."""
        self._state.flow = flow

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
        """The usage chunk's counts (``stream_options={"include_usage": True}``), else None.

        After a recovery, the sum of every usage the server reported for this answer.
        """
        return self._state.usage

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
    recover: bool = False,
) -> CallSpec[Stream]:
    """The call spec of a streamed chat completion: its parse makes the ``Stream``.

    Args:
        route: the path as recorded in attempts.
        body: the JSON body without ``model``.
        clock: measures the stream's total duration.
        emit: receives the streamed attempt's final record when the stream ends.
        scrub: removes secrets from error text.
        recover: recover a stream broken after its first chunk (``stream_recovery``).
    """

    sent = {**body, "stream": True}

    def parse(outcome: ResponseLike, model: Optional[str]) -> Stream:
        if not isinstance(outcome, StreamStart):
            raise ValueError("the driver did not open the stream")
        if outcome.first is None:
            raise ValueError(outcome.problem or "the stream has no chunk")
        return Stream(State(outcome, model or "", clock, emit, scrub, sent if recover else None))

    def attach(stream: Stream, attempts: Tuple[Attempt, ...]) -> Stream:
        stream._state.attempts = tuple(attempts)
        return stream

    return CallSpec(
        method="POST",
        path="/chat/completions",
        route=route,
        parse=parse,
        body=sent,
        attach=attach,  # type: ignore[arg-type]
        stream=True,
        recover=recover,
    )
