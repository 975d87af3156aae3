"""Streaming without sockets: the SSE decoder, chunk parsing, and the Stream on test doubles."""

from __future__ import annotations

import gc
import json
from typing import Any, Dict, List, Optional, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cometsync
from cometsync import (
    APIConnectionError,
    APIStreamError,
    APITimeoutError,
    Attempt,
    BadRequestError,
    ChatCompletion,
    ChatCompletionChunk,
    Constant,
    MetricsRecorder,
    RequestValidationError,
    RetryPolicy,
    Stream,
    accumulate,
)
from cometsync._sse import ServerSentEvent, SSEDecoder, iter_events, parse_event
from cometsync.testing import (
    DONE,
    FakeClock,
    ScriptedTransport,
    StreamedResponse,
    chunk_body,
    completion_body,
    json_response,
    sse,
)

MSGS = [{"role": "user", "content": "hi"}]
POLICY = RetryPolicy(max_retries=1, backoff=Constant(0.5))
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def hello(*, usage: bool = True, model: str = "m1") -> List[Any]:
    """The pieces of a good stream saying "Hello"."""
    pieces: List[Any] = [
        chunk_body("Hel", role="assistant", model=model),
        chunk_body("lo", model=model),
        chunk_body(finish_reason="stop", model=model),
    ]
    if usage:
        pieces.append(chunk_body(usage=USAGE, model=model))
    return [*pieces, DONE]


def make(
    script: Sequence[Any], *, latency: float = 0.0, **kwargs: Any
) -> tuple[cometsync.Client, ScriptedTransport, FakeClock, List[Attempt]]:
    clock = FakeClock()
    transport = ScriptedTransport(script, clock=clock, latency=latency)
    seen: List[Attempt] = []
    kwargs.setdefault("retry", POLICY)
    client = cometsync.Client(
        api_key="k", transport=transport, clock=clock, on_attempt=seen.append, **kwargs
    )
    return client, transport, clock, seen


def open_stream(client: cometsync.Client, **kwargs: Any) -> Stream:
    return client.chat.completions.create(model="m1", messages=MSGS, stream=True, **kwargs)


def events(data: bytes, cuts: Sequence[int] = ()) -> List[ServerSentEvent]:
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return list(iter_events(data[a:b] for a, b in zip(bounds, bounds[1:])))


# -- the SSE decoder -----------------------------------------------------------------------------
def test_decoder_joins_data_lines_and_skips_comments() -> None:
    """Multi-line data is joined with newlines; comment lines and unknown fields are ignored."""
    got = events(b": keep-alive\ndata: a\ndata:b\nfoo: x\nevent: note\nid: 7\nretry: 10\n\n")
    assert got == [ServerSentEvent("a\nb", "note", "7", 10)]


def test_decoder_needs_a_blank_line_and_drops_a_cut_event() -> None:
    """An event is only dispatched at a blank line; one cut off by the end is dropped."""
    assert events(b"data: 1\n\ndata: 2\n") == [ServerSentEvent("1")]


def test_decoder_ignores_blank_lines_without_data() -> None:
    """A blank line with no data line before it dispatches nothing, but ``data:`` alone does."""
    assert events(b"\n\nevent: x\n\ndata:\n\n") == [ServerSentEvent("")]


