"""The shared base of the tests' small HTTP servers: 127.0.0.1, a background thread, counts.

A server builds its handler on ``CountingHandler`` (HTTP/1.1, quiet, counting connections)
and hands it to ``LoopbackServer.__init__``; ``stopping`` is set on exit so that a handler
that is holding a reply ("hang", "stall") lets go at once.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Type, TypeVar

S = TypeVar("S", bound="LoopbackServer")


class _QuietServer(ThreadingHTTPServer):
    """A client that resets its connection (as the tests' clients do on purpose) is no error."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class LoopbackServer:
    """Serves ``handler`` on a free loopback port while used as a context manager.

    Attributes:
        connections: TCP connections accepted so far.
        open, peak: connections open now, and the most open at once.
    """

    def __init__(self, handler: Type[CountingHandler]) -> None:
        self.connections = 0
        self.open = 0
        self.peak = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        handler.owner = self
        self.httpd = _QuietServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False  # a held reply must not hold up teardown
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self: S) -> S:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=2)


class CountingHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no access log, and the owner's connection counts kept."""

    protocol_version = "HTTP/1.1"
    owner: ClassVar[LoopbackServer]

    def setup(self) -> None:
        super().setup()
        with self.owner.lock:
            self.owner.connections += 1
            self.owner.open += 1
            self.owner.peak = max(self.owner.peak, self.owner.open)

    def finish(self) -> None:
        with contextlib.suppress(OSError):  # the client may have gone (abandoned streams)
            super().finish()
        with self.owner.lock:
            self.owner.open -= 1

    def log_message(self, *args: Any) -> None:
        pass
