"""The default transport: urllib3 directly, one pool per host sized to the client's threads.

``requests`` cost about a quarter of a loopback call on top of the urllib3 pool it stands on
(building its response, cookies, proxy selection, header dicts); this transport keeps what
the client needs of it, read once when the transport is made: the environment's proxy for
the base URL and its CA bundle. Like ``_transport``, it is the only place where urllib3's
exceptions are translated (with ``raise ... from``), so the flow sees one vocabulary.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
from typing import Any, Dict, Iterator, Optional, Tuple, Union
from urllib.parse import unquote, urlsplit

import urllib3
import urllib3.connection
from requests.utils import (
    DEFAULT_ACCEPT_ENCODING,
    DEFAULT_CA_BUNDLE_PATH,
    get_environ_proxies,
    select_proxy,
)
from urllib3.exceptions import EmptyPoolError

from ._errors import APIConnectionError, APITimeoutError, ConfigError, PoolTimeoutError
from ._transport import HTTPRequest, Response, close_pools
from ._types import Timeout

__all__ = ["Urllib3Response", "Urllib3Transport", "environment_settings"]

_READ_SIZE = 65536
# What urllib3 and the socket layer raise for a failed exchange; urllib3 wraps most of them,
# but a bare socket error must not escape as anything but APIConnectionError either.
_FAILURES = (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException)
# Each distinct URL's pool and path are looked up once; a client sends to a handful.
_MAX_TARGETS = 64


def environment_settings(base_url: str) -> Tuple[Optional[str], Union[str, bool]]:
    """The proxy for ``base_url`` and the CA bundle, as requests reads them from the environment.

    Proxies: ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and ``NO_PROXY`` through requests'
    own helpers, so a ``session=`` and the default transport agree. CA bundle:
    ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` (requests' order), then OpenSSL's
    ``SSL_CERT_FILE``; without any, certifi's bundle, as requests uses.
    """
    proxy = select_proxy(base_url, get_environ_proxies(base_url))
    ca: Union[str, bool] = (
        os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or os.environ.get("SSL_CERT_FILE")
        or True
    )
    return proxy or None, ca


def translate(exc: BaseException) -> APIConnectionError:
    """Map a urllib3 or socket failure to cometsync's vocabulary (as ``_transport.translate``)."""
    if isinstance(exc, EmptyPoolError):
        return PoolTimeoutError(
            "no connection came free in time: every pooled connection is held (by open "
            "streams?); close streams you are done with, or raise max_workers"
        )
    # NewConnectionError subclasses ConnectTimeoutError, yet a refusal is no timeout (requests
    # draws the same line).
    timed_out = isinstance(exc, (urllib3.exceptions.TimeoutError, socket.timeout))
    if timed_out and not isinstance(exc, urllib3.exceptions.NewConnectionError):
        return APITimeoutError(f"timed out: {exc}")
    return APIConnectionError(f"connection failed: {type(exc).__name__}: {exc}")


def _translated(pieces: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from pieces
    except _FAILURES as exc:
        raise translate(exc) from exc


class Urllib3Response(Response):
    """A 2xx stream on a pooled connection, given back when closed or read to its end."""

    def __init__(self, raw: Any, url: str) -> None:  # raw: a urllib3.HTTPResponse
        super().__init__(raw.status, raw.headers, b"", url)
        self._stream = raw

    def iter_bytes(self) -> Iterator[bytes]:
        """The body in pieces as they arrive (one per HTTP chunk); failures: APIConnectionError."""
        # A size, not None: with None an unchunked body is read to its end before anything is
        # yielded; with a size each HTTP chunk still comes as soon as it arrives.
        yield from _translated(self._stream.stream(_READ_SIZE, decode_content=True))

    def iter_lines(self) -> Iterator[bytes]:
        """The body line by line, split as requests' ``iter_lines`` splits it."""
        pending: Optional[bytes] = None
        for piece in self.iter_bytes():
            if pending is not None:
                piece = pending + piece
            lines = piece.splitlines()
            pending = lines.pop() if lines and lines[-1][-1:] == piece[-1:] else None
            yield from lines
        if pending is not None:
            yield pending

    def _socket(self) -> Any:
        return getattr(getattr(self._stream, "connection", None), "sock", None)

    def close(self) -> None:
        """Give the connection back to the pool (idempotent, safe from another thread)."""
        raw = self._stream
        if not raw.isclosed():  # an unread rest: this connection cannot carry another request
            with contextlib.suppress(*_FAILURES):
                raw.close()
        raw.release_conn()

    def __del__(self) -> None:
        # The pool blocks rather than overflow, so a dropped stream must not keep its slot.
        with contextlib.suppress(Exception):
            self.close()


class Urllib3Transport:
    """The default transport: a urllib3 pool per host, shared by every thread of a client.

    Each pool keeps at most ``pool_maxsize`` connections and a thread wanting one more waits
    (as long as for a limiter slot: the longer of the attempt's connect and read timeouts,
    already cut to the deadline) instead of opening an extra connection that would be thrown
    away ("Connection pool is full"); then it gets ``PoolTimeoutError``. urllib3's retries
    and redirects are off: cometsync is the one retry layer, and a redirect means a wrong
    base_url.

    Args:
        pool_maxsize: connections kept per host; the client passes its ``max_workers``.
        base_url: where it will send; the environment's proxy for it and the CA bundle are
            read now, once (see ``environment_settings``). ``~/.netrc`` is never read: the
            Bearer header is sent as built.

    Raises:
        ConfigError: the CA bundle named by the environment does not exist, or the
            proxy is SOCKS and PySocks is not installed.
    """

    def __init__(self, pool_maxsize: int = 8, base_url: Optional[str] = None) -> None:
        proxy, ca = environment_settings(base_url) if base_url is not None else (None, True)
        self.proxy = proxy
        self.ca = ca
        self._base_headers = {"Accept-Encoding": DEFAULT_ACCEPT_ENCODING}
        pool_kw: Dict[str, Any] = {"maxsize": pool_maxsize, "block": True}
        if base_url is None or base_url.startswith("https:"):
            pool_kw.update(_ca_settings(ca))
        self.manager = _manager(proxy, pool_kw)
        self._targets: Dict[str, Tuple[Any, str]] = {}
        self._timeouts: Dict[Tuple[float, float], urllib3.Timeout] = {}

    def send(self, request: HTTPRequest, timeout: Timeout) -> Response:
        """Send one request; a 2xx stream comes back open, anything else fully read."""
        headers = {**self._base_headers, **request.headers}
        try:
            raw = self._urlopen(request, headers, timeout)
            if request.stream:
                if 200 <= raw.status < 300:
                    return Urllib3Response(raw, request.url)
                try:
                    content = raw.read(decode_content=True)
                finally:
                    raw.release_conn()
            else:
                content = raw.data
        except _FAILURES as exc:
            raise translate(exc) from exc
        return Response(raw.status, raw.headers, content, request.url)

    def _urlopen(
        self, request: HTTPRequest, headers: Dict[str, str], timeout: Timeout
    ) -> Any:  # urllib3.HTTPResponse; typed Any as urllib3 1.26 and 2.x annotate it apart
        options: Dict[str, Any] = {
            "body": request.body,
            "headers": headers,
            "retries": False,
            "redirect": False,
            "timeout": self._timeout(timeout),
            # As long as the client waits for a limiter slot: with more threads than
            # connections a thread waits for one to come free, it does not fail at once.
            "pool_timeout": max(timeout.connect, timeout.read),
            "preload_content": not request.stream,
            "decode_content": True,
            "enforce_content_length": True,
        }
        if self.proxy is not None:  # the manager sets the proxy's headers and request form
            return self.manager.urlopen(request.method, request.url, **options)
        pool, path = self._target(request.url)
        return pool.urlopen(request.method, path, assert_same_host=False, **options)

    def _target(self, url: str) -> Tuple[Any, str]:
        """The pool for ``url``'s host and the path to ask it for (looked up once per URL)."""
        found = self._targets.get(url)
        if found is not None and found[0].pool is not None:  # a pool the manager closed is dropped
            return found
        if len(self._targets) >= _MAX_TARGETS:
            self._targets.clear()
        parts = urllib3.util.parse_url(url)
        pool = self.manager.connection_from_host(parts.host, parts.port, parts.scheme)
        found = self._targets[url] = (pool, parts.request_uri)
        return found

    def _timeout(self, timeout: Timeout) -> urllib3.Timeout:
        pair = (timeout.connect, timeout.read)
        made = self._timeouts.get(pair)
        if made is None:
            if len(self._timeouts) >= _MAX_TARGETS:  # deadline-capped timeouts are all distinct
                self._timeouts.clear()
            made = self._timeouts[pair] = urllib3.Timeout(connect=pair[0], read=pair[1])
        return made

    def close(self) -> None:
        """Close every pooled connection; streams still open end as connection errors."""
        self._targets.clear()
        close_pools(self.manager)  # clear() alone leaves them to the garbage collector
        self.manager.clear()

    def __repr__(self) -> str:
        proxied = " via a proxy" if self.proxy else ""
        return f"Urllib3Transport({type(self.manager).__name__}{proxied})"


class _OneWrite:
    """Sends a request's head and a small body in one write instead of two.

    http.client writes the head, then the body: two system calls and, on loopback, two wake-ups
    of the server, about a tenth of a call. The bytes on the wire are the same. (Any write made
    while connecting, such as a proxy's CONNECT, goes out first: the flag is off by then.)
    """

    _head: Optional[bytes] = None
    _joining = False

    def request(
        self, method: str, url: str, body: Any = None, headers: Any = None, **kw: Any
    ) -> None:
        self._joining = isinstance(body, bytes) and 0 < len(body) <= _READ_SIZE
        try:
            super().request(method, url, body, headers, **kw)  # type: ignore[misc]
            if self._head is not None:  # no body write came after all: send the head alone
                super().send(self._head)  # type: ignore[misc]
        finally:
            self._joining = False
            self._head = None

    def send(self, data: Any) -> None:
        if self._joining:
            if self._head is None:
                self._head = bytes(data)
                return
            data = self._head + data
            self._head = None
            self._joining = False
        super().send(data)  # type: ignore[misc]


class _Connection(_OneWrite, urllib3.connection.HTTPConnection):
    """An HTTP connection that writes a request in one piece."""


class _TLSConnection(_OneWrite, urllib3.connection.HTTPSConnection):
    """An HTTPS connection that writes a request in one piece."""


class _Pool(urllib3.HTTPConnectionPool):
    """A pool of one-write HTTP connections."""

    ConnectionCls = _Connection


class _TLSPool(urllib3.HTTPSConnectionPool):
    """A pool of one-write HTTPS connections."""

    ConnectionCls = _TLSConnection


def _ca_settings(ca: Union[str, bool]) -> Dict[str, Any]:
    if ca is True:
        return {"cert_reqs": "CERT_REQUIRED", "ca_certs": DEFAULT_CA_BUNDLE_PATH}
    assert isinstance(ca, str)
    if os.path.isdir(ca):
        return {"cert_reqs": "CERT_REQUIRED", "ca_cert_dir": ca}
    if not os.path.exists(ca):
        raise ConfigError(f"the CA bundle named by the environment does not exist: {ca}")
    return {"cert_reqs": "CERT_REQUIRED", "ca_certs": ca}


def _manager(proxy: Optional[str], pool_kw: Dict[str, Any]) -> urllib3.PoolManager:
    """A PoolManager, or a ProxyManager carrying the proxy URL's credentials as requests does."""
    if proxy is None:
        return _one_write(urllib3.PoolManager(num_pools=16, **pool_kw))
    if proxy.lower().startswith("socks"):
        try:
            from urllib3.contrib.socks import SOCKSProxyManager
        except ImportError as exc:
            raise ConfigError(
                "the environment's proxy is SOCKS; install PySocks (pip install "
                "'requests[socks]') or unset ALL_PROXY/HTTPS_PROXY"
            ) from exc
        return SOCKSProxyManager(proxy, num_pools=16, **pool_kw)  # type: ignore[no-any-return]
    parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
    proxy_headers: Dict[str, str] = {}
    if parts.username:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        proxy_headers = urllib3.util.make_headers(proxy_basic_auth=credentials)
    manager = urllib3.ProxyManager(proxy, num_pools=16, proxy_headers=proxy_headers, **pool_kw)
    return _one_write(manager)


def _one_write(manager: urllib3.PoolManager) -> urllib3.PoolManager:
    manager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}
    return manager
