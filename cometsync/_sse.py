"""Server-sent events to chat chunks, with no I/O: the decoder and the parse of one event.

Kept pure so every framing corner (split lines, CR/LF pairs, comments, error events) is
testable without a socket; the ``Stream`` and the driver's ``open_stream`` read through it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional

from ._decode import loads
from ._types import ChatCompletionChunk

__all__ = [
    "SKIP",
    "ErrorEvent",
    "SSEDecoder",
    "ServerSentEvent",
    "error_status",
    "iter_events",
    "parse_event",
]

_EOL = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event: its ``data`` lines joined by newlines, and its optional fields."""

    data: str
    event: str = "message"
    id: Optional[str] = None
    retry: Optional[int] = None


class SSEDecoder:
    """Turns the bytes of a ``text/event-stream`` into events, as the WHATWG spec says.

    Lines end in CRLF, LF or CR, even when split across pieces; ``data:`` lines of one event
    are joined with newlines; ``:`` lines are comments (keep-alives); an event is dispatched
    at a blank line, and one cut off by the end of the stream is dropped.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._skip_lf = False  # the last piece ended in CR: a LF opening the next one is its pair
        self._data: List[str] = []
        self._event = ""
        self._id: Optional[str] = None
        self._retry: Optional[int] = None

    def feed(self, piece: bytes) -> Iterator[ServerSentEvent]:
        """The events completed by ``piece``, lazily (so an error comes after earlier events).

        Raises:
            ValueError: a line is not UTF-8.
        """
        if not piece:
            return
        if self._skip_lf and piece.startswith(b"\n"):
            piece = piece[1:]
        buffer = self._buffer + piece
        start = 0
        for end in _EOL.finditer(buffer):
            self._buffer = buffer[end.end() :]
            self._skip_lf = end.group() == b"\r" and end.end() == len(buffer)
            event = self._line(buffer[start : end.start()])
            start = end.end()
            if event is not None:
                yield event
        self._buffer = buffer[start:]

    def _line(self, line: bytes) -> Optional[ServerSentEvent]:
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            return None
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"an event line is not UTF-8: {line[:80]!r}") from exc
        name, _, value = text.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> Optional[ServerSentEvent]:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent("\n".join(data), event or "message", self._id, self._retry)


def iter_events(pieces: Iterable[bytes]) -> Iterator[ServerSentEvent]:
    """The events of a stream given as byte pieces."""
    decoder = SSEDecoder()
    for piece in pieces:
        yield from decoder.feed(piece)


class ErrorEvent(Exception):
    """An ``{"error": ...}`` event inside a stream."""

    def __init__(self, payload: Dict[str, Any]) -> None:
        super().__init__(_error_text(payload))
        self.payload = payload


SKIP: Any = object()


def parse_event(event: ServerSentEvent, model: str) -> Any:
    """The chunk an event carries, None for ``[DONE]``, or ``SKIP`` for other event types.

    Raises:
        ErrorEvent: the event reports an error.
        ValueError: the event is not valid JSON or not a chunk.
    """
    if event.event not in ("message", "error"):
        return SKIP  # named events (``ping``...) are not part of the chat.completion protocol
    if event.data.strip() == "[DONE]":
        return None
    try:
        data = loads(event.data)
    except ValueError as exc:
        raise ValueError(f"malformed event: not JSON ({exc}): {event.data[:120]!r}") from None
    if isinstance(data, dict) and ("error" in data or event.event == "error"):
        raise ErrorEvent(data)
    try:
        return ChatCompletionChunk.from_dict(data, requested_model=model)
    except ValueError as exc:
        raise ValueError(f"malformed event: {exc}: {event.data[:120]!r}") from None


def _error_text(payload: Mapping[str, Any]) -> str:
    err = payload.get("error", payload)
    if isinstance(err, Mapping):
        parts = [str(err.get("message") or "no message")]
        code = err.get("code") or err.get("type")
        if code is not None:
            parts.append(f"(code {code})")
        return " ".join(parts)
    return str(err)[:300]


def error_status(payload: Mapping[str, Any]) -> int:
    """The HTTP status an error event stands for: the one it names, else 500."""
    err = payload.get("error")
    for source in (err if isinstance(err, Mapping) else {}, payload):
        for key in ("status", "status_code", "code"):
            value = source.get(key)
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if isinstance(value, int) and not isinstance(value, bool) and 400 <= value < 600:
                return value
    return 500
