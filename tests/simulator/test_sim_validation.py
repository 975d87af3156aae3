"""Request validation: bad chat requests get deliberate 4xx naming the problem."""

from __future__ import annotations

import pytest

from simulator import Core

from .sim_helpers import AUTH, error_code


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b"[" * 100000, 400, "invalid_json"),
        (b"[]", 400, "invalid_request"),
        (b"{}", 400, "invalid_request"),
        (b'{"model": "m1"}', 400, "invalid_request"),
        (b'{"model": 3, "messages": []}', 400, "invalid_request"),
        (b'{"model": "m1", "messages": []}', 400, "invalid_request"),
        (
            b'{"model": "m1", "messages": [{"role": "wizard", "content": "x"}]}',
            400,
            "invalid_request",
        ),
        (b'{"model": "m1", "messages": [{"role": "user", "content": 3}]}', 400, "invalid_request"),
        (
            b'{"model": "m1", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            400,
            "invalid_request",
        ),
        (
            b'{"model": "m1", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
            400,
            "invalid_request",
        ),
        (
            b'{"model": "m1", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
            400,
            "invalid_request",
        ),
        (
            b'{"model": "m1", "messages": [{"role": "user", "content": "x"}], "n": 2}',
            400,
            "invalid_request",
        ),
        (
            b'{"model": "zz", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "model_not_found",
        ),
    ],
)
def test_bad_chat_requests_get_deliberate_4xx(body: bytes, status: int, code: str) -> None:
    """Every class of malformed chat request gets its 4xx envelope, never a 500."""
    core = Core({"models": {"m1": {}}})
    reply = core.handle("POST", "/v1/chat/completions", AUTH, body, 0.0)
    assert reply.status == status and error_code(reply) == code
    assert reply.payload["error"]["type"] == "comet_api_error"


def test_validation_message_names_the_problem_and_param() -> None:
    """A bad role names the field in the message and in ``param``."""
    body = b'{"model": "m1", "messages": [{"role": "user", "content": "x"}, {"role": "bot"}]}'
    reply = Core({"models": {"m1": {}}}).handle("POST", "/v1/chat/completions", AUTH, body, 0.0)
    assert reply.payload["error"]["param"] == "messages[1].role"
    assert "messages[1].role must be one of" in reply.payload["error"]["message"]
