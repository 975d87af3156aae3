"""Public test doubles: a fake clock and a scripted, recording transport.

Use them to test code built on cometsync without sockets or sleeps::

    clock = FakeClock()
    transport = ScriptedTransport([json_response(429, {...}, {"retry-after": "1"}),
                                   json_response(200, completion_body("hi"))])
    client = cometsync.Client(api_key="k", transport=transport, clock=clock)
"""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

from ._errors import APIConnectionError
from ._transport import HTTPRequest, Response
from ._types import Timeout

__all__ = [
    "DONE",
    "FakeClock",
    "ScriptedTransport",
    "StreamedResponse",
    "chunk_body",
    "completion_body",
    "json_response",
    "sse",
]


class FakeClock:
    """A clock that only moves when slept on or advanced; records every sleep."""

    def __init__(self, start: float = 1_000.0, wall: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall - start
        self.sleeps: List[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._wall_offset

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        """Move time forward without recording a sleep (time spent elsewhere)."""
        with self._lock:
            self._now += seconds


Step = Union[Response, APIConnectionError]


def json_response(
    status: int, body: Any = None, headers: Optional[Mapping[str, str]] = None, url: str = ""
) -> Response:
    """A response with a JSON body (or raw bytes/str when ``body`` is not JSON-able)."""
    if isinstance(body, bytes):
        content = body
    elif isinstance(body, str):
        content = body.encode()
    else:
        content = json.dumps(body).encode() if body is not None else b""
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    return Response(status, hdrs, content, url or "http://test.invalid/v1/chat/completions")


def completion_body(
    content: Optional[str] = "ok", model: str = "m1", **extra: Any
) -> Dict[str, Any]:
    """A minimal valid ``chat.completion`` body."""
    body: Dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    body.update(extra)
    return body


DONE = b"data: [DONE]\n\n"


def sse(payload: Any) -> bytes:
    """One ``data:`` event carrying ``payload`` as JSON."""
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def chunk_body(
    content: Optional[str] = None,
    *,
    role: Optional[str] = None,
    finish_reason: Optional[str] = None,
    model: str = "m1",
    index: int = 0,
    usage: Optional[Mapping[str, int]] = None,
) -> Dict[str, Any]:
    """A ``chat.completion.chunk`` body; ``usage`` alone makes the final usage chunk."""
    delta: Dict[str, Any] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    body: Dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["choices"] = []
        body["usage"] = dict(usage)
    return body


class StreamedResponse(Response):
    """A ``text/event-stream`` response that yields scripted pieces, then raises ``error``.

    Pieces are bytes sent as they are, or JSON-able payloads sent as one ``data:`` event each.
    ``closed`` tells whether the connection was given back; ``reads`` how many pieces were read.
    """

    def __init__(
        self,
        pieces: Sequence[Any],
        *,
        error: Optional[BaseException] = None,
        status: int = 200,
        headers: Optional[Mapping[str, str]] = None,
        url: str = "",
    ) -> None:
        hdrs = {"content-type": "text/event-stream"}
        hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
        super().__init__(status, hdrs, b"", url or "http://test.invalid/v1/chat/completions")
        self._pieces = [p if isinstance(p, bytes) else sse(p) for p in pieces]
        self._error = error
        self.closed = False
        self.reads = 0

    def iter_bytes(self) -> Iterator[bytes]:
        for piece in self._pieces:
            if self.closed:
                return
            self.reads += 1
            yield piece
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self.closed = True


class ScriptedTransport:
    """Answers each send with the next scripted response or raises the scripted error.

    ``requests`` records what was sent (``HTTPRequest`` plus the decoded JSON body), and
    ``timeouts`` the timeout of each send. When the script runs out, it raises AssertionError.
    """

    def __init__(
        self, script: Iterable[Step], clock: Optional[FakeClock] = None, latency: float = 0.0
    ) -> None:
        self._script = list(script)
        self._clock = clock
        self._latency = latency
        self._lock = threading.Lock()
        self.requests: List[HTTPRequest] = []
        self.bodies: List[Any] = []
        self.timeouts: List[Timeout] = []
        self.closed = False

    def send(self, request: HTTPRequest, timeout: Timeout) -> Response:
        with self._lock:
            self.requests.append(request)
            self.bodies.append(json.loads(request.body) if request.body else None)
            self.timeouts.append(timeout)
            if not self._script:
                raise AssertionError(f"ScriptedTransport: no reply left for {request!r}")
            step = self._script.pop(0)
        if self._clock is not None and self._latency:
            self._clock.advance(self._latency)
        if isinstance(step, BaseException):
            raise step
        if not getattr(step, "url", "x"):  # as a real transport, say which URL answered
            step.url = request.url
        return step

    @property
    def models(self) -> List[Optional[str]]:
        """The ``model`` of each request sent, in order."""
        return [b.get("model") if isinstance(b, dict) else None for b in self.bodies]

    def close(self) -> None:
        self.closed = True