@given(
    eol=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_decoder_gives_the_same_events_however_the_bytes_are_split(
    eol: bytes, cuts: List[int]
) -> None:
    """CRLF, CR and LF endings split anywhere across pieces give the same events."""
    text = b'data: {"a": 1}\n\n: c\ndata: x\ndata: y\n\ndata: [DONE]\n\n'.replace(b"\n", eol)
    assert events(text, cuts) == [
        ServerSentEvent('{"a": 1}'),
        ServerSentEvent("x\ny"),
        ServerSentEvent("[DONE]"),
    ]


def test_decoder_rejects_a_line_that_is_not_utf8_after_earlier_events() -> None:
    """A non-UTF-8 line raises ValueError, after the events that came before it."""
    decoder = SSEDecoder()
    out = decoder.feed(b"data: ok\n\ndata: \xff\xfe\n\n")
    assert next(out) == ServerSentEvent("ok")
    with pytest.raises(ValueError, match="UTF-8"):
        next(out)


def test_parse_event_kinds() -> None:
    """[DONE] gives None, JSON chunks parse, named events are skipped, bad JSON is ValueError."""
    assert parse_event(ServerSentEvent("[DONE]"), "m") is None
    chunk = parse_event(ServerSentEvent(json.dumps(chunk_body("x", model="m2"))), "m")
    assert isinstance(chunk, ChatCompletionChunk)
    assert (chunk.model, chunk.choices[0].delta.content) == ("m2", "x")
    assert not isinstance(parse_event(ServerSentEvent("{}", "ping"), "m"), ChatCompletionChunk)
    with pytest.raises(ValueError, match="not JSON"):
        parse_event(ServerSentEvent("{oops"), "m")
    with pytest.raises(ValueError, match=r"not a chat\.completion\.chunk"):
        parse_event(ServerSentEvent('{"id": "x"}'), "m")


def test_chunk_keeps_unknown_fields() -> None:
    """Unknown chunk and delta fields stay readable (``delta.reasoning_content``)."""
    body = chunk_body("x")
    body["provider"] = "p"
    body["choices"][0]["delta"]["reasoning_content"] = "think"
    chunk = ChatCompletionChunk.from_dict(body)
    assert chunk.provider == "p"
    assert chunk.choices[0].delta.reasoning_content == "think"
    assert chunk.to_dict() == body


# -- the Stream on doubles -----------------------------------------------------------------------
def test_stream_yields_chunks_and_accumulates_like_the_plain_call() -> None:
    """Chunks come in order, and the accumulated completion equals the non-streamed one."""
    response = StreamedResponse(hello())
    client, transport, _, _ = make([response])
    stream = open_stream(client, stream_options={"include_usage": True})
    got = [c.choices[0].delta.content for c in stream if c.choices]
    assert got == ["Hel", "lo", None]
    assert stream.usage is not None and stream.usage.total_tokens == 5
    assert (stream.text, stream.finish_reason, stream.closed) == ("Hello", "stop", True)
    assert response.closed
    body = transport.bodies[0]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert transport.requests[0].headers["Accept"] == "text/event-stream"
    final = stream.get_final_completion()
    plain = ChatCompletion.from_dict(completion_body("Hello"))
    assert final.choices == plain.choices
    assert final.usage == plain.usage
    assert (final.id, final.model, final.created) == (plain.id, plain.model, plain.created)


def test_accumulate_reads_the_rest_of_a_stream_and_folds_tool_calls() -> None:
    """accumulate() merges tool-call deltas by index into the plain call's tool_calls."""
    call = {"index": 0, "id": "c1", "type": "function"}
    pieces = [
        chunk_body(role="assistant"),
        {
            **chunk_body(),
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{**call, "function": {"name": "f"}}]}}
            ],
        },
        {
            **chunk_body(),
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]},
                }
            ],
        },
        {
            **chunk_body(),
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]},
                    "finish_reason": "tool_calls",
                }
            ],
        },
        DONE,
    ]
    client, _, _, _ = make([StreamedResponse(pieces)])
    stream = open_stream(client)
    next(stream)
    final = accumulate(stream)
    message = final.choices[0].message
    assert message.content is None
    assert message.tool_calls == [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    ]
    assert final.choices[0].finish_reason == "tool_calls"


