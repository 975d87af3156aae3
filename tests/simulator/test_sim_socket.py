"""The socket server: real HTTP on 127.0.0.1, real clients (requests, openai), real faults."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest
import requests

from simulator import Simulator

pytestmark = pytest.mark.socket

KEY = "sk-socket-test-9876"
HEADERS = {"Authorization": f"Bearer {KEY}"}
BODY: Dict[str, Any] = {"model": "m1", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.trust_env = False
        yield s


def post(sim: Simulator, s: requests.Session, body: Any = None, **kw: Any) -> requests.Response:
    return s.post(f"{sim.base_url}/chat/completions", json=body or BODY, headers=HEADERS, **kw)


def test_chat_completion_over_http_with_keep_alive(session: requests.Session) -> None:
    """A keep-alive client gets well-formed completions on one connection."""
    with Simulator({"models": {"m1": {}}}) as sim:
        assert sim.base_url == f"http://127.0.0.1:{sim.port}/v1"
        for _ in range(3):
            r = post(sim, session)
            assert r.status_code == 200 and r.json()["object"] == "chat.completion"
            assert r.headers["content-type"] == "application/json"
        assert len({rec["t"] for rec in sim.journal()}) == 3


def test_each_transport_fault_reaches_the_client_as_the_network_would(
    session: requests.Session,
) -> None:
    """reset -> connection reset, hang -> read timeout, truncate -> incomplete body, html -> 502."""
    script = [{"fault": f} for f in ("reset", "hang", "truncate", "html", "malformed", "empty")]
    with Simulator({"models": {"m1": {"script": script}}}) as sim:
        with pytest.raises(requests.ConnectionError) as info:
            post(sim, session, timeout=2)
        assert "reset" in str(info.value).lower()
        started = time.monotonic()
        with pytest.raises(requests.ReadTimeout):
            post(sim, session, timeout=0.2)
        assert time.monotonic() - started < 1.0
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            post(sim, session, timeout=2)
        html = post(sim, session, timeout=2)
        assert html.status_code == 502 and html.headers["content-type"] == "text/html"
        malformed = post(sim, session, timeout=2)
        assert malformed.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(malformed.content)
        empty = post(sim, session, timeout=2)
        assert empty.status_code == 200 and empty.content == b""
        assert post(sim, session, timeout=2).status_code == 200
        statuses = [r["status"] for r in sim.journal()]
        assert statuses == [None, None, 200, 502, 200, 200, 200]


def test_stream_over_http_ends_with_done_and_matches_plain_text(
    session: requests.Session,
) -> None:
    """An SSE stream arrives chunked, ends with [DONE], and spells the non-stream text."""
    with Simulator({"models": {"m1": {"token_ms": 1}}}, seed=4) as sim:
        r = post(sim, session, {**BODY, "stream": True}, stream=True)
        assert r.headers["content-type"] == "text/event-stream"
        lines = [line for line in r.iter_lines() if line]
        assert lines[-1] == b"data: [DONE]"
        text = "".join(
            json.loads(line[6:])["choices"][0]["delta"].get("content", "") for line in lines[:-1]
        )
        assert text == post(sim, session).json()["choices"][0]["message"]["content"]


def test_truncated_stream_breaks_before_done(session: requests.Session) -> None:
    """A truncated stream raises mid-iteration without ever yielding [DONE]."""
    with Simulator({"models": {"m1": {"script": [{"fault": "truncate"}]}}}) as sim:
        r = post(sim, session, {**BODY, "stream": True}, stream=True)
        seen: List[bytes] = []
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            seen.extend(line for line in r.iter_lines() if line)
        assert seen and b"data: [DONE]" not in seen


def test_openai_package_as_a_client() -> None:
    """The official openai SDK parses completions, streams and typed errors from the simulator."""
    openai = pytest.importorskip("openai")
    script = [{"status": 429, "retry_after": 1, "code": "rate_limit_exceeded"}]
    with Simulator({"models": {"m1": {"script": script}}}, seed=2) as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key=KEY, max_retries=0)
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="m1", messages=BODY["messages"])
        assert info.value.response.headers["retry-after"] == "1"
        done = client.chat.completions.create(model="m1", messages=BODY["messages"])
        assert done.usage is not None
        assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
        stream = client.chat.completions.create(
            model="m1",
            messages=BODY["messages"],
            stream=True,
            stream_options={"include_usage": True},
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == done.choices[0].message.content
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="nope", messages=BODY["messages"])
        assert [m.id for m in client.models.list()] == ["m1"]
        client.close()


def test_api_key_option_rejects_other_keys(session: requests.Session) -> None:
    """With api_key set, another bearer key gets a 401 envelope that does not echo it."""
    with Simulator({"models": {"m1": {}}}, api_key=KEY) as sim:
        r = session.post(
            f"{sim.base_url}/chat/completions",
            json=BODY,
            headers={"Authorization": "Bearer sk-intruder-key-1234"},
        )
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert "sk-intruder-key-1234" not in r.text
        assert post(sim, session).status_code == 200


def test_admin_api_over_http(session: requests.Session) -> None:
    """Journal, stats, scenario replacement (with a 400 naming the field), reset and health."""
    with Simulator({"models": {"m1": {}}}) as sim:
        post(sim, session)
        assert session.get(f"{sim.url}/_sim/health").json()["status"] == "ok"
        assert session.get(f"{sim.url}/_sim/journal").json()[0]["key"] == "...9876"
        assert session.get(f"{sim.url}/_sim/stats").json()["by_model"] == {"m1": {"200": 1}}
        bad = session.post(f"{sim.url}/_sim/scenario", json={"models": {"m9": {"script": [7]}}})
        assert bad.status_code == 400 and "models.m9.script[0]" in bad.json()["error"]["message"]
        ok = session.post(f"{sim.url}/_sim/scenario", json={"models": {"m9": {}}})
        assert ok.status_code == 200
        assert post(sim, session, {**BODY, "model": "m9"}).status_code == 200
        assert session.post(f"{sim.url}/_sim/reset").status_code == 200
        assert session.get(f"{sim.url}/_sim/journal").json() == []


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET / HTTP/2.0\r\n\r\n", b"505"),
        (b"GET /v1/models HTTP/1.1\r\nno colon here\r\n\r\n", b"400"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: x\r\n\r\n", b"400"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"411"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", b"413"),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", b"414"),
    ],
)
def test_protocol_garbage_gets_a_json_error_and_a_close(
    request_bytes: bytes, status: bytes
) -> None:
    """Malformed HTTP gets its 4xx/505 status with a JSON envelope, never a stack trace."""
    with Simulator({"models": {"m1": {}}}) as sim:
        data = raw_exchange(sim.port, request_bytes)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == status
        assert json.loads(body)["error"]["type"] == "comet_api_error"


def test_close_joins_every_thread_even_with_idle_and_hung_connections() -> None:
    """Closing wakes hung and idle keep-alive connections and leaves no thread behind."""
    before = set(threading.enumerate())
    sim = Simulator({"models": {"m1": {"script": [{"fault": "hang"}]}}})
    idle = socket.create_connection(("127.0.0.1", sim.port))
    hung = requests.Session()
    worker = threading.Thread(target=lambda: _swallow(lambda: post(sim, hung, timeout=30)))
    worker.start()
    deadline = time.monotonic() + 2
    while not sim.journal() and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    sim.close()
    worker.join(2)
    assert time.monotonic() - started < 1.5
    idle.close()
    hung.close()
    assert set(threading.enumerate()) <= before


def _swallow(fn: Any) -> None:
    with contextlib.suppress(requests.RequestException):
        fn()


def test_keep_alive_latency_has_no_nagle_stall(session: requests.Session) -> None:
    """With no injected latency the median keep-alive round trip is far below 40 ms."""
    with Simulator({"models": {"m1": {}}}) as sim:
        times = []
        for _ in range(200):
            started = time.perf_counter()
            post(sim, session)
            times.append(time.perf_counter() - started)
        times.sort()
        assert times[100] < 0.010


def test_holds_500_concurrent_slow_connections() -> None:
    """500 clients each waiting on a 300 ms reply are all served, concurrently."""
    n = 500
    with Simulator({"models": {"m1": {"latency_ms": 300}}}) as sim:
        payload = json.dumps(BODY).encode()
        request = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k-123\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)
        )
        results: List[bytes] = []
        lock = threading.Lock()
        barrier = threading.Barrier(n)

        def client() -> None:
            barrier.wait()
            data = raw_exchange(sim.port, request)
            with lock:
                results.append(data[:12])

        threads = [threading.Thread(target=client) for _ in range(n)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        elapsed = time.monotonic() - started
        assert results.count(b"HTTP/1.1 200") == n
        assert elapsed < 5.0  # sequential would take 150 s
