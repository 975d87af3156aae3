"""The urllib3 transport over real sockets on 127.0.0.1: failures, pooling, environment."""

from __future__ import annotations

import gc
import json
import logging
import socket
import struct
import threading
import time
from typing import Any, Iterator, List

import pytest

import cometsync
from cometsync import HTTPRequest, Timeout, Urllib3Transport
from cometsync.testing import completion_body

from .scripted_server import Reply, ScriptedServer
from .sse_server import SSEServer, StreamReply, event

KEY = "sk-live-SECRET-abcdef"
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
FAST = Timeout(connect=0.5, read=0.5)
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set the proxy variables they need; the machine's own must not leak in."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def post(url: str, stream: bool = False) -> HTTPRequest:
    body = json.dumps({"model": "m1", "stream": stream}).encode()
    return HTTPRequest("POST", url + "/chat/completions", HEADERS, body, stream)


@pytest.fixture
def sse() -> Iterator[SSEServer]:
    with SSEServer() as s:
        yield s


def chunks(*texts: str) -> StreamReply:
    pieces = [(0.0, event({"choices": [{"index": 0, "delta": {"content": t}}]})) for t in texts]
    return StreamReply([*pieces, (0.0, b"data: [DONE]\n\n")])


def test_a_plain_call_returns_the_body_and_reuses_one_connection(server: ScriptedServer) -> None:
    """Three calls: status, headers and JSON come back, over a single kept-alive connection."""
    server.script = [Reply(200, completion_body("ok"), {"x-request-id": "r1"})] * 3
    transport = Urllib3Transport(2, base_url=server.base_url)
    for _ in range(3):
        response = transport.send(post(server.base_url), FAST)
        assert response.status_code == 200
        assert response.headers["X-Request-Id"] == "r1"
        assert response.json()["choices"][0]["message"]["content"] == "ok"
    transport.close()
    assert server.connections == 1
    assert server.seen[0]["auth"] == f"Bearer {KEY}"


def test_a_slow_answer_is_an_api_timeout_error(server: ScriptedServer) -> None:
    """No byte within the read timeout: APITimeoutError, raised from urllib3's error."""
    server.script = [Reply(200, completion_body(), delay=0.4)]
    transport = Urllib3Transport(1, base_url=server.base_url)
    started = time.monotonic()
    with pytest.raises(cometsync.APITimeoutError, match="timed out") as info:
        transport.send(post(server.base_url), Timeout(connect=0.5, read=0.1))
    assert time.monotonic() - started < 0.35
    assert info.value.__cause__ is not None
    transport.close()