def test_accumulate_of_plain_chunks_refuses_a_cut_stream() -> None:
    """Folding chunks that never finished raises ValueError; non-chunks raise TypeError."""
    chunks = [ChatCompletionChunk.from_dict(chunk_body("a"))]
    with pytest.raises(ValueError, match="cut short"):
        accumulate(chunks)
    done = [*chunks, ChatCompletionChunk.from_dict(chunk_body("b", finish_reason="stop"))]
    assert accumulate(done).choices[0].message.content == "ab"
    with pytest.raises(TypeError, match="ChatCompletionChunk"):
        accumulate([{"choices": []}])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(APIConnectionError("refused"), id="connect-error"),
        pytest.param(StreamedResponse([], error=APITimeoutError("stall")), id="stall"),
        pytest.param(StreamedResponse([b": hi\n\n"]), id="ends-empty"),
        pytest.param(StreamedResponse([DONE]), id="done-first"),
        pytest.param(StreamedResponse([b"data: {oops\n\n"]), id="malformed"),
        pytest.param(StreamedResponse([{"error": {"message": "busy"}}]), id="error-event"),
        pytest.param(
            StreamedResponse([{"error": {"message": "slow down", "code": 429}}]), id="error-429"
        ),
        pytest.param(
            json_response(200, completion_body("x"), {"content-type": "application/json"}),
            id="json-not-a-stream",
        ),
    ],
)
def test_failures_before_the_first_chunk_are_retried(first: Any) -> None:
    """Any failure before the first chunk is retried like a plain call, and the retry streams."""
    good = StreamedResponse(hello(usage=False))
    client, transport, clock, seen = make([first, good])
    stream = open_stream(client)
    assert stream.get_final_completion().choices[0].message.content == "Hello"
    assert len(transport.requests) == 2
    assert clock.sleeps == [0.5]
    assert [a.decision for a in stream.attempts] == ["retry", "success"]
    if isinstance(first, StreamedResponse):
        assert first.closed
    assert seen == list(stream.attempts)


def test_an_error_event_naming_400_is_not_retried() -> None:
    """An in-stream error standing for a 400 raises BadRequestError at once."""
    bad = StreamedResponse([{"error": {"message": "bad", "code": "400"}}])
    client, transport, _, _ = make([bad], fallback_models=["m2"])
    with pytest.raises(BadRequestError, match="bad"):
        open_stream(client)
    assert len(transport.requests) == 1
    assert bad.closed


def test_failures_before_the_first_chunk_fall_back_to_the_next_model() -> None:
    """When a model's retries are spent before any chunk, the next model streams the answer."""
    cut = APIConnectionError("reset")
    client, transport, _, _ = make([cut, cut, StreamedResponse(hello(model="m2"))])
    stream = open_stream(client, fallback_models=["m2"])
    assert stream.model == "m2"
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello"
    assert transport.models == ["m1", "m1", "m2"]


@pytest.mark.parametrize(
    ("tail", "error", "problem"),
    [
        pytest.param([], APIConnectionError("reset by peer"), "reset by peer", id="reset"),
        pytest.param([], APITimeoutError("read timed out"), "read timed out", id="stall"),
        pytest.param([], None, "cut short", id="truncate"),
        pytest.param([b"data: {oops\n\n"], None, "not JSON", id="malformed"),
        pytest.param([{"error": {"message": "overloaded"}}], None, "overloaded", id="error"),
    ],
)
def test_failures_after_the_first_chunk_raise_with_the_partial_text(
    tail: List[Any], error: Optional[BaseException], problem: str
) -> None:
    """With stream_recovery=False nothing is retried after the first chunk: APIStreamError
    carries the text so far (today's behaviour, unchanged)."""
    response = StreamedResponse([chunk_body("Hel", role="assistant"), *tail], error=error)
    client, transport, _, seen = make([response], stream_recovery=False)
    stream = open_stream(client)
    assert next(stream).choices[0].delta.content == "Hel"
    with pytest.raises(APIStreamError, match=problem) as info:
        next(stream)
    assert info.value.partial == "Hel"
    assert info.value.model == "m1"
    assert isinstance(info.value, cometsync.CometError)
    assert info.value.attempts[-1].decision == "raise"
    assert info.value.attempts[-1].error is not None
    assert seen == list(info.value.attempts)
    assert info.value.__cause__ is error
    assert response.closed
    assert len(transport.requests) == 1
    with pytest.raises(StopIteration):
        next(stream)
    with pytest.raises(APIStreamError):
        stream.get_final_completion()


