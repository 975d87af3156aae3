"""Transports: the protocol, the response the flow reads, and the ``requests.Session`` transport.

With ``_transport_urllib3`` (the default transport), this is the only place that knows
requests' and urllib3's exceptions; it translates them into ``APIConnectionError``/
``APITimeoutError`` (with ``raise ... from``) so the flow sees one vocabulary whatever the
transport.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Mapping, Optional, Protocol

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.util.retry import Retry

from ._decode import loads
from ._errors import APIConnectionError, APITimeoutError
from ._policy import ResponseLike
from ._types import Timeout

__all__ = [
    "HTTPRequest",
    "RequestsTransport",
    "Response",
    "Transport",
    "close_pools",
    "make_session",
]

_READ_SIZE = 65536


@dataclass(frozen=True)
class HTTPRequest:
    """A fully built request: absolute URL, headers (with auth), encoded body."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: Optional[bytes] = None
    stream: bool = False

    def __repr__(self) -> str:  # never show headers: they hold the API key
        return f"HTTPRequest({self.method} {self.url}, stream={self.stream})"


class Response(ResponseLike):
    """A response as the flow sees it; streams keep the connection until ``close()``."""

    def __init__(
        self,
        status_code: int,
        headers: Mapping[str, str],
        content: bytes = b"",
        url: str = "",
        *,
        raw: Optional[requests.Response] = None,
        payload: Any = None,
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.url = url
        self._raw = raw
        self._payload = payload

    def json(self) -> Any:
        if self._payload is not None:
            return self._payload
        self._payload = loads(self.content)
        return self._payload

    def iter_lines(self) -> Iterator[bytes]:
        """The body line by line (streams); transport errors become APIConnectionError."""
        if self._raw is None:
            yield from self.content.splitlines()
            return
        yield from _translated(self._raw.iter_lines())

    def iter_bytes(self) -> Iterator[bytes]:
        """The body in pieces as they arrive (streams); transport errors become APIConnectionError.

        Pieces are yielded as the socket delivers them (one per HTTP chunk), not in fixed
        sizes, so a server-sent event is seen as soon as it is sent.
        """
        if self._raw is None:
            if self.content:
                yield self.content
            return
        # A size, not None: with None an unchunked body (or an in-process adapter's) is read
        # to its end before anything is yielded; with a size each HTTP chunk still comes as
        # soon as it arrives.
        yield from _translated(self._raw.iter_content(chunk_size=_READ_SIZE))

    @contextlib.contextmanager
    def short_reads(self, seconds: float) -> Iterator[None]:
        """Within the block, a socket read of this response waits at most ``seconds``.

        For reading what a server sends after ``[DONE]`` (normally the body's end, already on
        the wire) without waiting on a server that holds the body open. Does nothing when the
        socket cannot be reached (an adapter of another kind, or urllib3 < 2).
        """
        sock = self._socket()
        if sock is None:
            yield
            return
        before = sock.gettimeout()
        try:
            sock.settimeout(seconds)
            yield
        finally:
            with contextlib.suppress(OSError):  # already closed: nothing to restore
                sock.settimeout(before)

    def set_read_timeout(self, seconds: float) -> None:
        """From now on a socket read of this response waits at most ``seconds``.

        A stream reads up to its first content chunk within the first-token budget, then
        with the read timeout. Does nothing when the socket cannot be reached.
        """
        sock = self._socket()
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed: the next read says so
                sock.settimeout(max(seconds, 1e-3))

    def _socket(self) -> Any:
        """The socket a stream reads from, or None when it cannot be reached."""
        raw = getattr(self._raw, "raw", None)
        return getattr(getattr(raw, "connection", None), "sock", None)

    def close(self) -> None:
        """Give the connection back to the pool (idempotent)."""
        if self._raw is not None:
            self._raw.close()

    def __repr__(self) -> str:
        return f"Response({self.status_code}, {self.url})"


class Transport(Protocol):
    """Sends one request; raises only ``APIConnectionError`` (or its subclass) on failure."""

    def send(self, request: HTTPRequest, timeout: Timeout) -> Response: ...

    def close(self) -> None: ...


def make_session(pool_maxsize: int, base_url: Optional[str] = None) -> requests.Session:
    """A Session whose pool fits the thread pool and whose urllib3 retries are off.

    cometsync is the one retry layer: urllib3 retrying underneath would multiply attempts
    and hide them from the attempt history.

    With ``base_url``, the environment (``HTTPS_PROXY``/``NO_PROXY``, ``REQUESTS_CA_BUNDLE``)
    is read once, now, for that URL, and ``trust_env`` is then switched off, as httpx does:
    requests would otherwise re-read it on every call (a quarter of a loopback call's cost),
    and its ``~/.netrc`` lookup could replace the Bearer header with Basic auth.
    """
    session = requests.Session()
    adapter = HTTPAdapter(
        pool_connections=4,
        pool_maxsize=pool_maxsize,
        max_retries=Retry(total=0, read=False, redirect=False, raise_on_status=False),
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if base_url is not None:
        settings = session.merge_environment_settings(base_url, {}, None, None, None)
        session.proxies = settings["proxies"]
        session.verify = settings["verify"]
        session.trust_env = False
    return session


def translate(exc: BaseException) -> APIConnectionError:
    """Map a requests/urllib3 failure to cometsync's vocabulary."""
    if isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError)):
        return APITimeoutError(f"timed out: {exc}")
    cause = exc.args[0] if exc.args else None
    if isinstance(cause, urllib3.exceptions.ReadTimeoutError):  # requests wraps body timeouts
        return APITimeoutError(f"timed out reading the body: {cause}")
    return APIConnectionError(f"connection failed: {type(exc).__name__}: {exc}")


