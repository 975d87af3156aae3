"""Property tests: whatever a server sends, the client ends in a result or a CometError, and
the API key (whole, or any 8-character fragment, in any case) never reaches what it exposes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any, Dict, List, Tuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cometsync
from cometsync import RetryPolicy
from cometsync._headers import parse_rate_limit, parse_retry_after
from cometsync._policy import classify
from cometsync._sse import parse_event
from cometsync.testing import (
    FakeClock,
    ScriptedTransport,
    StreamedResponse,
    chunk_body,
    completion_body,
    json_response,
)

KEY = "sk-PROPkey-5fA9c0D2e7B4a1F8c3E6d9B0"
# CI runs 300 cases per property; FUZZ_EXAMPLES=10000 runs a deeper campaign.
QUICK = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- strategies ----------------------------------------------------------------------------
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
# Names the parser looks at, so random values land on the fields that matter.
FIELDS = [
    "id",
    "model",
    "choices",
    "usage",
    "created",
    "object",
    "message",
    "delta",
    "content",
    "role",
    "finish_reason",
    "index",
    "tool_calls",
    "error",
    "code",
    "type",
    "status",
    "logprobs",
    "prompt_tokens",
    "total_tokens",
]


def mutate(template: Any, draw: Any) -> Any:
    """The template with some field somewhere replaced by an arbitrary JSON value."""
    if isinstance(template, dict):
        out = {}
        for k, v in template.items():
            out[k] = draw(json_values) if draw(st.integers(0, 5)) == 0 else mutate(v, draw)
        if draw(st.booleans()):
            out[draw(st.sampled_from(FIELDS))] = draw(json_values)
        return out
    if isinstance(template, list):
        return [mutate(v, draw) for v in template]
    return template


@st.composite
def bodies(draw: Any) -> bytes:
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        levels = draw(st.sampled_from([100, 127, 128, 129, 700, 5000, 100_000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return (opener * levels + "1" + closer * draw(st.sampled_from([0, levels]))).encode()
    if kind == 2:
        return json.dumps(draw(json_values)).encode()
    if kind == 3:
        return json.dumps(mutate(completion_body("hi"), draw)).encode()
    if kind == 4:
        return json.dumps(
            mutate({"error": {"message": "m", "code": "c", "type": "t"}}, draw)
        ).encode()
    if kind == 5:
        return b"<html>" + draw(st.binary(max_size=50))
    return json.dumps(completion_body(draw(st.text(max_size=20)))).encode()


header_names = st.sampled_from(
    [
        "retry-after",
        "retry-after-ms",
        "x-should-retry",
        "x-request-id",
        "location",
        "content-type",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    ]
)
header_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "Mon, 01 Jan 99999999999 00:00:00 GMT",
            "1e400",
            "-1",
            "nan",
            "inf",
            "9" * 5000,
            "0.5",
            "true",
            "false",
            "6m0s",
            "1h1h1h",
            "99999999999999h",
            "text/event-stream",
            "application/json",
            "Wed, 21 Oct 2015 07:28:00 GMT",
        ]
    ),
)
headers_strategy = st.dictionaries(header_names, header_values, max_size=5)
statuses = st.one_of(st.integers(100, 599), st.sampled_from([200, 400, 404, 429, 500, 503]))


def client_for(script: List[Any], **kwargs: Any) -> cometsync.Client:
    kwargs.setdefault("retry", RetryPolicy(max_retries=1, max_retry_after=5))
    return cometsync.Client(
        api_key=KEY, transport=ScriptedTransport(script), clock=FakeClock(), **kwargs
    )


MSGS = [{"role": "user", "content": "x"}]


# -- 1. any response ends in a result or a CometError -------------------------------------
@QUICK
@given(status=statuses, headers=headers_strategy, body=bodies())
def test_any_response_ends_in_a_result_or_a_comet_error(
    status: int, headers: Dict[str, str], body: bytes
) -> None:
    """Any status, headers and body (deep, binary, mistyped JSON) give a result or CometError."""
    script = [json_response(status, body, headers), json_response(status, body, headers)]
    with client_for(script) as client:
        try:
            result = client.chat.completions.create(model="m1", messages=MSGS)
        except cometsync.CometError:
            return
        assert isinstance(result, cometsync.ChatCompletion)
        result.to_dict()
        str(result)


@QUICK
@given(headers=st.dictionaries(st.one_of(header_names, st.text(max_size=10)), header_values))
def test_any_headers_parse_to_a_value_or_none(headers: Dict[str, str]) -> None:
    """Retry-After and rate-limit parsing return a number (>= 0) or None for any headers."""
    wait = parse_retry_after(headers, now=1_700_000_000.0)
    assert wait is None or wait >= 0
    limits = parse_rate_limit(headers)
    if limits is not None:
        limits.seconds_per_request  # noqa: B018 (must not raise)
    response = json_response(429, b"{}", headers)
    verdict = classify(response, RetryPolicy(), model="m", now=1_700_000_000.0)
    assert isinstance(verdict.error, cometsync.CometError)


sse_pieces = st.lists(
    st.one_of(
        bodies().map(lambda b: b"data: " + b + b"\n\n"),
        st.binary(max_size=60),
        st.just(b"data: [DONE]\n\n"),
        st.builds(
            lambda c: b"data: " + json.dumps(chunk_body(c)).encode() + b"\n\n", st.text(max_size=5)
        ),
        st.just(b'event: error\ndata: {"error": {"message": "x", "code": "503"}}\n\n'),
    ),
    max_size=6,
)


@QUICK
@given(pieces=sse_pieces, headers=headers_strategy)
def test_any_stream_ends_in_chunks_or_a_comet_error(
    pieces: List[bytes], headers: Dict[str, str]
) -> None:
    """Any bytes of an event stream give chunks and a normal end, or a CometError."""
    headers = {k: v for k, v in headers.items() if k != "content-type"}
    script = [StreamedResponse(pieces, headers=headers), StreamedResponse(pieces, headers=headers)]
    with client_for(script) as client:
        try:
            with client.chat.completions.create(model="m1", messages=MSGS, stream=True) as stream:
                for chunk in stream:
                    assert isinstance(chunk, cometsync.ChatCompletionChunk)
        except cometsync.CometError:
            return


@QUICK
@given(data=st.one_of(st.text(max_size=80), bodies().map(lambda b: b.decode("utf-8", "replace"))))
def test_parse_event_gives_a_chunk_none_skip_or_value_error(data: str) -> None:
    """One event's data parses to a chunk, [DONE], a skip, or ValueError/ErrorEvent only."""
    from cometsync._sse import ErrorEvent, ServerSentEvent

    with contextlib.suppress(ValueError, ErrorEvent):
        parse_event(ServerSentEvent(data), "m")


