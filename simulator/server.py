"""The socket driver: an HTTP/1.1 server on loopback that carries out the core's plans.

``http.server`` with the pitfalls removed: a deep accept backlog and one daemon thread per
connection, so hundreds of slow connections are held; every connection is tracked, so close
wakes and joins them and the server stops promptly and leaks no thread. Past
``max_connections`` open connections, a new one is answered ``503`` (``connection: close``)
at once, without a thread. Each connection is a
:class:`simulator.connection.ConnectionHandler` (TCP_NODELAY, one ``sendall`` per response).
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Set, Tuple

from . import wire
from .connection import DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT, ConnectionHandler
from .core import Core
from .scenario import Scenario, ScenarioLike

if TYPE_CHECKING:
    from .adapter import SimulatorAdapter

__all__ = ["DEFAULT_MAX_CONNECTIONS", "Simulator", "SimulatorServer"]

log = logging.getLogger("simulator")

#: Connections served at once; one more is refused with a 503.
DEFAULT_MAX_CONNECTIONS = 1000


class SimulatorServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server bound to one Core, with tracked connections and clean close.

    Args:
        core: the fault model.
        host: the interface to bind.
        port: the port; 0 picks a free one.
        max_connections: connections served at once; past it, a new one gets a 503 and close.
        header_timeout: seconds from a request's first byte to the end of its headers (408).
        idle_timeout: seconds a kept-alive connection may wait for its next request.
    """

    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(
        self,
        core: Core,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        if max_connections < 1 or not header_timeout > 0 or not idle_timeout > 0:
            raise ValueError("max_connections must be >= 1 and the timeouts > 0 seconds")
        self.core = core
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.refused = 0
        self.closing = threading.Event()
        self._origin = time.monotonic()
        self._conn_lock = threading.Lock()
        self._conns: Set[socket.socket] = set()
        self._conn_threads: Set[threading.Thread] = set()
        self._serving = False
        super().__init__((host, port), ConnectionHandler)
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
            full = len(self._conns) >= self.max_connections
            if full:
                self.refused += 1
            else:
                self._conns.add(request)
                self._conn_threads.add(thread)
        if full:
            self._refuse(request)
            return
        thread.start()

    def _refuse(self, request: socket.socket) -> None:
        """Answer 503 and close, from the accepting thread: no thread for a refused client."""
        message = f"the simulator serves {self.max_connections} connections at most; retry later"
        body = wire.dumps(
            {
                "error": {
                    "message": message,
                    "type": wire.ERROR_TYPE,
                    "param": None,
                    "code": "too_many_connections",
                }
            }
        )
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nserver: cometsync-simulator\r\n"
            "content-type: application/json\r\nretry-after: 1\r\nconnection: close\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        )
        try:
            request.settimeout(0.5)
            request.sendall(head.encode("latin-1") + body)
        except OSError:
            pass  # the client is gone already
        self.shutdown_request(request)

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
        max_connections: connections served at once; past it, a new one gets a 503 and close.
        header_timeout: seconds from a request's first byte to the end of its headers (408).
        idle_timeout: seconds a kept-alive connection may wait for its next request.

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
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self.core = Core(scenario, seed, api_key=api_key)
        self._server = SimulatorServer(
            self.core,
            host,
            port,
            max_connections=max_connections,
            header_timeout=header_timeout,
            idle_timeout=idle_timeout,
        )
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
