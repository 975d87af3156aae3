"""The driver's part of a stream: read a streamed response up to its first chunk.

A failure before that chunk (connection error, stall, an in-stream error event, a malformed
event, an end without a chunk) closes the response and becomes the attempt's outcome, so
retry and fallback apply as for any call. Once the first chunk is in, the outcome is a
``StreamStart``, which the spec's ``parse`` (``_stream.stream_spec``) turns into a ``Stream``.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Iterable, Iterator, List, NamedTuple, Optional, Tuple, Union

from ._clock import Clock
from ._decode import loads
from ._errors import APIError, APITimeoutError
from ._policy import ResponseLike
from ._redact import Redactor
from ._sse import SKIP, ErrorEvent, ServerSentEvent, error_status, iter_events, parse_event
from ._transport import Response
from ._types import ChatCompletionChunk

__all__ = ["FirstToken", "Opened", "StreamStart", "has_content", "open_stream"]


class StreamStart(ResponseLike):
    """A 2xx stream read up to its first chunk, or the reason it has none (``problem``).

    It is the outcome a driver hands the flow for a streamed attempt that got that far; the
    flow classifies it as a 2xx and its spec's ``parse`` makes the ``Stream`` (or raises
    ValueError with ``problem``, which the flow treats as an invalid body: retry, fallback).
    ``rest`` holds chunks read after ``first`` while waiting for the first content chunk.
    """

    def __init__(
        self,
        response: Response,
        events: Iterator[ServerSentEvent],
        first: Optional[ChatCompletionChunk],
        problem: Optional[str] = None,
        rest: Tuple[ChatCompletionChunk, ...] = (),
    ) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.content = b""
        self.url = response.url
        self.response = response
        self.events = events
        self.first = first
        self.problem = problem
        self.rest = rest

    def json(self) -> Any:
        raise ValueError("a stream has no JSON body")


Opened = Union[Response, StreamStart, APIError]


class FirstToken(NamedTuple):
    """A stream's first-token budget: the first content chunk is due by ``due`` (monotonic).

    ``seconds`` is the budget as configured (for messages); ``read`` the read timeout that
    applies once content flows.
    """

    due: float
    seconds: float
    read: float
    clock: Clock


def has_content(chunk: ChatCompletionChunk) -> bool:
    """Whether a chunk carries more than a role: text, a refusal, tool calls, reasoning
    text, a finish reason or usage (a role-only opening chunk is not a first token)."""
    if chunk.usage is not None:
        return True
    for choice in chunk.choices:
        if choice.finish_reason is not None:
            return True
        for key, value in choice.delta.to_dict().items():
            if key != "role" and value not in (None, "", [], {}):
                return True
    return False


def open_stream(
    response: Response,
    model: Optional[str],
    first_token: Optional[FirstToken] = None,
    redactor: Optional[Redactor] = None,
) -> Opened:
    """Read a streamed response up to its first chunk; the driver calls it after sending.

    With ``first_token``, up to its first *content* chunk, within that budget: each socket
    read waits at most what is left of it, and past it the attempt is an ``APITimeoutError``
    (which moves to the next model at once). The read timeout applies again once content
    has arrived.

    Returns:
        ``response`` itself when it is not a 2xx (the flow classifies its status); a
        ``StreamStart`` holding the open stream and its first chunk; an ``APIError`` when the
        connection failed or stalled before it (retryable); a ``StreamStart`` with a
        ``problem`` for a malformed or empty stream; or, for an in-stream error event, a
        response with the status that event stands for (its own, else 500), so it is
        retried or not exactly like that status. With ``redactor``, every event's data is
        scrubbed of the key before it is parsed (and so before any error quotes it).
    """
    if not 200 <= response.status_code < 300:
        return response
    budget = None if first_token is None else _Budget(response, first_token)
    events = iter_events(response.iter_bytes() if budget is None else budget.pieces())
    if redactor is not None:
        events = _scrubbed(events, redactor)
    problem: Optional[str] = None
    held: List[ChatCompletionChunk] = []
    try:
        if "json" in str(response.headers.get("content-type", "")).lower():
            raise ValueError(_not_a_stream(response, redactor))
        while True:
            event = next(events, None)
            if event is None:
                if held:  # role chunks, then the end: the Stream reports the cut as before
                    return _started(response, events, held, budget)
                problem = "the stream ended before its first chunk"
                break
            chunk = parse_event(event, model or "")
            if chunk is SKIP:
                continue
            if chunk is None:
                if held:  # an empty answer is an answer: the Stream sees the [DONE] again
                    return _started(response, itertools.chain((event,), events), held, budget)
                problem = "the stream ended with [DONE] before its first chunk"
                break
            held.append(chunk)
            if budget is None or has_content(chunk):
                return _started(response, events, held, budget)
    except APIError as error:
        response.close()
        if budget is not None and isinstance(error, APITimeoutError) and error is not budget.late:
            return budget.expired(error)
        return error
    except ErrorEvent as error:
        response.close()
        body = json.dumps(error.payload).encode()
        status = error_status(error.payload)
        return Response(status, response.headers, body, response.url)
    except ValueError as exc:
        problem = str(exc)
    response.close()
    return StreamStart(response, iter(()), None, problem)


class _Budget:
    """Holds a stream's reads to its first-token budget until content arrives."""

    def __init__(self, response: Response, first_token: FirstToken) -> None:
        self.response = response
        self.first_token = first_token
        self.active = True
        self.late: Optional[APITimeoutError] = None

    def pieces(self) -> Iterator[bytes]:
        """The body's pieces; while active, each read waits at most what is left of the
        budget, and none starts past it (keep-alive comments do not stretch it)."""
        source = self.response.iter_bytes()
        ft = self.first_token
        while True:
            if self.active:
                left = ft.due - ft.clock.monotonic()
                if left <= 0:
                    self.late = self.expired(None)
                    raise self.late
                self.response.set_read_timeout(min(ft.read, left))
            piece = next(source, None)
            if piece is None:
                return
            yield piece

    def end(self) -> None:
        """Content arrived: from now on the read timeout."""
        self.active = False
        self.response.set_read_timeout(self.first_token.read)

    def expired(self, cause: Optional[APIError]) -> APITimeoutError:
        """The error of a stream whose first content chunk did not come within its budget."""
        detail = f" ({cause})" if cause is not None else ""
        return APITimeoutError(f"no first token within {self.first_token.seconds:g}s{detail}")


def _started(
    response: Response,
    events: Iterator[ServerSentEvent],
    held: List[ChatCompletionChunk],
    budget: Optional[_Budget],
) -> StreamStart:
    if budget is not None:
        budget.end()
    return StreamStart(response, events, held[0], rest=tuple(held[1:]))


def _scrubbed(events: Iterable[ServerSentEvent], redactor: Redactor) -> Iterator[ServerSentEvent]:
    for event in events:
        data = redactor.json_text(event.data)
        if data is not event.data:
            event = ServerSentEvent(data, event.event, event.id, event.retry)
        yield event


def _not_a_stream(response: Response, redactor: Optional[Redactor]) -> str:
    raw = b"".join(response.iter_bytes())
    if redactor is not None:
        raw = redactor.body(raw)
    body = raw[:200].decode("utf-8", "replace")
    try:
        payload = loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "error" in payload:
        raise ErrorEvent(payload)
    return f"asked for a stream, got a JSON body: {body!r}"