# -- 2. the key never leaks ----------------------------------------------------------------
def variants(draw: Any) -> str:
    """The key, or an 8+ character run of it, in some letter case."""
    start = draw(st.integers(0, len(KEY) - 8))
    end = draw(st.integers(start + 8, len(KEY)))
    piece = KEY[start:end]
    case = draw(st.sampled_from(["same", "lower", "upper", "swap"]))
    return {
        "same": piece,
        "lower": piece.lower(),
        "upper": piece.upper(),
        "swap": piece.swapcase(),
    }[case]


@st.composite
def echoes(draw: Any) -> Tuple[int, Dict[str, str], bytes]:
    echo = variants(draw)
    pad = draw(st.integers(0, 400))
    where = draw(
        st.sampled_from(["message", "code", "html", "plain", "deep", "escaped", "body200"])
    )
    if where == "message":
        body = json.dumps({"error": {"message": "p" * pad + echo, "code": "x"}}).encode()
    elif where == "code":
        body = json.dumps({"error": {"message": "bad", "code": echo, "param": echo}}).encode()
    elif where == "html":
        body = f"<html>{'p' * pad}{echo}</html>".encode()
    elif where == "plain":
        body = ("q" * pad + echo + "q" * pad).encode()
    elif where == "deep":
        inner: Any = echo
        for _ in range(draw(st.integers(1, 140))):
            inner = [inner]
        body = json.dumps({"error": {"message": "deep", "detail": inner}}).encode()
    elif where == "escaped":
        escaped = "".join(f"\\u{ord(c):04x}" for c in echo)
        body = ('{"error": {"message": "' + "p" * pad + escaped + '"}}').encode()
    else:
        body = json.dumps(completion_body("r" * pad + echo)).encode()
    headers = {}
    for name in draw(
        st.lists(st.sampled_from(["x-request-id", "location", "x-echo", "retry-after"]), max_size=3)
    ):
        headers[name] = draw(st.sampled_from(["", "p" * 30])) + variants(draw)
    status = draw(st.sampled_from([200, 301, 400, 401, 404, 429, 500, 502, 503]))
    return status, headers, body