def test_a_stream_with_a_finish_reason_but_no_done_ends_cleanly() -> None:
    """A stream whose choices all finished may end without [DONE]."""
    client, _, _, _ = make([StreamedResponse(hello()[:-1])])
    stream = open_stream(client)
    assert stream.get_final_completion().usage.total_tokens == 5


def test_closing_early_releases_and_refuses_a_final_completion() -> None:
    """close() gives the connection back; the unfinished answer is never passed off as whole."""
    response = StreamedResponse(hello())
    client, _, _, seen = make([response])
    with open_stream(client) as stream:
        next(stream)
    assert response.closed and stream.closed
    assert list(stream) == []
    with pytest.raises(APIStreamError, match="closed before its end") as info:
        stream.get_final_completion()
    assert info.value.partial == "Hel"
    assert seen[-1].reason == "closed by the caller after 1 chunks"


def test_a_stream_closed_before_reading_yields_nothing() -> None:
    """Closing a fresh stream drops even its already-read first chunk."""
    response = StreamedResponse(hello())
    client, _, _, _ = make([response])
    stream = open_stream(client)
    stream.close()
    assert (list(stream), response.closed) == ([], True)


def test_a_dropped_stream_is_closed_and_reported_by_the_garbage_collector() -> None:
    """A stream dropped half-way gives its connection back and reports its attempt."""
    response = StreamedResponse(hello())
    client, _, _, seen = make([response])
    stream = open_stream(client)
    next(stream)
    del stream
    gc.collect()
    assert response.closed
    assert [a.reason for a in seen] == ["abandoned: garbage collected before its end"]


def test_stream_attempt_records_time_to_first_chunk_and_duration() -> None:
    """The streamed attempt is reported once, at its end: latency to first chunk, duration."""
    response = StreamedResponse(hello())
    recorder = MetricsRecorder()
    client, _, clock, seen = make([APIConnectionError("x"), response], latency=0.25)
    client = client.with_options(on_attempt=recorder)
    stream = open_stream(client)
    assert len(recorder.snapshot()) == 1  # the failed attempt only, so far
    next(stream)
    clock.advance(2.0)
    list(stream)
    last = stream.attempts[-1]
    assert (last.latency, last.duration, last.decision) == (0.25, 2.25, "success")
    assert [r["count"] for r in recorder.snapshot()] == [1, 1]
    durations = recorder.duration_snapshot()
    assert [(r["status"], r["count"], r["p50"]) for r in durations] == [(200, 1, 2.25)]
    assert seen == []  # with_options replaced the hook


def test_a_failing_on_attempt_hook_does_not_break_the_stream() -> None:
    """An on_attempt hook that raises on the final record leaves the answer intact."""

    def hook(attempt: Attempt) -> None:
        raise RuntimeError("observer bug")

    client, _, _, _ = make([StreamedResponse(hello())])
    stream = open_stream(client.with_options(on_attempt=hook))
    assert stream.get_final_completion().choices[0].message.content == "Hello"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"stream_options": {"include_usage": True}}, RequestValidationError),
        ({"extra_body": {"stream": True}}, RequestValidationError),
        ({"stream": "yes"}, TypeError),
    ],
)
def test_inconsistent_stream_settings_fail_before_any_traffic(
    kwargs: Dict[str, Any], error: type
) -> None:
    """stream_options without stream=True, stream in extra_body, or a non-bool stream raise."""
    client, transport, _, _ = make([])
    with pytest.raises(error, match="stream"):
        client.chat.completions.create(model="m1", messages=MSGS, **kwargs)
    assert transport.requests == []


def test_stream_repr_and_headers() -> None:
    """A stream's repr shows its model, chunk count and state, never the key."""
    client, _, _, _ = make([StreamedResponse(hello(), headers={"x-request-id": "r1"})])
    stream = open_stream(client)
    assert repr(stream) == "Stream(model='m1', chunks=1, open)"
    assert stream.headers["x-request-id"] == "r1"
    stream.close()
    assert repr(stream).endswith("closed)")


def test_sse_helper_round_trips() -> None:
    """The testing helper's events decode back to their payloads."""
    assert [json.loads(e.data) for e in iter_events([sse({"a": 1})])] == [{"a": 1}]
