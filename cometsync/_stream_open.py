"""The driver's part of a stream: read a streamed response up to its first chunk.

A failure before that chunk (connection error, stall, an in-stream error event, a malformed
event, an end without a chunk) closes the response and becomes the attempt's outcome, so
retry and fallback apply as for any call. Once the first chunk is in, the outcome is a
``StreamStart``, which the spec's ``parse`` (``_stream.stream_spec``) turns into a ``Stream``.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Optional, Union

from ._errors import APIError
from ._policy import ResponseLike
from ._sse import SKIP, ErrorEvent, ServerSentEvent, error_status, iter_events, parse_event
from ._transport import Response
from ._types import ChatCompletionChunk

__all__ = ["Opened", "StreamStart", "open_stream"]


class StreamStart(ResponseLike):
    """A 2xx stream read up to its first chunk, or the reason it has none (``problem``).

    It is the outcome a driver hands the flow for a streamed attempt that got that far; the
    flow classifies it as a 2xx and its spec's ``parse`` makes the ``Stream`` (or raises
    ValueError with ``problem``, which the flow treats as an invalid body: retry, fallback).
    """

    def __init__(
        self,
        response: Response,
        events: Iterator[ServerSentEvent],
        first: Optional[ChatCompletionChunk],
        problem: Optional[str] = None,
    ) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.content = b""
        self.url = response.url
        self.response = response
        self.events = events
        self.first = first
        self.problem = problem

    def json(self) -> Any:
        raise ValueError("a stream has no JSON body")


Opened = Union[Response, StreamStart, APIError]


def open_stream(response: Response, model: Optional[str]) -> Opened:
    """Read a streamed response up to its first chunk; the driver calls it after sending.

    Returns:
        ``response`` itself when it is not a 2xx (the flow classifies its status); a
        ``StreamStart`` holding the open stream and its first chunk; an ``APIError`` when the
        connection failed or stalled before it (retryable); a ``StreamStart`` with a
        ``problem`` for a malformed or empty stream; or, for an in-stream error event, a
        response with the status that event stands for (its own, else 500), so it is
        retried or not exactly like that status.
    """
    if not 200 <= response.status_code < 300:
        return response
    events = iter_events(response.iter_bytes())
    problem: Optional[str] = None
    try:
        if "json" in str(response.headers.get("content-type", "")).lower():
            raise ValueError(_not_a_stream(response))
        for event in events:
            chunk = parse_event(event, model or "")
            if chunk is SKIP:
                continue
            if chunk is not None:
                return StreamStart(response, events, chunk)
            problem = "the stream ended with [DONE] before its first chunk"
            break
        else:
            problem = "the stream ended before its first chunk"
    except APIError as error:
        response.close()
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


def _not_a_stream(response: Response) -> str:
    body = b"".join(response.iter_bytes())[:200].decode("utf-8", "replace")
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "error" in payload:
        raise ErrorEvent(payload)
    return f"asked for a stream, got a JSON body: {body!r}"