def test_connection_refused_is_a_connection_error_without_the_key() -> None:
    """Nothing listening: APIConnectionError (not a timeout), and no header in the text."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    transport = Urllib3Transport(1, base_url=url)
    with pytest.raises(cometsync.APIConnectionError, match="connection failed") as info:
        transport.send(post(url), FAST)
    assert not isinstance(info.value, cometsync.APITimeoutError)
    assert KEY not in str(info.value) and "SECRET" not in repr(info.value)
    transport.close()


class _CutServer:
    """Answers one request with half of a declared body, then resets the connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.recv(65536)
        conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n{"id": "cut')
        time.sleep(0.05)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    def close(self) -> None:
        self.thread.join(timeout=2)
        self.sock.close()


def test_a_reset_in_the_middle_of_the_body_is_a_connection_error() -> None:
    """A body cut short by a reset is APIConnectionError, never a short body taken as whole."""
    cut = _CutServer()
    transport = Urllib3Transport(1, base_url=cut.url)
    try:
        with pytest.raises(cometsync.APIConnectionError, match="connection failed"):
            transport.send(post(cut.url), FAST)
    finally:
        cut.close()
        transport.close()


def test_a_reset_in_the_middle_of_a_stream_is_a_connection_error(sse: SSEServer) -> None:
    """Reading a stream that is reset after its first piece raises APIConnectionError."""
    sse.script = [StreamReply([(0.0, b"data: {}\n\n"), (0.0, b"data: {}\n\n")], end="reset")]
    transport = Urllib3Transport(1, base_url=sse.base_url)
    response = transport.send(post(sse.base_url, stream=True), FAST)
    with pytest.raises(cometsync.APIConnectionError):
        for _ in response.iter_bytes():
            pass
    response.close()
    transport.close()


def test_a_stalled_stream_is_an_api_timeout_error(sse: SSEServer) -> None:
    """A stream that goes silent for longer than the read timeout raises APITimeoutError."""
    sse.script = [StreamReply([(0.0, b"data: {}\n\n")], end="stall", hold=1.0)]
    transport = Urllib3Transport(1, base_url=sse.base_url)
    response = transport.send(post(sse.base_url, stream=True), Timeout(connect=0.5, read=0.1))
    pieces = response.iter_bytes()
    assert next(pieces) == b"data: {}\n\n"
    with pytest.raises(cometsync.APITimeoutError):
        next(pieces)
    response.close()
    transport.close()


def test_a_hundred_streams_on_two_connections_leak_nothing(
    sse: SSEServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Read to the end, closed early or dropped: every stream gives its connection back."""
    sse.default = chunks("a", "b", "c")
    caplog.set_level(logging.WARNING)
    transport = Urllib3Transport(2, base_url=sse.base_url)
    errors: List[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(offset, 100, 2):
                response = transport.send(post(sse.base_url, stream=True), FAST)
                pieces = response.iter_bytes()
                next(pieces)
                if i % 3 == 0:
                    for _ in pieces:
                        pass
                elif i % 3 == 1:
                    response.close()
                else:
                    del pieces, response  # dropped: its finaliser gives the connection back
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    gc.collect()
    pool = transport.manager.connection_from_url(sse.base_url)
    assert errors == []
    assert len(sse.bodies) == 100
    assert pool.num_connections <= 2
    assert pool.pool is not None and pool.pool.qsize() == 2  # both slots are back
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
    transport.close()


def test_a_held_pool_makes_a_pool_timeout_not_a_hang(sse: SSEServer) -> None:
    """With its one connection held by an open stream, a send fails fast as PoolTimeoutError."""
    sse.default = chunks("a")
    transport = Urllib3Transport(1, base_url=sse.base_url)
    held = transport.send(post(sse.base_url, stream=True), FAST)
    started = time.monotonic()
    with pytest.raises(cometsync.PoolTimeoutError, match="close streams"):
        transport.send(post(sse.base_url, stream=True), Timeout(connect=0.05, read=0.15))
    assert 0.14 < time.monotonic() - started < 0.45  # the longer of the two timeouts
    held.close()
    transport.send(post(sse.base_url, stream=True), FAST).close()  # free again
    transport.close()


def test_a_redirect_is_returned_not_followed(server: ScriptedServer) -> None:
    """A 307 comes back as it is; the server sees one request."""
    server.script = [Reply(307, "", {"Location": "/v1/elsewhere"})]
    transport = Urllib3Transport(1, base_url=server.base_url)
    response = transport.send(post(server.base_url), FAST)
    assert response.status_code == 307
    assert [s["path"] for s in server.seen] == ["/v1/chat/completions"]
    transport.close()


def test_a_netrc_entry_is_never_sent(
    server: ScriptedServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ~/.netrc entry for the host does not replace the Bearer header."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password other\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    server.script = [Reply(200, completion_body())]
    transport = Urllib3Transport(1, base_url=server.base_url)
    transport.send(post(server.base_url), FAST)
    transport.close()
    assert server.seen[0]["auth"] == f"Bearer {KEY}"


def test_the_proxy_is_read_from_the_environment_once(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY at construction routes through the proxy; later changes to it do not count."""
    monkeypatch.setenv("HTTP_PROXY", server.base_url.rsplit("/", 1)[0])
    target = "http://api.example.invalid/v1"
    transport = Urllib3Transport(1, base_url=target)
    monkeypatch.delenv("HTTP_PROXY")
    server.script = [Reply(200, completion_body())]
    assert transport.send(post(target), FAST).status_code == 200
    assert server.seen[0]["path"] == target + "/chat/completions"  # the proxy's absolute form
    assert server.seen[0]["auth"] == f"Bearer {KEY}"
    transport.close()


def test_no_proxy_and_a_later_proxy_leave_a_direct_transport_direct(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NO_PROXY bypasses the proxy for its host; a proxy set after construction is ignored."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    bypassed = Urllib3Transport(1, base_url=server.base_url)
    monkeypatch.delenv("NO_PROXY")
    direct_then_set = Urllib3Transport(1, base_url="http://127.0.0.2/v1")
    assert direct_then_set.proxy == "http://127.0.0.1:9"
    monkeypatch.delenv("HTTP_PROXY")
    plain = Urllib3Transport(1, base_url=server.base_url)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    server.script = [Reply(200, completion_body())] * 2
    assert bypassed.proxy is None and plain.proxy is None
    assert bypassed.send(post(server.base_url), FAST).status_code == 200
    assert plain.send(post(server.base_url), FAST).status_code == 200
    assert [s["path"] for s in server.seen] == ["/v1/chat/completions"] * 2
    for t in (bypassed, direct_then_set, plain):
        t.close()


def test_proxy_credentials_become_a_proxy_authorization_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """user:password in the proxy URL is sent as Basic Proxy-Authorization, as requests does."""
    monkeypatch.setenv("HTTPS_PROXY", "http://us%40er:p%3Ass@127.0.0.1:3128")
    transport = Urllib3Transport(1, base_url="https://api.cometapi.com/v1")
    proxy_headers = transport.manager.proxy_headers  # type: ignore[attr-defined]
    assert proxy_headers == {"proxy-authorization": "Basic dXNAZXI6cDpzcw=="}
    assert "p%3Ass" not in repr(transport)
    transport.close()


def test_the_ca_bundle_comes_from_the_environment_in_requests_order(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQUESTS_CA_BUNDLE wins over SSL_CERT_FILE; a missing bundle is a ConfigError naming it."""
    bundle = tmp_path / "corp.pem"
    bundle.write_text("")
    other = tmp_path / "other.pem"
    other.write_text("")
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    assert Urllib3Transport(1, base_url="https://gw.example/v1").ca == str(other)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert Urllib3Transport(1, base_url="https://gw.example/v1").ca == str(bundle)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(cometsync.ConfigError, match=r"missing\.pem"):
        Urllib3Transport(1, base_url="https://gw.example/v1")


def test_iter_lines_splits_across_pieces(sse: SSEServer) -> None:
    """Lines broken over HTTP chunks come out whole, as requests' iter_lines gives them."""
    sse.script = [StreamReply([(0.0, b"data: a"), (0.01, b"b\n\ndata: c\n"), (0.0, b"\n")])]
    transport = Urllib3Transport(1, base_url=sse.base_url)
    response = transport.send(post(sse.base_url, stream=True), FAST)
    assert list(response.iter_lines()) == [b"data: ab", b"", b"data: c", b""]
    response.close()
    transport.close()


class _RecordingSocket:
    """Stands in for a connected socket and keeps what each sendall() was given."""

    def __init__(self) -> None:
        self.writes: List[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def settimeout(self, value: Any) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("size", "writes"), [(2, 1), (70_000, 2)])
def test_a_request_with_a_small_body_is_written_in_one_piece(size: int, writes: int) -> None:
    """Head and body leave in one write (the same bytes); a body over 64 KiB is written apart."""
    from cometsync._transport_urllib3 import _Connection

    conn = _Connection("127.0.0.1", 9)
    sock = _RecordingSocket()
    conn.sock = sock  # type: ignore[assignment]
    body = b"x" * size
    conn.request("POST", "/v1/chat/completions", body, {"Authorization": f"Bearer {KEY}"})
    assert len(sock.writes) == writes
    sent = b"".join(sock.writes)
    assert sent.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert sent.endswith(b"\r\n\r\n" + body)
    assert f"Content-Length: {size}".encode() in sent


def test_a_streams_read_timeout_can_be_shortened_then_restored(sse: SSEServer) -> None:
    """set_read_timeout and short_reads reach the pooled socket (first-token budget, drain)."""
    sse.script = [StreamReply([(0.0, b"data: {}\n\n")], end="stall", hold=1.0)]
    transport = Urllib3Transport(1, base_url=sse.base_url)
    response = transport.send(post(sse.base_url, stream=True), Timeout(connect=0.5, read=0.5))
    pieces = response.iter_bytes()
    assert next(pieces) == b"data: {}\n\n"
    with response.short_reads(0.05):
        assert response._socket().gettimeout() == 0.05  # type: ignore[attr-defined]
    assert response._socket().gettimeout() == 0.5  # type: ignore[attr-defined]
    response.set_read_timeout(0.05)
    started = time.monotonic()
    with pytest.raises(cometsync.APITimeoutError):
        next(pieces)
    assert time.monotonic() - started < 0.3
    response.close()
    transport.close()


def test_more_threads_than_connections_queue_for_the_pool(server: ScriptedServer) -> None:
    """Four threads on one pooled connection each get their answer, in turn, on that connection."""
    server.script = [Reply(200, completion_body(), delay=0.03)] * 4
    transport = Urllib3Transport(1, base_url=server.base_url)
    statuses: List[int] = []

    def one() -> None:
        statuses.append(transport.send(post(server.base_url), Timeout(0.02, 0.5)).status_code)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    transport.close()
    assert statuses == [200] * 4
    assert server.connections == 1
