"""One HTTP/1.1 connection of the socket driver: parse requests, ask the core, carry out plans.

A small parser of its own rather than ``BaseHTTPRequestHandler``'s, and each response head plus
body written with ONE ``sendall`` on a TCP_NODELAY socket, so Nagle's algorithm and delayed ACKs
cannot add 40 ms per request. Waits are ``Event.wait`` on the server's ``closing`` event, so a
close cuts every pause, stall and hang short.
"""

from __future__ import annotations

import io
import select
import socket
import socketserver
import struct
import threading
import time
from typing import Dict, List, Optional, Protocol, cast

from . import wire
from .core import Core, Reply

__all__ = ["ConnectionHandler", "Gateway"]

_LINGER_RST = struct.pack("ii", 1, 0)
_MAX_LINE = 65536
_MAX_HEADERS = 100


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

    def handle(self) -> None:
        while not self.close_connection and not self.gateway.closing.is_set():
            if not self._handle_one():
                return

    def _handle_one(self) -> bool:
        """Serve one request; False when the connection is done."""
        line = self.rfile.readline(_MAX_LINE + 1)
        if not line:
            return False
        if line in (b"\r\n", b"\n"):
            return True  # tolerated between pipelined requests (RFC 9112 section 2.2)
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
        while True:
            raw = self.rfile.readline(_MAX_LINE + 1)
            if not raw:
                return False
            if raw in (b"\r\n", b"\n"):
                break
            name, sep, value = raw.decode("latin-1").partition(":")
            if len(raw) > _MAX_LINE or len(headers) >= _MAX_HEADERS:
                self._protocol_error(431, "request headers too large")
                return False
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
            if not declared.isdigit():
                self._protocol_error(400, "Content-Length must be a non-negative integer")
                return
            length = int(declared)
            if length > server.core.scenario.max_body_bytes:
                body_length = length
                self.close_connection = True  # the body is left unread
            elif length:
                if headers.get("expect", "").lower() == "100-continue":
                    self.connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = self.rfile.read(length)
                if len(body) < length:
                    self.close_connection = True
                    return  # the client left mid-body
        reply = server.core.handle(
            method, target, headers, body, server.now(), body_length=body_length
        )
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
