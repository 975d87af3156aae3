"""The behaviour table again, over real sockets on 127.0.0.1 with the real clock."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, Dict, Optional

import pytest
import requests

import cometsync
from cometsync import Exponential, RetryPolicy
from cometsync.testing import completion_body

from .scripted_server import Reply, ScriptedServer

KEY = "sk-live-SECRET-abcdef"
FAST = RetryPolicy(backoff=Exponential(base=0.01, cap=0.05))
MSGS = [{"role": "user", "content": "hi"}]


def err(code: Optional[str] = None, message: str = "boom") -> Dict[str, Any]:
    return {"error": {"message": message, "type": "comet_api_error", "param": None, "code": code}}


def client_for(server: ScriptedServer, **kwargs: Any) -> cometsync.Client:
    kwargs.setdefault("retry", FAST)
    return cometsync.Client(api_key=KEY, base_url=server.base_url, **kwargs)


def call(client: cometsync.Client, **kwargs: Any) -> cometsync.ChatCompletion:
    return client.chat.completions.create(model="m1", messages=MSGS, **kwargs)


def test_429_retry_after_ms_is_honoured_over_the_wire(server: ScriptedServer) -> None:
    """A 429 with retry-after-ms 150 is waited out, then the retry succeeds."""
    server.script = [
        Reply(429, err("rate_limit_exceeded"), {"retry-after-ms": "150"}),
        Reply(200, completion_body("ok")),
    ]
    with client_for(server) as client:
        start = time.monotonic()
        r = call(client)
        elapsed = time.monotonic() - start
    assert r.choices[0].message.content == "ok"
    assert 0.15 <= elapsed < 0.9
    assert r.attempts[0].delay == pytest.approx(0.15)
    assert server.seen[0]["auth"] == f"Bearer {KEY}"


def test_unknown_model_falls_back_and_the_chain_is_not_sent(server: ScriptedServer) -> None:
    """A JSON 404 moves to the next model; fallback_models never reaches the server."""
    server.script = [Reply(404, err("model_not_found")), Reply(200, completion_body(model="m2"))]
    with client_for(server, fallback_models=["m2"]) as client:
        r = call(client, temperature=0.1)
    assert server.models() == ["m1", "m2"]
    assert r.model == "m2"
    assert all("fallback_models" not in s["body"] for s in server.seen)
    assert server.seen[1]["body"]["temperature"] == 0.1


@pytest.mark.parametrize(
    ("reply", "exc"),
    [
        (Reply(400, err(None, "messages[0].content is required")), cometsync.BadRequestError),
        (Reply(401, err("invalid_api_key")), cometsync.AuthenticationError),
        (Reply(403, err()), cometsync.PermissionDeniedError),
        (Reply(422, err()), cometsync.UnprocessableEntityError),
        (Reply(500, err("invalid_request")), cometsync.InternalServerError),
    ],
)
def test_malformed_requests_raise_after_one_request(
    server: ScriptedServer, reply: Reply, exc: type
) -> None:
    """The server sees exactly one request; no retry or fallback hides the error."""
    server.script = [reply]
    with client_for(server, fallback_models=["m2"]) as client, pytest.raises(exc):
        call(client)
    assert server.models() == ["m1"]


def test_html_404_raises_with_a_base_url_hint(server: ScriptedServer) -> None:
    """An HTML 404 (wrong path) is reported with advice about base_url."""
    server.script = [Reply(404, "<!DOCTYPE html><html><body>404</body></html>")]
    with client_for(server, fallback_models=["m2"]) as client:
        with pytest.raises(cometsync.NotFoundError, match="base_url") as info:
            call(client)
    assert len(server.seen) == 1
    assert info.value.status_code == 404


def test_redirects_are_not_followed(server: ScriptedServer) -> None:
    """A 301 is reported (wrong base_url), never followed as a GET that loses the body."""
    server.script = [Reply(301, "", {"Location": "/elsewhere"})]
    with client_for(server) as client, pytest.raises(cometsync.APIStatusError, match="base_url"):
        call(client)
    assert [s["method"] for s in server.seen] == ["POST"]


@pytest.mark.parametrize(
    "failure",
    [
        "reset",
        Reply(500, err()),
        Reply(502, "<html><body><h1>502 Bad Gateway</h1></body></html>"),
        Reply(503, err(), {"retry-after": "0"}),
        Reply(504, err()),
        Reply(524, err()),
        Reply(408, err()),
        Reply(409, err()),
        Reply(200, '{"id": "cut'),
    ],
)
def test_transient_failures_are_retried_over_the_wire(server: ScriptedServer, failure: Any) -> None:
    """Resets, 5xx, 408/409 and a broken 2xx body are retried on the same model."""
    server.script = [failure, Reply(200, completion_body("after"))]
    with client_for(server) as client:
        r = call(client)
    assert r.choices[0].message.content == "after"
    assert server.models() == ["m1", "m1"]
    assert r.attempts[0].decision == "retry"


def test_read_timeout_is_retried_then_falls_back(server: ScriptedServer) -> None:
    """A slow answer past the read timeout is an APITimeoutError, then the next model."""
    server.script = [
        Reply(200, completion_body(), delay=0.5),
        Reply(200, completion_body(model="m2")),
    ]
    policy = RetryPolicy(max_retries=0, backoff=Exponential(base=0.01, cap=0.01))
    with client_for(server, retry=policy, timeout=0.15, fallback_models=["m2"]) as client:
        r = call(client)
    assert r.model == "m2"
    assert r.attempts[0].status is None
    assert r.attempts[0].error is not None and r.attempts[0].error.startswith("APITimeoutError")


def test_deadline_bounds_the_whole_call(server: ScriptedServer) -> None:
    """A hanging server cannot hold a call past its deadline (plus scheduling slack)."""
    server.script = ["hang", "hang"]
    with client_for(server, deadline=0.3, timeout=10) as client:
        start = time.monotonic()
        with pytest.raises(cometsync.APITimeoutError):
            call(client)
        assert time.monotonic() - start < 0.9


def test_connection_refused_is_a_connection_error_with_history() -> None:
    """Nothing listening: APIConnectionError after the retries, each attempt recorded."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = cometsync.Client(api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1", retry=FAST)
    with pytest.raises(cometsync.APIConnectionError) as info:
        call(client)
    assert len(info.value.attempts) == 3
    assert all(a.status is None for a in info.value.attempts)
    assert KEY not in str(info.value)


