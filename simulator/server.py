"""The socket driver: an HTTP/1.1 server on loopback that carries out the core's plans.

``http.server`` with the pitfalls removed: TCP_NODELAY on every accepted socket and each
response head plus body written with ONE ``sendall``, so Nagle's algorithm and delayed ACKs
cannot add 40 ms per request; a deep accept backlog and one daemon thread per connection, so
hundreds of slow connections are held; waits are ``Event.wait`` (no busy loop) and are cut
short on close, so the server stops promptly and leaks no thread.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import logging
import select
import socket
import socketserver
import struct
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Set, Tuple

from . import wire
from .core import Core, Reply
from .scenario import Scenario, ScenarioLike

if TYPE_CHECKING:
    from .adapter import SimulatorAdapter

__all__ = ["Simulator", "SimulatorServer"]

log = logging.getLogger("simulator")

_LINGER_RST = struct.pack("ii", 1, 0)
_MAX_LINE = 65536
_MAX_HEADERS = 100


class _Handler(socketserver.StreamRequestHandler):
    """One connection: parse HTTP/1.1 requests, ask the core, carry out the plans.

    A small parser of its own rather than ``BaseHTTPRequestHandler``'s: the stdlib one parses
    headers with the ``email`` package (a third of the time of a request) and answers protocol
    errors with HTML; here every malformed input gets a JSON envelope.
    """

    server: SimulatorServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.close_connection = False

    def handle(self) -> None:
        while not self.close_connection and not self.server.closing.is_set():
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
        server = self.server
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
        server = self.server
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
                if self.server.closing.wait(delay):
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
        while not self.server.closing.is_set():
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


class SimulatorServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server bound to one Core, with tracked connections and clean close."""

    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, core: Core, host: str = "127.0.0.1", port: int = 0) -> None:
        self.core = core
        self.closing = threading.Event()
        self._origin = time.monotonic()
        self._conn_lock = threading.Lock()
        self._conns: Set[socket.socket] = set()
        self._conn_threads: Set[threading.Thread] = set()
        self._serving = False
        super().__init__((host, port), _Handler)
        core.set_origin(self.now())

    def now(self) -> float:
        """Seconds on the server's monotonic clock, as the core wants them."""
        return time.monotonic() - self._origin

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self.server_address[1])

    @property
    def host(self) -> str:
        """The bound host."""
        return str(self.server_address[0])

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._serving = True
        super().serve_forever(poll_interval)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), daemon=True
        )
        with self._conn_lock:
            self._conns.add(request)
            self._conn_threads.add(thread)
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Tuple[str, int]) -> None:
        try:
            self.finish_request(request, client_address)
        except OSError:
            pass  # the peer reset or the server closed the socket: nothing to answer
        except Exception:  # pragma: no cover - a bug; keep serving other connections
            log.exception("simulator connection failed")
        finally:
            self.shutdown_request(request)
            with self._conn_lock:
                self._conns.discard(request)
                self._conn_threads.discard(threading.current_thread())

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, wake every waiting handler, close every connection, join threads."""
        self.closing.set()
        if self._serving:
            self.shutdown()
        self.server_close()
        with self._conn_lock:
            conns = list(self._conns)
            threads = list(self._conn_threads)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class Simulator:
    """A simulated CometAPI served from a background thread; a context manager.

    Args:
        scenario: a Scenario, a dict, a preset name, a JSON/TOML path, or None (``healthy``).
        seed: overrides the scenario's seed (None: the scenario's, else 0).
        host: the interface to bind; loopback unless you mean it.
        port: the port; 0 picks a free one.
        api_key: when set, the only bearer key accepted.

    ``base_url`` (ending in ``/v1``) is ready as soon as the constructor returns.
    """

    def __init__(
        self,
        scenario: ScenarioLike = None,
        seed: Optional[int] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: Optional[str] = None,
    ) -> None:
        self.core = Core(scenario, seed, api_key=api_key)
        self._server = SimulatorServer(self.core, host, port)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"simulator-{self._server.port}",
            daemon=True,
        )
        self._thread.start()
        self._closed = False

    @property
    def host(self) -> str:
        """The bound host."""
        return self._server.host

    @property
    def port(self) -> int:
        """The bound port."""
        return self._server.port

    @property
    def url(self) -> str:
        """The origin, e.g. ``http://127.0.0.1:8123`` (the catalog lives at ``/api/models``)."""
        host = self.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ending in ``/v1``."""
        return self.url + "/v1"

    @property
    def scenario(self) -> Scenario:
        """The scenario in force."""
        return self.core.scenario

    def journal(self, since: int = 0) -> List[Dict[str, Any]]:
        """The journal records (``seq > since``), oldest first."""
        return self.core.journal(since)

    def stats(self) -> Dict[str, Any]:
        """Counts by model and status, by cause and by fault."""
        return self.core.stats()

    def set_scenario(self, scenario: ScenarioLike) -> None:
        """Replace the scenario and reset (journal, buckets, scripts, seed, time origin)."""
        self.core.set_scenario(scenario, self._server.now())

    def reset(self) -> None:
        """Clear the journal, buckets and script positions, re-seed, restart time at zero."""
        self.core.reset(self._server.now())

    def adapter(self) -> SimulatorAdapter:
        """An in-process ``requests`` adapter bound to this simulator's core (no sockets)."""
        from .adapter import SimulatorAdapter

        return SimulatorAdapter(self.core, clock=lambda: self._server.now())

    def close(self) -> None:
        """Stop serving, close every connection and join every thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._server.close()
        self._thread.join(5.0)

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Simulator {self.base_url} seed={self.core.seed}>"