def _translated(pieces: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from pieces
    except requests.RequestException as exc:
        raise translate(exc) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise translate(exc) from exc


class RequestsTransport:
    """A ``requests.Session`` shared by every thread of a client (the ``session=`` path).

    Args:
        session: a Session to use (proxies, certificates, custom adapters); the caller keeps
            ownership and closes it. Without one, a Session sized by ``pool_maxsize`` is made
            and closed by ``close()``.
        pool_maxsize: connections kept per host by the Session this transport makes.
        base_url: where it will send; lets the Session it makes read the environment once
            (see ``make_session``). A caller's Session is used exactly as given.
    """

    def __init__(
        self,
        session: Optional[requests.Session] = None,
        pool_maxsize: int = 8,
        base_url: Optional[str] = None,
    ) -> None:
        self._owns_session = session is None
        self.session = session if session is not None else make_session(pool_maxsize, base_url)
        # requests' defaults (Accept-Encoding, Connection...) that Session.request would add.
        self._base_headers: Dict[str, str] = {
            k: v if isinstance(v, str) else v.decode("latin-1")
            for k, v in self.session.headers.items()
        }
        self._urls: Dict[str, str] = {}

    def send(self, request: HTTPRequest, timeout: Timeout) -> Response:
        try:
            if self._owns_session:
                raw = self._send_direct(request, timeout)
            else:
                raw = self.session.request(
                    request.method,
                    request.url,
                    headers=dict(request.headers),
                    data=request.body,
                    timeout=(timeout.connect, timeout.read),
                    stream=request.stream,
                    # A redirect means a wrong base_url; following it would turn POST into GET.
                    allow_redirects=False,
                )
            if request.stream and 200 <= raw.status_code < 300:
                return Response(raw.status_code, raw.headers, b"", raw.url, raw=raw)
            content = raw.content
            raw.close()
        except requests.RequestException as exc:
            raise translate(exc) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise translate(exc) from exc
        return Response(raw.status_code, raw.headers, content, raw.url)

    def _send_direct(self, request: HTTPRequest, timeout: Timeout) -> requests.Response:
        """Send through the Session's mounted adapter, skipping ``Session.request``.

        Only for the Session this transport made: it has no cookies, auth, hooks or per-call
        environment to merge (see ``make_session``), and that merging is about a third of a
        loopback call. The adapter keeps the pool, proxies and TLS settings; redirects are
        never followed, as on the other path.
        """
        session = self.session
        prepared = requests.PreparedRequest()
        prepared.method = request.method
        prepared.url = self._prepared_url(request.url)
        prepared.headers = CaseInsensitiveDict(self._base_headers)
        prepared.headers.update(request.headers)
        prepared.body = request.body
        if request.body is not None:
            prepared.headers["Content-Length"] = str(len(request.body))
        adapter = session.get_adapter(prepared.url)
        return adapter.send(
            prepared,
            stream=request.stream,
            timeout=(timeout.connect, timeout.read),
            verify=True if session.verify is None else session.verify,
            cert=session.cert,
            proxies=session.proxies,
        )

    def _prepared_url(self, url: str) -> str:
        cached = self._urls.get(url)
        if cached is None:  # the few distinct URLs of a client are normalised once (IDNA, quoting)
            probe = requests.PreparedRequest()
            probe.prepare_url(url, None)
            cached = self._urls[url] = str(probe.url)
        return cached

    def close(self) -> None:
        if self._owns_session:
            _close_session_pools(self.session)
            self.session.close()

    def __repr__(self) -> str:
        return f"RequestsTransport(owns_session={self._owns_session})"


def close_pools(manager: Any) -> None:
    """Close the idle connections of every pool of a urllib3 ``PoolManager``, now.

    ``PoolManager.clear()`` empties the manager, but recent urllib3 (2.8 here) no longer
    closes the pools it drops: their idle sockets stay open until the garbage collector
    reaches them (the soak counted 32 after ``Client.close()``). Connections in use are not
    in the pools: a stream still being read keeps its own and closes it when done.
    """
    pools = getattr(manager, "pools", None)
    if pools is None:
        return
    for key in list(pools.keys()):
        pool = pools.get(key)
        if pool is not None:
            pool.close()


def _close_session_pools(session: requests.Session) -> None:
    for adapter in list(session.adapters.values()):
        close_pools(getattr(adapter, "poolmanager", None))
        for proxy in list(getattr(adapter, "proxy_manager", {}).values()):
            close_pools(proxy)