def leaked(text: str) -> List[str]:
    low, key = text.lower(), KEY.lower()
    return [key[i : i + 8] for i in range(len(key) - 7) if key[i : i + 8] in low]


def exposed_by(error: BaseException) -> str:
    parts = [str(error), repr(error), repr(error.args)]
    for name in ("message", "body", "request_id", "code", "partial"):
        parts.append(json.dumps(getattr(error, name, None), default=repr))
    parts.append(repr(dict(getattr(error, "headers", {}) or {})))
    parts += [repr(a.to_dict()) for a in getattr(error, "attempts", ())]
    return "\n".join(parts)


@QUICK
@given(replies=st.lists(echoes(), min_size=1, max_size=3), stream=st.booleans())
def test_the_key_never_reaches_what_the_client_exposes(
    replies: List[Tuple[int, Dict[str, str], bytes]], stream: bool
) -> None:
    """Whatever the server echoes, no 8-character run of the key in any case gets out."""
    logs = Lines()
    logger = logging.getLogger("cometsync")
    logger.addHandler(logs)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        texts = exchange(replies, stream) + logs.lines
    finally:
        logger.removeHandler(logs)
        logger.setLevel(level)
    found = leaked("\n".join(texts))
    assert found == [], found


class Lines(logging.Handler):
    """Keeps every formatted log line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def exchange(replies: List[Tuple[int, Dict[str, str], bytes]], stream: bool) -> List[str]:
    """Run one call against the scripted replies; every text the client exposed."""
    seen: List[cometsync.Attempt] = []
    script: List[Any] = []
    for status, headers, body in replies:
        if stream and status == 200:
            event = json.dumps(
                chunk_body(body.decode("utf-8", "replace")[:80], finish_reason="stop")
            )
            script.append(
                StreamedResponse(
                    [b"data: " + event.encode() + b"\n\n", b"data: [DONE]\n\n"], headers=headers
                )
            )
        else:
            script.append(json_response(status, body, headers))
    script += [json_response(500, b"x")] * 6
    texts: List[str] = []
    with client_for(script, fallback_models=["m2"], on_attempt=seen.append) as client:
        try:
            if stream:
                with client.chat.completions.create(model="m1", messages=MSGS, stream=True) as s:
                    texts += [json.dumps(c.to_dict()) for c in s]
                    texts += [repr(dict(s.headers)), repr(s.attempts), s.text]
            else:
                done = client.chat.completions.create(model="m1", messages=MSGS)
                texts += [json.dumps(done.to_dict()), repr(done), repr(done.attempts)]
        except cometsync.CometError as error:
            texts.append(exposed_by(error))
    texts += [repr(a.to_dict()) for a in seen]
    return texts
