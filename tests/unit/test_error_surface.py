"""Errors read like openai-python's: body, type, param, code, response, request."""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest

import cometsync
from cometsync.testing import FakeClock, ScriptedTransport, json_response

from .helpers import KEY, create, err, make


def _status_error(status: int, body: Any, headers: Any = None) -> cometsync.APIStatusError:
    client, _, _ = make([json_response(status, body, headers)], max_retries=0)
    with pytest.raises(cometsync.APIStatusError) as info:
        create(client)
    return info.value


def test_body_is_the_error_object_and_its_fields_are_attributes() -> None:
    """With an "error" object, .body is that object and .type/.param/.code come from it."""
    body = {"error": {"message": "bad", "type": "invalid_request_error", "param": "n", "code": "x"}}
    e = _status_error(400, body)
    assert e.body == body["error"]
    assert (e.type, e.param, e.code) == ("invalid_request_error", "n", "x")


def test_body_without_an_error_object_is_the_whole_body_or_the_text() -> None:
    """Without an "error" key, .body is the decoded body; a non-JSON body is its text."""
    e = _status_error(400, {"detail": "nope"})
    assert e.body == {"detail": "nope"} and (e.type, e.param) == (None, None)
    e = _status_error(400, b"<html>bad</html>")
    assert e.body == "<html>bad</html>" and e.type is None


def test_response_has_status_headers_text_json_and_request() -> None:
    """.response is the HTTP response: case-insensitive headers, text, json(), method and URL."""
    body = err("bad_thing", "no")
    e = _status_error(400, body, {"X-Request-Id": "req-9", "x-custom": "v"})
    r = e.response
    assert r is not None and r.status_code == 400
    assert r.headers["x-request-id"] == "req-9" and r.headers["X-CUSTOM"] == "v"
    assert r.json() == body and '"bad_thing"' in r.text
    assert r.request.method == "POST" and r.request.url.endswith("/chat/completions")
    assert e.request is r.request and e.request_id == "req-9"
    assert not hasattr(r.request, "headers")  # the request's headers hold the key


def test_response_json_of_a_non_json_body_raises_value_error() -> None:
    """As httpx's, .response.json() of an HTML page raises instead of returning text."""
    e = _status_error(400, b"<html>bad</html>")
    assert e.response is not None and e.response.text == "<html>bad</html>"
    with pytest.raises(ValueError, match="not JSON"):
        e.response.json()


def test_the_key_echoed_by_the_server_is_in_no_part_of_the_error() -> None:
    """An echoed key is scrubbed from body, type, param, response text, headers and URL."""
    body = {"error": {"message": f"bad {KEY}", "type": KEY, "param": KEY, "code": KEY}}
    e = _status_error(401, body, {"x-echo": f"Bearer {KEY}"})
    assert e.response is not None
    texts = [str(e.body), str(e.type), str(e.param), str(e.code), e.response.text]
    texts += [str(dict(e.response.headers)), str(dict(e.headers)), e.response.request.url]
    texts += [str(e.response.json()), repr(e.response), repr(e.request)]
    assert all(KEY not in t for t in texts)
    assert "[redacted]" in e.response.text


@pytest.mark.parametrize(
    ("failure", "cls"),
    [
        (cometsync.APIConnectionError("connection refused"), cometsync.APIConnectionError),
        (cometsync.APITimeoutError("read timed out"), cometsync.APITimeoutError),
    ],
)
def test_connection_errors_carry_the_request(failure: Exception, cls: type) -> None:
    """APIConnectionError/APITimeoutError have .request (method and URL), as in openai."""
    client, _, _ = make([failure], max_retries=0)
    with pytest.raises(cls) as info:
        create(client)
    request = info.value.request
    assert request is not None and request.method == "POST"
    assert request.url.endswith("/chat/completions")


def test_fields_match_openai_python_for_the_same_body() -> None:
    """The installed openai derives the same body/type/param/code from the same response."""
    openai = pytest.importorskip("openai")
    httpx = pytest.importorskip(openai._exceptions.httpx2.__name__)
    oa = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    bodies: list[Dict[str, Any]] = [
        {"error": {"message": "m", "type": "t", "param": "p", "code": None}},
        {"error": {"message": "m", "type": "t", "param": None, "code": 42}},
        {"detail": "x", "type": "top"},
    ]
    for body in bodies:
        ours = _status_error(400, body)
        req = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
        response = httpx.Response(400, json=body, request=req)
        theirs = oa._make_status_error("x", body=body, response=response)
        assert (ours.body, ours.type, ours.param) == (theirs.body, theirs.type, theirs.param)
        if theirs.code is not None:
            assert ours.code == theirs.code


def test_the_redactor_scrubs_type_param_response_and_request_of_an_error() -> None:
    """Redactor.error cleans the new attributes too, even when the response was not scrubbed."""
    from cometsync._http_info import ErrorResponse
    from cometsync._redact import Redactor

    body = {"error": {"message": "m", "type": KEY, "param": KEY, "code": None}}
    url = f"http://127.0.0.1:9/v1/x?k={KEY}"
    response = ErrorResponse(400, {"X-Echo": KEY}, json.dumps(body).encode(), body, "POST", url)
    error = cometsync._errors.status_error(400, {}, body, model="m1", response=response)
    Redactor(KEY).error(error)
    assert error.response is not None and error.request is error.response.request
    texts = [str(error.type), str(error.param), error.response.text, error.response.request.url]
    texts += [str(dict(error.response.headers)), str(error.response.json()), str(error.body)]
    assert all(KEY not in t for t in texts) and "[redacted]" in error.response.text
    clean = ErrorResponse(400, {"a": "b"}, b"{}", {}, "GET", "http://h/")
    assert clean.scrubbed(Redactor(KEY).text, Redactor(KEY).json) is clean  # no copy when clean


def test_a_short_key_is_redacted_only_where_it_stands_as_a_whole_token() -> None:
    """A key under 8 characters leaves words that merely contain it intact, but not the key."""
    from cometsync._redact import Redactor

    assert Redactor("test").text("model claude-3-5-haiku-latest") == "model claude-3-5-haiku-latest"
    assert Redactor("k").text("no first token") == "no first token"
    assert Redactor("k").text("key=k, k") == "key=[redacted], [redacted]"
    assert Redactor("test").text("bearer test.") == "bearer [redacted]."


def test_a_short_key_does_not_mangle_the_model_named_in_an_error() -> None:
    """Client(api_key="test") reports an unknown model's name unchanged."""
    body = err("model_not_found", "model claude-3-5-haiku-latest not found")
    transport = ScriptedTransport([json_response(404, body)])
    client = cometsync.Client(api_key="test", transport=transport, clock=FakeClock(), max_retries=0)
    with pytest.raises(cometsync.NotFoundError) as info:
        create(client)
    assert "claude-3-5-haiku-latest" in str(info.value)
