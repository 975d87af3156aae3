"""What a hostile or broken server can send the client: deep JSON, absurd dates, echoed keys."""

from __future__ import annotations

import json
import logging
from typing import Any, List

import pytest

import cometsync
from cometsync import RetryPolicy
from cometsync._decode import MAX_JSON_DEPTH, loads
from cometsync._headers import parse_retry_after
from cometsync._redact import Redactor
from cometsync.testing import (
    FakeClock,
    ScriptedTransport,
    StreamedResponse,
    chunk_body,
    json_response,
)

from .helpers import err, ok

KEY = "sk-LEAKCHECK-0123456789abcdefABCDEF"
NO_RETRY = RetryPolicy(max_retries=0)


def make(script: List[Any], **kwargs: Any) -> tuple[cometsync.Client, ScriptedTransport, None]:
    transport = ScriptedTransport(script)
    kwargs.setdefault("retry", RetryPolicy(max_retries=2))
    client = cometsync.Client(api_key=KEY, transport=transport, clock=FakeClock(), **kwargs)
    return client, transport, None


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def leaked(text: str, key: str = KEY) -> List[str]:
    """Every 8-character fragment of ``key`` found in ``text``, in any case."""
    low, k = text.lower(), key.lower()
    return [k[i : i + 8] for i in range(len(k) - 7) if k[i : i + 8] in low]


# -- 1. deep JSON ---------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [200, 500])
def test_a_body_of_100000_brackets_is_a_comet_error(status: int) -> None:
    """A 200 or 500 whose body nests 100,000 levels ends in a CometError, not RecursionError."""
    client, _, _ = make([json_response(status, deep(100_000))], retry=NO_RETRY)
    with pytest.raises(cometsync.CometError) as info:
        client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}])
    if status == 200:
        assert isinstance(info.value, cometsync.APIResponseValidationError)
        assert "nested more than" in str(info.value)
    else:
        assert isinstance(info.value, cometsync.InternalServerError)


def test_a_valid_600_deep_error_object_is_an_api_status_error() -> None:
    """A 600-deep error object (valid JSON) no longer breaks the key scrubber or the message."""
    inner: Any = "bottom"
    for _ in range(600):
        inner = {"x": inner}
    body = {"error": {"message": "deep", "code": "server_error", "detail": inner}}
    client, _, _ = make([json_response(500, body)], retry=NO_RETRY)
    with pytest.raises(cometsync.InternalServerError) as info:
        client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 500


def test_a_deep_first_sse_event_is_retried_then_a_comet_error() -> None:
    """A first event nested 100,000 levels is an invalid stream: a CometError naming why."""
    piece = b"data: " + deep(100_000).encode() + b"\n\n"
    client, _, _ = make([StreamedResponse([piece])], retry=NO_RETRY)
    with pytest.raises(cometsync.APIResponseValidationError, match="nested more than"):
        client.chat.completions.create(
            model="m1", messages=[{"role": "user", "content": "x"}], stream=True
        )


def test_loads_refuses_depth_past_the_bound_and_keeps_shallower_json() -> None:
    """Exactly MAX_JSON_DEPTH levels decode; one more is a ValueError naming the bound."""
    assert loads(deep(MAX_JSON_DEPTH)) is not None
    with pytest.raises(ValueError, match=str(MAX_JSON_DEPTH)):
        loads(deep(MAX_JSON_DEPTH + 1).encode())


# -- 2. Retry-After ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        "Mon, 01 Jan 99999999999 00:00:00 GMT",
        "Mon, 01 Jan 9999 00:00:00 GMT",
        "Mon, 01 Jan 0001 00:00:00 GMT",
        "Fri, 31 Dec 99999 23:59:60 GMT",
    ],
)
def test_absurd_retry_after_dates_parse_without_overflow(value: str) -> None:
    """A date past datetime's range is garbage (None); a far but valid one is a long wait."""
    wait = parse_retry_after({"retry-after": value}, now=1_700_000_000.0)
    assert wait is None or wait >= 0


