"""Failover of recoverable faults over real sockets on 127.0.0.1 (issue 11).

Silent models, context-length refusals: what the server sees is the proof.
"""

from __future__ import annotations

import time
from typing import Any, Dict

import pytest

import cometsync
from cometsync import Exponential, RetryPolicy
from cometsync.testing import completion_body

from .scripted_server import Reply, ScriptedServer

KEY = "sk-live-SECRET-failover"
FAST = RetryPolicy(backoff=Exponential(base=0.01, cap=0.02))
MSGS = [{"role": "user", "content": "hi"}]
CONTEXT: Dict[str, Any] = {
    "error": {
        "message": "This model's maximum context length is 8192 tokens. However, your "
        "messages resulted in 9000 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}


def client_for(server: ScriptedServer, **kwargs: Any) -> cometsync.Client:
    kwargs.setdefault("retry", FAST)
    return cometsync.Client(api_key=KEY, base_url=server.base_url, **kwargs)


def test_a_silent_primary_gets_one_attempt_before_the_fallback_answers(
    server: ScriptedServer,
) -> None:
    """The primary accepts and never answers: one 0.2 s timeout, then m2 answers."""
    server.script = ["hang", Reply(200, completion_body("rescued", model="m2"))]
    with client_for(server, timeout=(1.0, 0.2), fallback_models=["m2"]) as client:
        start = time.monotonic()
        r = client.chat.completions.create(model="m1", messages=MSGS)
        elapsed = time.monotonic() - start
    assert server.models() == ["m1", "m2"]
    assert r.choices[0].message.content == "rescued"
    assert 0.2 <= elapsed < 0.8
    assert [(a.model, a.decision) for a in r.attempts] == [("m1", "fallback"), ("m2", "success")]
    assert r.attempts[0].error is not None and r.attempts[0].error.startswith("APITimeoutError")


def test_a_silent_last_model_is_retried_per_the_policy(server: ScriptedServer) -> None:
    """With no model left, a timeout is retried (max_retries=1: two attempts), then raised."""
    server.script = ["hang", "hang"]
    policy = RetryPolicy(max_retries=1, backoff=Exponential(base=0.01, cap=0.02))
    with client_for(server, timeout=(1.0, 0.2), retry=policy) as client:
        with pytest.raises(cometsync.APITimeoutError) as info:
            client.chat.completions.create(model="m1", messages=MSGS)
    assert server.models() == ["m1", "m1"]
    assert [a.decision for a in info.value.attempts] == ["retry", "raise"]


def test_context_length_falls_back_at_once_over_the_wire(server: ScriptedServer) -> None:
    """A 400 context_length_exceeded is sent once, then the larger model answers at once."""
    server.script = [Reply(400, CONTEXT), Reply(200, completion_body("long", model="big"))]
    with client_for(server, fallback_models=["big"]) as client:
        r = client.chat.completions.create(model="small", messages=MSGS)
    assert server.models() == ["small", "big"]
    assert r.model == "big"
    assert r.attempts[0].delay is None and r.attempts[0].decision == "fallback"


def test_context_length_on_the_last_model_is_raised_at_once(server: ScriptedServer) -> None:
    """With no larger model left the 400 is raised after one request, never resent."""
    server.script = [Reply(400, CONTEXT)]
    with client_for(server) as client:
        with pytest.raises(cometsync.BadRequestError) as info:
            client.chat.completions.create(model="small", messages=MSGS)
    assert server.models() == ["small"]
    assert info.value.code == "context_length_exceeded"


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "content_filter"), (400, "invalid_value"), (401, "invalid_api_key")],
)
def test_content_filter_auth_and_other_400s_never_fall_back(
    server: ScriptedServer, status: int, code: str
) -> None:
    """Content-policy refusals, auth failures and other 400s are raised after one request."""
    body = {"error": {"message": "no", "type": "invalid_request_error", "code": code}}
    server.script = [Reply(status, body)]
    with client_for(server, fallback_models=["big"]) as client:
        with pytest.raises(cometsync.APIStatusError) as info:
            client.chat.completions.create(model="small", messages=MSGS)
    assert server.models() == ["small"]
    assert info.value.status_code == status
