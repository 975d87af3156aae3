"""One HTTP/1.1 connection of the socket driver: parse requests, ask the core, carry out plans.

A small parser of its own rather than ``BaseHTTPRequestHandler``'s, and each response head plus
body written with ONE ``sendall`` on a TCP_NODELAY socket, so Nagle's algorithm and delayed ACKs
cannot add 40 ms per request. Waits are ``Event.wait`` on the server's ``closing`` event, so a
close cuts every pause, stall and hang short.

Limits, each answered deliberately (a JSON error, then close), never a dropped connection:
a request line or header line over 64 KiB (414/431), more than 100 header lines or 64 KiB of
headers in all (431), a Content-Length that is not ASCII digits (400) or above the body limit
(413: the scenario's ``max_body_bytes``; the admin API has its own, ``ADMIN_MAX_BODY``), a
request line and headers not received within ``header_timeout`` of their first byte (408).
A kept-alive connection with no new request within ``idle_timeout`` is closed quietly, as is
one whose declared body has not all arrived within ``idle_timeout``.
"""

from __future__ import annotations

import io
import logging
import select
import socket
import socketserver
import struct
import threading
import time
from typing import Dict, List, Optional, Protocol, cast

from . import wire
from .admin import ADMIN_MAX_BODY
from .core import Core, Reply

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "ConnectionHandler",
    "Gateway",
]

log = logging.getLogger("simulator")

_LINGER_RST = struct.pack("ii", 1, 0)
_MAX_LINE = 65536
#: Header lines per request (every line counts, repeated names too).
MAX_HEADERS = 100
#: Bytes of the request line plus all header lines.
MAX_HEADER_BYTES = 65536
#: Seconds from a request's first byte to the end of its headers.
DEFAULT_HEADER_TIMEOUT = 10.0
#: Seconds a kept-alive connection may wait for its next request.
DEFAULT_IDLE_TIMEOUT = 60.0
_MAX_LENGTH_DIGITS = 18  # any Content-Length this long is over every body limit
_READ = 65536


class _Timeout(Exception):
    """The deadline for this read passed."""


class _Reader:
    """Buffered reads of one socket with a deadline per call, not per byte.

    ``rfile.readline`` waits for a whole line with no bound: a client sending one byte per
    second would hold its thread forever. Here each ``recv`` waits only what is left.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def fill(self, deadline: float) -> bool:
        """Receive once before ``deadline``; False at end of stream."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Timeout
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(_READ)
        except socket.timeout:
            raise _Timeout from None
        finally:
            self.sock.settimeout(None)
        if not data:
            return False
        self.buf += data
        return True

    def readline(self, limit: int, deadline: float) -> bytes:
        """One line with its end; ``limit + 1`` bytes when longer; what is left at the end."""
        start = 0
        while True:
            i = self.buf.find(b"\n", start, limit + 1)
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            if len(self.buf) > limit:
                return bytes(self.buf[: limit + 1])
            start = len(self.buf)
            if not self.fill(deadline):
                line = bytes(self.buf)
                self.buf.clear()
                return line

    def read(self, size: int, deadline: float) -> bytes:
        """``size`` bytes, or fewer when the stream ends first."""
        while len(self.buf) < size:
            if not self.fill(deadline):
                break
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data


class Gateway(Protocol):
    """What a connection needs of its server (:class:`simulator.SimulatorServer`)."""

    core: Core
    closing: threading.Event

    def now(self) -> float: ...


