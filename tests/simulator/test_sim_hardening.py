"""Abuse of the socket server: each gets a deliberate 4xx (or a quiet close), never a traceback."""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Iterator, Optional, Tuple

import pytest

from simulator import Simulator
from simulator.admin import ADMIN_MAX_BODY

pytestmark = pytest.mark.socket

KEY = "sk-hardening-0123456789"
CHAT = json.dumps({"model": "m1", "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails the test when the simulator logged an error (a traceback) while it ran."""
    caplog.set_level(logging.ERROR, logger="simulator")
    yield
    errors = [r for r in caplog.records if r.name.startswith("simulator")]
    assert errors == [], [r.getMessage() for r in errors]


def exchange(sim: Simulator, data: bytes, wait: float = 2.0) -> bytes:
    """Send raw bytes, read until the server closes (or ``wait`` passes); what came back."""
    with socket.create_connection((sim.host, sim.port), timeout=wait) as sock:
        sock.sendall(data)
        return read_all(sock, wait)


def read_all(sock: socket.socket, wait: float) -> bytes:
    sock.settimeout(wait)
    out = b""
    try:
        while True:
            piece = sock.recv(65536)
            if not piece:
                return out
            out += piece
    except (socket.timeout, ConnectionResetError):
        return out


def status_of(raw: bytes) -> Tuple[int, dict]:
    """The status and decoded JSON body of one raw HTTP response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else {}


def request(
    method: str, path: str, body: bytes = b"", extra: str = "", keep: bool = False
) -> bytes:
    """A raw request; it asks the server to close after answering unless ``keep``."""
    extra += "" if keep else "connection: close\r\n"
    return (
        f"{method} {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def post(
    sim: Simulator, path: str, payload: object, raw: Optional[bytes] = None
) -> Tuple[int, dict]:
    body = raw if raw is not None else json.dumps(payload).encode()
    return status_of(exchange(sim, request("POST", path, body)))


# -- 4. Content-Length ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "status"), [("\u00b2", 400), ("1\u00b9", 400), ("-1", 400), ("9" * 4301, 413)]
)
def test_content_length_that_int_refuses_is_a_4xx(
    value: str, status: int, no_tracebacks: None
) -> None:
    """A superscript two (isdigit, not int), a negative or 4,301 digits: a JSON 4xx."""
    with Simulator({"models": {"m1": {}}}) as sim:
        head = f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {value}\r\n\r\n"
        got, body = status_of(exchange(sim, head.encode("latin-1")))  # as the server decodes
    assert got == status
    assert "Content-Length" in body["error"]["message"]


# -- 5. role ------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", [["user"], {"a": 1}])
def test_a_role_that_is_a_list_or_object_is_a_400_naming_it(
    role: object, no_tracebacks: None
) -> None:
    """An unhashable role is refused like any unknown role, with the field named."""
    with Simulator({"models": {"m1": {}}}) as sim:
        status, body = post(
            sim,
            "/v1/chat/completions",
            {"model": "m1", "messages": [{"role": role, "content": "x"}]},
        )
    assert status == 400 and body["error"]["param"] == "messages[0].role"


# -- 6. scenario numbers -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"models": {"m1": {"latency_ms": 1' + b"0" * 400 + b"}}}", "models.m1.latency_ms"),
        (b'{"models": {"m1": {"latency_ms": 9223372036854775808}}}', "models.m1.latency_ms"),
        (
            b'{"models": {"m1": {"latency_ms": {"dist": "uniform", "high": 1e308}}}}',
            "models.m1.latency_ms.high",
        ),
        (b'{"models": {"m1": {"token_ms": Infinity}}}', "models.m1.token_ms"),
        (b'{"models": {"m1": {}}, "hang_s": 1e300}', "hang_s"),
        (
            b'{"models": {"m1": {"faults": [{"rate": 1, "status": 429, "retry_after": 1e200}]}}}',
            "models.m1.faults[0].retry_after",
        ),
    ],
)
def test_absurd_scenario_numbers_are_a_400_naming_the_field(
    raw: bytes, field: str, no_tracebacks: None
) -> None:
    """Beyond float range or past the documented maximum: 400 with the field, old scenario kept."""
    with Simulator({"models": {"m1": {}}}) as sim:
        status, body = post(sim, "/_sim/scenario", None, raw)
        assert status == 400, body
        assert body["error"]["param"] == field
        assert status_of(exchange(sim, request("POST", "/v1/chat/completions", CHAT)))[0] == 200


def test_a_latency_just_under_hang_s_is_accepted() -> None:
    """The maximum is hang_s: a latency of hang_s seconds is still a valid scenario."""
    with Simulator({"models": {"m1": {}}}) as sim:
        scenario = {"models": {"m1": {"latency_ms": 2000}}, "hang_s": 2}
        assert post(sim, "/_sim/scenario", scenario)[0] == 200


# -- 7. the admin API's own body limit -----------------------------------------------------------
def test_admin_api_body_limit_is_its_own(no_tracebacks: None) -> None:
    """After max_body_bytes: 10, scenarios still post; a 1.5 MB one gets an honest 413."""
    with Simulator({"models": {"m1": {}}}) as sim:
        assert post(sim, "/_sim/scenario", {"models": {"m1": {}}, "max_body_bytes": 10})[0] == 200
        assert status_of(exchange(sim, request("POST", "/v1/chat/completions", CHAT)))[0] == 413
        assert post(sim, "/_sim/reset", {})[0] == 200
        status, body = post(sim, "/_sim/scenario", {"models": {"m2": {}}})
        assert status == 200 and body["models"] == ["m2"]
        big = {"models": {"m1": {"script": [200] * 300_000}}}
        raw = json.dumps(big).encode()
        assert len(raw) > 1_500_000
        status, body = post(sim, "/_sim/scenario", None, raw)
    assert status == 413
    assert str(ADMIN_MAX_BODY) in body["error"]["message"] and "admin" in body["error"]["message"]


# -- 8. headers, slow clients, idle connections, connection bound -------------------------------
def test_repeated_header_lines_count_toward_the_cap(no_tracebacks: None) -> None:
    """200 lines of one header name are 200 lines, not 1: a 431."""
    with Simulator({"models": {"m1": {}}}) as sim:
        status, _ = status_of(
            exchange(sim, request("POST", "/v1/chat/completions", CHAT, "x-a: 1\r\n" * 200))
        )
    assert status == 431


def test_total_header_bytes_are_bounded(no_tracebacks: None) -> None:
    """90 header lines of 1,000 bytes (under the line cap, over 64 KiB in all): a 431."""
    lines = "".join(f"x-{i}: {'v' * 1000}\r\n" for i in range(90))
    with Simulator({"models": {"m1": {}}}) as sim:
        status, body = status_of(
            exchange(sim, request("POST", "/v1/chat/completions", CHAT, lines))
        )
    assert status == 431 and "bytes" in body["error"]["message"]


def test_a_client_sending_a_header_byte_at_a_time_is_cut_off_at_the_deadline(
    no_tracebacks: None,
) -> None:
    """With header_timeout 0.3 s, a byte every 0.05 s is answered 408 and closed in time."""
    with Simulator({"models": {"m1": {}}}, header_timeout=0.3) as sim:
        with socket.create_connection((sim.host, sim.port), timeout=2) as sock:
            started = time.monotonic()
            answer = b""
            for byte in request("POST", "/v1/chat/completions", CHAT):
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                time.sleep(0.05)
                if time.monotonic() - started > 0.6:
                    break
            answer = read_all(sock, 1.0)
            elapsed = time.monotonic() - started
    assert status_of(answer)[0] == 408
    assert elapsed < 0.9


def test_an_idle_kept_alive_connection_is_closed_after_idle_timeout(no_tracebacks: None) -> None:
    """After one answered request, silence for idle_timeout (0.2 s) closes the connection."""
    with Simulator({"models": {"m1": {}}}, idle_timeout=0.2) as sim:
        with socket.create_connection((sim.host, sim.port), timeout=2) as sock:
            sock.sendall(request("POST", "/v1/chat/completions", CHAT, keep=True))
            started = time.monotonic()
            data = read_all(sock, 1.0)
            elapsed = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 200")
    assert 0.15 < elapsed < 0.8


def test_connections_past_the_bound_get_a_503_and_close(no_tracebacks: None) -> None:
    """With max_connections 2, a third concurrent connection is refused cleanly (503)."""
    with Simulator({"models": {"m1": {}}}, max_connections=2, idle_timeout=2) as sim:
        held = [socket.create_connection((sim.host, sim.port), timeout=2) for _ in range(2)]
        try:
            time.sleep(0.05)  # let the server register both
            status, body = status_of(exchange(sim, request("GET", "/v1/models")))
            assert status == 503 and body["error"]["code"] == "too_many_connections"
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # the held ones are gone: served again
            status, _ = status_of(exchange(sim, request("GET", "/v1/models")))
            if status == 200:
                break
            time.sleep(0.02)
        assert status == 200


def test_the_journal_keeps_each_request_tag() -> None:
    """x-sim-tag (cut to 100 characters) labels a request's journal row; untagged rows: None."""
    from simulator import Core

    core = Core({"models": {"m1": {}}})
    auth = {"authorization": f"Bearer {KEY}"}
    for headers in ({**auth, "x-sim-tag": "input-7"}, {**auth, "x-sim-tag": "t" * 300}, auth):
        core.finish(core.handle("POST", "/v1/chat/completions", headers, CHAT, 0.0), 0.0)
    assert [row["tag"] for row in core.journal()] == ["input-7", "t" * 100, None]


def test_blank_lines_do_not_restart_the_header_deadline(no_tracebacks: None) -> None:
    """Blank lines every 0.05 s until 0.25 s: the 408 still comes at header_timeout (0.3 s)."""
    with Simulator({"models": {"m1": {}}}, header_timeout=0.3) as sim:
        with socket.create_connection((sim.host, sim.port), timeout=2) as sock:
            started = time.monotonic()
            while time.monotonic() - started < 0.25:
                sock.sendall(b"\r\n")
                time.sleep(0.05)
            answer = read_all(sock, 1.0)
            elapsed = time.monotonic() - started
    assert status_of(answer)[0] == 408
    assert elapsed < 0.7
