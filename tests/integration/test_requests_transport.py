"""The requests path still holds its promises: a caller's Session, and RequestsTransport's own."""

from __future__ import annotations

import logging
import socket
from typing import Any, Callable, Iterator, List

import pytest
import requests

import cometsync
from cometsync import Exponential, RequestsTransport, RetryPolicy
from cometsync.testing import DONE, chunk_body, completion_body

from .scripted_server import Reply, ScriptedServer
from .sse_server import SSEServer, StreamReply, event

pytestmark = pytest.mark.socket

KEY = "sk-live-SECRET-abcdef"
FAST = RetryPolicy(backoff=Exponential(base=0.01, cap=0.05))
MSGS = [{"role": "user", "content": "hi"}]
Make = Callable[..., cometsync.Client]


def _with_session(base_url: str, **kwargs: Any) -> cometsync.Client:
    return cometsync.Client(api_key=KEY, base_url=base_url, session=requests.Session(), **kwargs)


def _with_own_session(base_url: str, **kwargs: Any) -> cometsync.Client:
    transport = RequestsTransport(pool_maxsize=kwargs.get("max_workers", 8), base_url=base_url)
    return cometsync.Client(api_key=KEY, base_url=base_url, transport=transport, **kwargs)


@pytest.fixture(params=[_with_session, _with_own_session], ids=["session=", "RequestsTransport"])
def make(request: pytest.FixtureRequest) -> Make:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def sse() -> Iterator[SSEServer]:
    with SSEServer() as s:
        yield s


def call(client: cometsync.Client) -> cometsync.ChatCompletion:
    return client.chat.completions.create(model="m1", messages=MSGS)


def test_resets_and_5xx_are_retried(server: ScriptedServer, make: Make) -> None:
    """A reset and a 503 are retried on the same model; the third attempt's answer comes back."""
    server.script = [
        "reset",
        Reply(503, {"error": {"message": "busy"}}),
        Reply(200, completion_body()),
    ]
    with make(server.base_url, retry=FAST) as client:
        r = call(client)
    assert [a.decision for a in r.attempts] == ["retry", "retry", "success"]
    assert server.seen[-1]["auth"] == f"Bearer {KEY}"


def test_a_slow_answer_is_a_timeout(server: ScriptedServer, make: Make) -> None:
    """Past the read timeout the attempt is an APITimeoutError."""
    server.script = [Reply(200, completion_body(), delay=0.4)]
    with make(server.base_url, retry=RetryPolicy(max_retries=0), timeout=(0.5, 0.1)) as client:
        with pytest.raises(cometsync.APITimeoutError):
            call(client)


def test_refused_is_a_connection_error_without_the_key(make: Make) -> None:
    """Nothing listening: APIConnectionError, never a timeout, and the key is not in it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with make(f"http://127.0.0.1:{port}/v1", retry=RetryPolicy(max_retries=0)) as client:
        with pytest.raises(cometsync.APIConnectionError) as info:
            call(client)
    assert not isinstance(info.value, cometsync.APITimeoutError)
    assert KEY not in str(info.value)


def test_a_redirect_is_not_followed(server: ScriptedServer, make: Make) -> None:
    """A 301 is reported as a wrong base_url; the server sees one POST."""
    server.script = [Reply(301, "", {"Location": "/elsewhere"})]
    with make(server.base_url) as client, pytest.raises(cometsync.APIStatusError, match="base_url"):
        call(client)
    assert [s["method"] for s in server.seen] == ["POST"]


def test_streams_read_and_abandoned_give_their_connections_back(
    sse: SSEServer, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    """Twenty streams, read out or closed early, on two workers: no pool overflow, text intact."""
    pieces = [(0.0, event(chunk_body(w))) for w in ("a", "b")]
    sse.default = StreamReply(
        [*pieces, (0.0, event(chunk_body(finish_reason="stop"))), (0.0, DONE)]
    )
    caplog.set_level(logging.WARNING)
    texts: List[str] = []
    with make(sse.base_url, max_workers=2, timeout=(1.0, 0.5)) as client:
        for i in range(20):
            stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
            if i % 2:
                texts.append(stream.get_final_completion().choices[0].message.content or "")
            else:
                next(iter(stream))
                stream.close()
    assert set(texts) == {"ab"}
    assert sse.peak <= 2 + 2  # the server notices closes a little late
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