class ConnectionHandler(socketserver.StreamRequestHandler):
    """One connection: parse HTTP/1.1 requests, ask the core, carry out the plans.

    A small parser of its own rather than ``BaseHTTPRequestHandler``'s: the stdlib one parses
    headers with the ``email`` package (a third of the time of a request) and answers protocol
    errors with HTML; here every malformed input gets a JSON envelope.
    """

    def setup(self) -> None:
        super().setup()
        self.gateway: Gateway = cast(Gateway, self.server)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.close_connection = False
        self.reader = _Reader(self.connection)
        self.header_timeout = float(getattr(self.server, "header_timeout", DEFAULT_HEADER_TIMEOUT))
        self.idle_timeout = float(getattr(self.server, "idle_timeout", DEFAULT_IDLE_TIMEOUT))

    def handle(self) -> None:
        while not self.close_connection and not self.gateway.closing.is_set():
            try:
                if not self._handle_one():
                    return
            except _Timeout:
                if self.reader.buf or self._started:
                    message = f"request headers not received within {self.header_timeout:g}s"
                    self._protocol_error(408, message, "request_timeout")
                return  # idle: a quiet close, as servers do with kept-alive connections

    def _handle_one(self) -> bool:
        """Serve one request; False when the connection is done."""
        self._started = False
        if not self.reader.buf and not self.reader.fill(time.monotonic() + self.idle_timeout):
            return False
        self._started = True
        deadline = time.monotonic() + self.header_timeout
        line = self.reader.readline(_MAX_LINE, deadline)
        while line in (b"\r\n", b"\n"):  # tolerated before a request (RFC 9112 section 2.2),
            line = self.reader.readline(_MAX_LINE, deadline)  # within the same deadline
        if not line:
            return False
        if len(line) > _MAX_LINE:
            self._protocol_error(414, "request line too long")
            return False
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            self._protocol_error(400, "malformed request line")
            return False
        method, target, version = parts
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            self._protocol_error(505, f"HTTP version {version[:20]} is not supported")
            return False
        headers: Dict[str, str] = {}
        lines = 0
        size = len(line)
        while True:
            raw = self.reader.readline(_MAX_LINE, deadline)
            if not raw:
                return False
            if raw in (b"\r\n", b"\n"):
                break
            lines += 1
            size += len(raw)
            if len(raw) > _MAX_LINE or lines > MAX_HEADERS or size > MAX_HEADER_BYTES:
                message = (
                    f"request headers too large (at most {MAX_HEADERS} lines and "
                    f"{MAX_HEADER_BYTES} bytes)"
                )
                self._protocol_error(431, message)
                return False
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep or not name.strip():
                self._protocol_error(400, "malformed header line")
                return False
            headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            self.close_connection = "keep-alive" not in connection
        elif "close" in connection:
            self.close_connection = True
        self._request(method, target, headers)
        return not self.close_connection

    def _protocol_error(self, status: int, message: str, code: str = "invalid_request") -> None:
        self.close_connection = True
        payload = {
            "error": {"message": message, "type": wire.ERROR_TYPE, "param": None, "code": code}
        }
        self._write(status, {"content-type": "application/json"}, wire.dumps(payload))

    def _write(
        self, status: int, headers: Dict[str, str], body: bytes, head_only: bool = False
    ) -> None:
        """Head and body in ONE sendall: no Nagle/delayed-ACK stall between them."""
        head = [f"HTTP/1.1 {status} {wire.reason(status)}\r\nserver: cometsync-simulator\r\n"]
        for name, value in headers.items():
            head.append(f"{name}: {value}\r\n")
        if "content-length" not in headers and "transfer-encoding" not in headers:
            head.append(f"content-length: {len(body)}\r\n")
        if self.close_connection and "connection" not in headers:
            head.append("connection: close\r\n")
        head.append("\r\n")
        data = "".join(head).encode("latin-1")
        self.connection.sendall(data if head_only else data + body)

    def _request(self, method: str, target: str, headers: Dict[str, str]) -> None:
        server = self.gateway
        if "transfer-encoding" in headers:
            self._protocol_error(411, "send the body with a Content-Length", "length_required")
            return
        body = b""
        body_length: Optional[int] = None
        declared = headers.get("content-length")
        if declared is not None:
            # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
            if not declared or not declared.isascii() or not declared.isdigit():
                self._protocol_error(400, "Content-Length must be a non-negative integer")
                return
            admin = target.startswith("/_sim/")
            limit = ADMIN_MAX_BODY if admin else server.core.scenario.max_body_bytes
            if len(declared) > _MAX_LENGTH_DIGITS:  # over any limit; int() refuses 4,300+ digits
                message = f"Content-Length has {len(declared)} digits; the limit is {limit} bytes"
                self._protocol_error(413, message, "request_too_large")
                return
            length = int(declared)
            if length > limit:
                body_length = length
                self.close_connection = True  # the body is left unread
            elif length:
                if headers.get("expect", "").lower() == "100-continue":
                    self.connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                try:
                    body = self.reader.read(length, time.monotonic() + self.idle_timeout)
                except _Timeout:
                    body = b""
                if len(body) < length:
                    self.close_connection = True
                    return  # the client left (or stalled) mid-body
        try:
            reply = server.core.handle(
                method, target, headers, body, server.now(), body_length=body_length
            )
        except Exception as exc:  # a simulator bug: still answer, and say so in the log
            log.exception("simulator failed to plan a reply to %s %s", method, target[:200])
            self._protocol_error(500, f"simulator bug: {type(exc).__name__}", "simulator_error")
            return
        delivered = False
        try:
            delivered = self._deliver(reply, head_only=method == "HEAD")
        except OSError:  # the client went away mid-answer
            self.close_connection = True
        finally:
            server.core.finish(reply, server.now(), delivered=delivered)

    def _deliver(self, reply: Reply, head_only: bool = False) -> bool:
        """Carry out a plan; return whether the client got an answer."""
        server = self.gateway
        if reply.latency > 0 and server.closing.wait(reply.latency):
            self.close_connection = True
            return False
        if reply.end == "reset" and reply.status is None:
            self._reset()
            return False
        if reply.end == "stall" and reply.status is None:
            self._stall(reply.hold)
            return False
        assert reply.status is not None
        headers = dict(reply.headers)
        if self.close_connection or reply.end != "complete":
            headers["connection"] = "close"
            self.close_connection = True
        if reply.chunks is None:
            self._write(reply.status, headers, reply.body, head_only)
        else:
            self._stream(reply, headers)
        if reply.end == "reset":
            self._reset()
        elif reply.end == "stall":
            self._stall(reply.hold)
        return True

    def _stream(self, reply: Reply, headers: Dict[str, str]) -> None:
        assert reply.status is not None
        headers["transfer-encoding"] = "chunked"
        pending: List[bytes] = []
        first = True
        for delay, event in reply.events:
            if delay > 0:
                if pending or first:
                    self._flush_chunks(reply.status, headers, pending, first)
                    pending, first = [], False
                if self.gateway.closing.wait(delay):
                    raise ConnectionAbortedError("simulator closing")
            pending.append(b"%x\r\n%s\r\n" % (len(event), event))
        if reply.end == "complete":
            pending.append(b"0\r\n\r\n")
        self._flush_chunks(reply.status, headers, pending, first)

    def _flush_chunks(
        self, status: int, headers: Dict[str, str], chunks: List[bytes], with_head: bool
    ) -> None:
        data = b"".join(chunks)
        if with_head:
            self._write(status, headers, data)
        elif data:
            self.connection.sendall(data)

    def _reset(self) -> None:
        """An abortive close: SO_LINGER 0 makes close() send RST instead of FIN."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        self.rfile.close()
        self.wfile.close()
        self.connection.close()  # the fd closes now that no file object refers to it
        self.wfile = io.BytesIO()  # http.server flushes wfile after the request: let it

    def _stall(self, hold: float) -> None:
        """Send nothing until the client closes, the server closes, or ``hold`` passes."""
        self.close_connection = True
        deadline = time.monotonic() + hold
        sock = self.connection
        while not self.gateway.closing.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            readable, _, _ = select.select([sock], [], [], min(left, 0.25))
            if readable:
                try:
                    if not sock.recv(65536):
                        return  # the client gave up
                except OSError:
                    return
