"""Failover of recoverable faults over real sockets on 127.0.0.1 (issue 11).

Silent models, context-length refusals: what the server sees is the proof.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import cometsync
from cometsync import Exponential, RetryPolicy, Timeout
from cometsync.testing import DONE, chunk_body, completion_body
from simulator import Simulator

from .scripted_server import Reply, ScriptedServer
from .sse_server import SSEServer, StreamReply, event

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


# -- first-token limits on streams -----------------------------------------------------------


def stream_reply(*words: str, first_after: float = 0.0, role_first: bool = True) -> StreamReply:
    """A stream whose role chunk goes at once and whose first word comes ``first_after`` later."""
    pieces: List[Tuple[float, bytes]] = []
    if role_first:
        pieces.append((0.0, event(chunk_body(None, role="assistant"))))
    for i, word in enumerate(words):
        pieces.append((first_after if i == 0 else 0.0, event(chunk_body(word))))
    pieces += [(0.0, event(chunk_body(finish_reason="stop"))), (0.0, DONE)]
    return StreamReply(pieces)


@pytest.fixture
def sse() -> Iterator[SSEServer]:
    with SSEServer() as s:
        yield s


def stream_client(server: SSEServer, **kwargs: Any) -> cometsync.Client:
    kwargs.setdefault("retry", FAST)
    return cometsync.Client(api_key=KEY, base_url=server.base_url, **kwargs)


def test_a_late_first_token_falls_over_to_the_next_model(sse: SSEServer) -> None:
    """Headers and a role chunk at once, the first word after 1 s: past 0.2 s, next model."""
    sse.script = [stream_reply("slow", first_after=1.0), stream_reply("quick")]
    timeout = Timeout(connect=1.0, read=5.0, first_token=0.2)
    with stream_client(sse, timeout=timeout, fallback_models=["m2"]) as client:
        start = time.monotonic()
        stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
        opened = time.monotonic() - start
        text = stream.get_final_completion().choices[0].message.content
    assert text == "quick"
    assert [b["model"] for b in sse.bodies] == ["m1", "m2"]
    assert 0.2 <= opened < 0.8
    first = stream.attempts[0]
    assert first.decision == "fallback"
    assert first.error is not None and "no first token within 0.2s" in first.error


def test_keep_alive_comments_do_not_stretch_the_first_token_budget(sse: SSEServer) -> None:
    """A server sending ': ping' every 50 ms but no content is abandoned at the budget."""
    pings = [(0.05, b": ping\n\n")] * 30
    sse.script = [StreamReply(pings + stream_reply("never").pieces), stream_reply("ok")]
    timeout = Timeout(connect=1.0, read=5.0, first_token=0.25)
    with stream_client(sse, timeout=timeout, fallback_models=["m2"]) as client:
        start = time.monotonic()
        stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
        opened = time.monotonic() - start
        assert stream.get_final_completion().choices[0].message.content == "ok"
    assert 0.25 <= opened < 0.9


def test_a_first_token_within_budget_is_kept_and_then_read_uses_the_read_timeout(
    sse: SSEServer,
) -> None:
    """A healthy stream is not abandoned: after its first word, gaps up to `read` are fine."""
    pieces = [
        (0.0, event(chunk_body(None, role="assistant"))),
        (0.1, event(chunk_body("a"))),
        (0.6, event(chunk_body("b"))),  # longer than first_token, shorter than read
        (0.0, event(chunk_body(finish_reason="stop"))),
        (0.0, DONE),
    ]
    sse.script = [StreamReply(pieces)]
    timeout = Timeout(connect=1.0, read=1.5, first_token=0.4)
    with stream_client(sse, timeout=timeout, fallback_models=["m2"]) as client:
        stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
        chunks = list(stream)
    assert [c.choices[0].delta.content for c in chunks if c.choices][:3] == [None, "a", "b"]
    assert [a.decision for a in stream.attempts] == ["success"]
    assert stream.attempts[0].latency >= 0.1  # time to the first content chunk
    assert len(sse.bodies) == 1


def test_a_late_first_token_on_the_last_model_is_retried(sse: SSEServer) -> None:
    """With no model left, a first-token timeout is retried per the policy."""
    sse.script = [stream_reply("slow", first_after=0.5), stream_reply("second")]
    timeout = Timeout(connect=1.0, read=5.0, first_token=0.15)
    with stream_client(sse, timeout=timeout) as client:
        stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
        assert stream.get_final_completion().choices[0].message.content == "second"
    assert [a.decision for a in stream.attempts] == ["retry", "success"]


def test_the_simulator_ttft_falls_over_past_the_first_token_limit() -> None:
    """Against the simulator: m1's 1.5 s first token is abandoned at 0.2 s for m2."""
    models = {"m1": {"ttft_ms": 1500, "token_ms": 1}, "m2": {"ttft_ms": 5, "token_ms": 1}}
    timeout = Timeout(connect=1.0, read=5.0, first_token=0.2)
    with Simulator({"models": models}, seed=3) as sim:
        client = cometsync.Client(
            api_key="sk-test", base_url=sim.base_url, timeout=timeout, fallback_models=["m2"]
        )
        with client:
            start = time.monotonic()
            stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
            final = stream.get_final_completion()
            elapsed = time.monotonic() - start
    assert final.model == "m2" and final.choices[0].message.content
    assert [(a.model, a.decision) for a in stream.attempts] == [
        ("m1", "fallback"),
        ("m2", "success"),
    ]
    assert elapsed < 1.0
