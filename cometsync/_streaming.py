"""Streamed chat completions: server-sent events, the ``Stream`` object, the accumulator.

How a stream meets the call flow: the driver sends the request, then ``open_stream`` reads
it up to its first chunk. A failure before that chunk (connection error, stall, an in-stream
error event, a malformed event, an end without a chunk) closes the response and becomes the
attempt's outcome, so retry and fallback apply as for any call. Once the first chunk is in,
the outcome is a ``StreamStart``; the spec's ``parse`` turns it into the ``Stream`` the
caller iterates, and from then on a failure raises ``APIStreamError`` with the text received
so far: text already shown cannot be taken back, and a cut answer must never look whole.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import re
import threading
import weakref
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
    Union,
)

from ._clock import Clock
from ._errors import APIError, APIStreamError
from ._flow import CallSpec
from ._policy import ResponseLike
from ._transport import Response
from ._types import Attempt, ChatCompletion, ChatCompletionChunk, Usage

__all__ = [
    "SSEDecoder",
    "ServerSentEvent",
    "Stream",
    "StreamStart",
    "accumulate",
    "defer_success",
    "open_stream",
    "stream_spec",
]

logger = logging.getLogger("cometsync")

OnAttempt = Callable[[Attempt], None]
_EOL = re.compile(rb"\r\n|\r|\n")
_DRAIN_EVENTS = 64  # events read after [DONE] so the connection can be reused
_DRAIN_WAIT = 0.05  # seconds a read after [DONE] may wait


# -- server-sent events (pure) -----------------------------------------------------------------
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


class _ErrorEvent(Exception):
    """An ``{"error": ...}`` event inside a stream."""

    def __init__(self, payload: Dict[str, Any]) -> None:
        super().__init__(_error_text(payload))
        self.payload = payload


_SKIP: Any = object()


def parse_event(event: ServerSentEvent, model: str) -> Any:
    """The chunk an event carries, None for ``[DONE]``, or ``_SKIP`` for other event types.

    Raises:
        _ErrorEvent: the event reports an error.
        ValueError: the event is not valid JSON or not a chunk.
    """
    if event.event not in ("message", "error"):
        return _SKIP  # named events (``ping``...) are not part of the chat.completion protocol
    if event.data.strip() == "[DONE]":
        return None
    try:
        data = json.loads(event.data)
    except ValueError:
        raise ValueError(f"malformed event: not JSON: {event.data[:120]!r}") from None
    if isinstance(data, dict) and ("error" in data or event.event == "error"):
        raise _ErrorEvent(data)
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


def _error_status(payload: Mapping[str, Any]) -> int:
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


# -- the driver's part: read up to the first chunk ---------------------------------------------
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
            if chunk is _SKIP:
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
    except _ErrorEvent as error:
        response.close()
        body = json.dumps(error.payload).encode()
        status = _error_status(error.payload)
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
        raise _ErrorEvent(payload)
    return f"asked for a stream, got a JSON body: {body!r}"


def defer_success(emit: OnAttempt) -> OnAttempt:
    """An ``on_attempt`` for streamed calls: a success is reported by its Stream once it ends.

    So every attempt is reported once, the streamed one with its total ``duration``.
    """

    def hook(attempt: Attempt) -> None:
        if attempt.decision != "success":
            emit(attempt)

    return hook


# -- accumulation ------------------------------------------------------------------------------
_REPLACED = frozenset({"index", "type", "id", "role", "name"})


def _merge(acc: Dict[str, Any], delta: Mapping[str, Any]) -> None:
    """Fold one delta into ``acc``: strings join, dicts merge, indexed lists merge by index.

    Identity fields (role, id, type, name, index) are replaced rather than joined: some
    providers repeat them in every chunk.
    """
    for key, value in delta.items():
        old = acc.get(key)
        if value is None:
            acc.setdefault(key, None)
        elif old is None or key in _REPLACED:
            acc[key] = copy.deepcopy(value)
        elif isinstance(old, str) and isinstance(value, str):
            acc[key] = old + value
        elif isinstance(old, dict) and isinstance(value, Mapping):
            _merge(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            _merge_list(old, value)
        else:
            acc[key] = copy.deepcopy(value)


def _merge_list(acc: List[Any], items: List[Any]) -> None:
    for item in items:
        index = item.get("index") if isinstance(item, Mapping) else None
        target = next((a for a in acc if isinstance(a, dict) and a.get("index") == index), None)
        if isinstance(index, int) and target is not None:
            _merge(target, item)
        else:
            acc.append(copy.deepcopy(item))


class _Accumulator:
    """Builds the ``ChatCompletion`` a stream amounts to, chunk by chunk."""

    def __init__(self, requested_model: str) -> None:
        self.requested_model = requested_model
        self.head: Dict[str, Any] = {}
        self.messages: Dict[int, Dict[str, Any]] = {}
        self.finish: Dict[int, Optional[str]] = {}
        self.usage: Optional[Usage] = None
        self.count = 0

    def add(self, chunk: ChatCompletionChunk) -> None:
        self.count += 1
        for key in ("id", "created", "model", "system_fingerprint"):
            value = getattr(chunk, key)
            if value and not self.head.get(key):
                self.head[key] = value
        for choice in chunk.choices:
            _merge(self.messages.setdefault(choice.index, {}), choice.delta.to_dict())
            self.finish.setdefault(choice.index, None)
            if choice.finish_reason is not None:
                self.finish[choice.index] = choice.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage

    @property
    def text(self) -> str:
        content = self.messages.get(0, {}).get("content")
        return content if isinstance(content, str) else ""

    @property
    def finished(self) -> bool:
        """Whether every choice seen has its finish_reason."""
        return bool(self.finish) and all(r is not None for r in self.finish.values())

    def completion(self, attempts: Tuple[Attempt, ...]) -> ChatCompletion:
        choices = []
        for index in sorted(self.messages):
            message = copy.deepcopy(self.messages[index])
            message.setdefault("role", "assistant")
            message.setdefault("content", None)
            if isinstance(message.get("tool_calls"), list):
                for call in message["tool_calls"]:
                    if isinstance(call, dict):
                        call.pop("index", None)
            choices.append(
                {"index": index, "message": message, "finish_reason": self.finish.get(index)}
            )
        body: Dict[str, Any] = {
            "id": self.head.get("id", ""),
            "object": "chat.completion",
            "created": self.head.get("created", 0),
            "model": self.head.get("model", self.requested_model),
            "choices": choices,
        }
        if self.head.get("system_fingerprint"):
            body["system_fingerprint"] = self.head["system_fingerprint"]
        if self.usage is not None:
            body["usage"] = self.usage.to_dict()
        return ChatCompletion.from_dict(
            body, requested_model=self.requested_model, attempts=attempts
        )


# -- the Stream --------------------------------------------------------------------------------
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
        self.pending: Optional[ChatCompletionChunk] = start.first
        self.clock = clock
        self.emit = emit
        self.scrub = scrub
        self.opened_at = clock.monotonic()
        self.acc = _Accumulator(model)
        self.acc.add(start.first)
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
        if self.pending is not None:
            chunk, self.pending = self.pending, None
            return chunk
        cause: Optional[BaseException] = None
        try:
            for event in self.events:
                chunk = parse_event(event, self.model)
                if chunk is None:
                    self.end(done=True)
                    return None
                if chunk is not _SKIP:
                    self.acc.add(chunk)
                    return chunk  # type: ignore[no-any-return]
        except APIError as exc:
            problem, cause = str(exc), exc
        except _ErrorEvent as exc:
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
        return state.acc.completion(state.attempts)

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
    acc = _Accumulator("")
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