def test_a_429_with_an_absurd_date_is_a_rate_limit_error() -> None:
    """The call that receives such a header ends in RateLimitError, never OverflowError."""
    bad = json_response(
        429, err("rate_limited"), {"retry-after": "Mon, 01 Jan 99999999999 0:0:0 GMT"}
    )
    client, _, _ = make([bad], retry=NO_RETRY)
    with pytest.raises(cometsync.RateLimitError):
        client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}])


# -- 3. the key ----------------------------------------------------------------------------------
def exposed(error: cometsync.APIError) -> str:
    """Every text the error exposes, joined."""
    parts = [str(error), repr(error), error.message, repr(error.args)]
    parts += [repr(a.to_dict()) for a in error.attempts]
    for name in ("body", "headers", "request_id", "code"):
        value = getattr(error, name, None)
        parts.append(json.dumps(dict(value) if name == "headers" else value, default=str))
    return "\n".join(parts)


@pytest.mark.parametrize(
    "echo",
    [
        KEY,
        KEY.lower(),
        KEY.upper(),
        "x" * 190 + KEY,  # cut in half by the 200-character message
        KEY[:8],  # the sk-LEAKCHE
        KEY[10:18].swapcase(),
    ],
)
def test_an_echoed_key_or_fragment_never_reaches_an_error(echo: str) -> None:
    """Whole, cut, lower/upper-cased or 8-character echoes are scrubbed from every field."""
    html = json_response(502, f"<html>bad gateway {echo} tail</html>")
    body = {"error": {"message": f"bad key {echo}", "code": echo}}
    headers = {"x-request-id": echo, "location": f"https://x.invalid/?k={echo}", echo: echo}
    as_json = json_response(401, body, headers)
    for response in (html, as_json):
        seen: List[cometsync.Attempt] = []
        client, _, _ = make([response], retry=NO_RETRY, on_attempt=seen.append)
        with pytest.raises(cometsync.APIStatusError) as info:
            client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}])
        text = exposed(info.value) + repr([a.to_dict() for a in seen])
        assert leaked(text) == [], text


def test_a_key_escaped_in_json_is_scrubbed_from_the_decoded_body() -> None:
    """``\\u0073k-...`` decodes to the key: the decoded body and message are scrubbed too."""
    escaped = "".join(f"\\u{ord(c):04x}" for c in KEY)
    raw = ('{"error": {"message": "echo ' + escaped + '"}}').encode()
    client, _, _ = make([json_response(400, raw)], retry=NO_RETRY)
    with pytest.raises(cometsync.BadRequestError) as info:
        client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}])
    assert leaked(exposed(info.value)) == []


def test_a_streamed_echo_and_a_successful_body_are_scrubbed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Stream chunks, stream headers, a 200 body and the log lines never carry the key."""
    caplog.set_level(logging.DEBUG, logger="cometsync")
    pieces = [chunk_body(f"a {KEY.lower()} b"), chunk_body("!", finish_reason="stop")]
    streamed = StreamedResponse([*pieces, b"data: [DONE]\n\n"], headers={"x-echo": KEY})
    client, _, _ = make([json_response(503, f"down {KEY}"), streamed])
    with client.chat.completions.create(
        model="m1", messages=[{"role": "user", "content": "x"}], stream=True
    ) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream)
        assert leaked(text + repr(dict(stream.headers)) + repr(stream.attempts)) == []
        assert "[redacted]" in text
    client, _, _ = make([ok(f"here: {KEY[3:20]}")])
    done = client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}])
    assert leaked(json.dumps(done.to_dict()) + caplog.text) == []


def test_the_redactor_keeps_clean_text_identical_and_merges_overlapping_fragments() -> None:
    """Clean text is returned as the same object; overlapping fragments give one marker."""
    redactor = Redactor(KEY)
    clean = "nothing to see " * 10
    assert redactor.text(clean) is clean
    assert redactor.text(f"a{KEY}{KEY[5:]}b") == "a[redacted]b"
    assert redactor.data(f"<{KEY.upper()}>".encode()) == b"<[redacted]>"
    assert repr(redactor) == "Redactor()"