def test_whole_chain_failure_raises_the_last_class(server: ScriptedServer) -> None:
    """503s on m1 then 429s on m2: RateLimitError with all six attempts."""
    server.script = [Reply(503, err())] * 3 + [Reply(429, err(), {"retry-after-ms": "10"})] * 3
    with client_for(server, fallback_models=["m2"]) as client:
        with pytest.raises(cometsync.RateLimitError) as info:
            call(client)
    assert [a.model for a in info.value.attempts] == ["m1"] * 3 + ["m2"] * 3
    assert info.value.retry_after == pytest.approx(0.01)


def test_models_list_over_the_wire(server: ScriptedServer) -> None:
    """GET /v1/models is parsed into Model records."""
    server.script = [
        Reply(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})
    ]
    with client_for(server) as client:
        assert [m.id for m in client.models.list()] == ["gpt-4o-mini"]
    assert server.seen[0]["path"] == "/v1/models"


def test_a_callers_session_is_used_and_left_open(server: ScriptedServer) -> None:
    """session= sends through the caller's Session (their headers, proxies) and keeps it open."""
    session = requests.Session()
    session.headers["X-Corp"] = "yes"
    server.script = [Reply(200, completion_body()), Reply(200, completion_body())]
    with client_for(server, session=session) as client:
        call(client)
    r = session.get(server.base_url + "/models")  # still usable after client.close()
    assert r.status_code == 200
    session.close()


def test_no_key_in_debug_logs_over_the_wire(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With every logger at DEBUG (urllib3 included), the key never shows."""
    caplog.set_level(logging.DEBUG)
    server.script = [Reply(503, err(None, f"bad {KEY}")), Reply(200, completion_body())]
    with client_for(server) as client:
        call(client)
    assert caplog.records
    assert all(KEY not in r.getMessage() for r in caplog.records)


def test_environment_proxies_are_read_once_for_the_base_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTPS_PROXY applies (NO_PROXY too), read when the client is built, as httpx does."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    with cometsync.Client(api_key=KEY, base_url="https://api.cometapi.com/v1") as client:
        transport = client._shared.transport
        assert isinstance(transport, cometsync.Urllib3Transport)
        assert transport.proxy == "http://127.0.0.1:3128"
    with cometsync.Client(api_key=KEY, base_url="https://internal.example/v1") as client:
        assert client._shared.transport.proxy is None  # type: ignore[attr-defined]


def test_the_requests_transports_own_session_reads_the_environment_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RequestsTransport's own Session takes the proxies now and stops trusting the environment."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    transport = cometsync.RequestsTransport(base_url="https://api.cometapi.com/v1")
    assert transport.session.proxies.get("https") == "http://127.0.0.1:3128"
    assert transport.session.trust_env is False
    transport.close()
    transport = cometsync.RequestsTransport(base_url="https://internal.example/v1")
    assert transport.session.proxies == {}
    transport.close()


def test_a_netrc_entry_cannot_replace_the_bearer_key(
    server: ScriptedServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests would put ~/.netrc Basic auth over our header; the client's Session does not."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password other\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    server.script = [Reply(200, completion_body())]
    with client_for(server) as client:
        call(client)
    assert server.seen[0]["auth"] == f"Bearer {KEY}"


def test_waiting_for_a_limiter_slot_comes_out_of_the_deadline(server: ScriptedServer) -> None:
    """A call that queued 0.3 s for a slot has only the rest of its 0.45 s deadline to send."""
    server.script = [Reply(200, completion_body(), delay=0.3)] * 2
    outcome: Dict[str, Any] = {}
    with client_for(server, max_workers=1, deadline=0.45, timeout=5) as client:
        first = threading.Thread(target=call, args=(client,))
        first.start()
        time.sleep(0.05)
        began = time.monotonic()
        try:
            call(client)
        except cometsync.APITimeoutError as exc:
            outcome["error"] = exc
        outcome["elapsed"] = time.monotonic() - began
        first.join()
    assert isinstance(outcome.get("error"), cometsync.APITimeoutError)
    assert outcome["elapsed"] < 0.6


def test_slot_timeouts_do_not_count_against_the_model(server: ScriptedServer) -> None:
    """Calls that never left the client (no slot in time) must not open the model's breaker."""
    server.script = [Reply(200, completion_body(), delay=0.5), Reply(200, completion_body())]
    with client_for(server, max_workers=1) as client:
        holder = threading.Thread(target=call, args=(client,))
        holder.start()
        time.sleep(0.05)
        hurried = client.with_options(deadline=0.05, max_retries=0)
        for _ in range(6):
            with pytest.raises(cometsync.PoolTimeoutError):
                call(hurried)
        holder.join()
        assert all(c["trips"] == 0 for c in client.stats()["cooldowns"].values())
        began = time.monotonic()
        call(client)
        assert time.monotonic() - began < 0.3
