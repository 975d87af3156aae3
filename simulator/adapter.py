"""The in-process driver: a ``requests`` transport adapter that answers from the core, no sockets.

Mount it on a session and every request to that prefix is answered by the same fault model as
the socket server, with the same delays (slept for real unless you inject ``sleep``) and the
same failures, raised as the exceptions ``requests`` raises for them over a network::

    session = requests.Session()
    session.mount("http://sim.local/", SimulatorAdapter("flaky", seed=7))
    session.post("http://sim.local/v1/chat/completions", json={...}, headers={...})
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

from . import wire
from .core import Core, Reply
from .scenario import ScenarioLike

__all__ = ["SimulatorAdapter"]

_TimeoutArg = Union[None, float, Tuple[Optional[float], Optional[float]]]


def _read_timeout(timeout: Any) -> Optional[float]:
    if isinstance(timeout, tuple):
        return None if timeout[1] is None else float(timeout[1])
    return None if timeout is None else float(timeout)


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return b"".join(p.encode("utf-8") if isinstance(p, str) else bytes(p) for p in body)


class _Raw:
    """The response body as ``requests`` reads it: ``read(n)`` until b"", then ``close()``.

    Stream events are released one by one after their delay; the end kind decides what the
    last read does (b"", or the exception a broken connection raises through requests).
    """

    def __init__(
        self,
        adapter: SimulatorAdapter,
        reply: Reply,
        request: requests.PreparedRequest,
        read_timeout: Optional[float],
    ) -> None:
        self._adapter = adapter
        self._reply = reply
        self._request = request
        self._timeout = read_timeout
        self._pieces: List[Tuple[float, bytes]] = (
            reply.events if reply.is_stream else [(0.0, reply.body)]
        )
        self._index = 0
        self._buffer = b""
        self.closed = False

    def read(self, size: Optional[int] = -1, **_: Any) -> bytes:
        if not self._buffer:
            self._buffer = self._next()
        if size is None or size < 0:
            data, self._buffer = self._buffer, b""
            while True:
                more = self._next()
                if not more:
                    return data
                data += more
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _next(self) -> bytes:
        if self.closed:
            return b""
        if self._index < len(self._pieces):
            delay, data = self._pieces[self._index]
            self._index += 1
            if delay > 0:
                if self._timeout is not None and delay > self._timeout:
                    self._adapter._sleep(self._timeout)
                    self._end()
                    raise requests.exceptions.ConnectionError(
                        "Read timed out (simulated)", request=self._request
                    )
                self._adapter._sleep(delay)
            return data
        end = self._reply.end
        self._end()
        if end == "truncated":
            raise requests.exceptions.ChunkedEncodingError(
                "Connection broken: the simulator closed before the end of the body",
                request=self._request,
            )
        if end == "reset":
            raise requests.exceptions.ConnectionError(
                ConnectionResetError(104, "Connection reset by peer (simulated)"),
                request=self._request,
            )
        if end == "stall":
            hold = self._reply.hold
            self._adapter._sleep(hold if self._timeout is None else min(hold, self._timeout))
            raise requests.exceptions.ConnectionError(
                "Read timed out (simulated stall)", request=self._request
            )
        return b""

    def _end(self) -> None:
        if not self.closed:
            self.closed = True
            self._adapter.core.finish(self._reply, self._adapter._now())

    def close(self) -> None:
        self._end()

    def release_conn(self) -> None:
        self._end()


class SimulatorAdapter(BaseAdapter):
    """A ``requests`` adapter answered by a simulator core in this process.

    Args:
        scenario: a Core to share (e.g. ``Simulator.core``), or what ``Core`` accepts: a
            Scenario, dict, preset name, file path, or None (``healthy``).
        seed: overrides the scenario's seed (ignored when a Core is given).
        api_key: when set, the only bearer key accepted (ignored when a Core is given).
        clock: seconds on the core's time base; default: monotonic since construction.
        sleep: how delays are waited; default ``time.sleep`` (inject a fake one to skip them).
    """

    def __init__(
        self,
        scenario: Union[Core, ScenarioLike] = None,
        seed: Optional[int] = None,
        *,
        api_key: Optional[str] = None,
        clock: Optional[Callable[[], float]] = None,
        sleep: Optional[Callable[[float], None]] = None,
    ) -> None:
        super().__init__()
        self.core = (
            scenario if isinstance(scenario, Core) else Core(scenario, seed, api_key=api_key)
        )
        origin = time.monotonic()

        def since_origin() -> float:
            return time.monotonic() - origin

        if clock is None and not isinstance(scenario, Core):
            self.core.set_origin(0.0)
        self._now: Callable[[], float] = clock if clock is not None else since_origin
        self._sleep: Callable[[float], None] = sleep if sleep is not None else time.sleep

    def journal(self, since: int = 0) -> List[Dict[str, Any]]:
        """The core's journal records (``seq > since``)."""
        return self.core.journal(since)

    def stats(self) -> Dict[str, Any]:
        """The core's counts by model and status."""
        return self.core.stats()

    def reset(self) -> None:
        """Reset the core (journal, buckets, scripts, seed, time origin)."""
        self.core.reset(self._now())

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: _TimeoutArg = None,
        verify: Union[bool, str] = True,
        cert: Any = None,
        proxies: Optional[Mapping[str, str]] = None,
    ) -> requests.Response:
        """Answer one request from the core, sleeping its delays, raising its failures."""
        split = urlsplit(request.url or "")
        path = split.path + ("?" + split.query if split.query else "")
        headers = {k.lower(): v for k, v in request.headers.items()}
        reply = self.core.handle(
            request.method or "GET", path, headers, _body_bytes(request.body), self._now()
        )
        read_timeout = _read_timeout(timeout)
        try:
            if reply.latency > 0:
                if read_timeout is not None and reply.latency > read_timeout:
                    self._sleep(read_timeout)
                    raise requests.exceptions.ReadTimeout(
                        f"Read timed out (read timeout={read_timeout}, simulated)",
                        request=request,
                    )
                self._sleep(reply.latency)
            if reply.status is None:
                if reply.end == "reset":
                    raise requests.exceptions.ConnectionError(
                        ConnectionResetError(104, "Connection reset by peer (simulated)"),
                        request=request,
                    )
                hold = reply.hold
                if read_timeout is not None and read_timeout < hold:
                    self._sleep(read_timeout)
                    raise requests.exceptions.ReadTimeout(
                        f"Read timed out (read timeout={read_timeout}, simulated hang)",
                        request=request,
                    )
                self._sleep(hold)
                raise requests.exceptions.ConnectionError(
                    "Remote end closed connection without response (simulated hang)",
                    request=request,
                )
        except BaseException:
            self.core.finish(reply, self._now(), delivered=False)
            raise
        response = requests.Response()
        response.status_code = reply.status
        response.reason = wire.reason(reply.status)
        response.headers = CaseInsensitiveDict(reply.headers)
        if not reply.is_stream and "content-length" not in response.headers:
            response.headers["content-length"] = str(len(reply.body))
        response.encoding = get_encoding_from_headers(response.headers)
        response.url = request.url or ""
        response.request = request
        response.connection = self  # type: ignore[assignment]  # what requests does too
        response.raw = _Raw(self, reply, request, read_timeout)
        if not reply.is_stream and reply.end == "complete":
            # The body is all there: hand it over now and free the in-flight slot.
            response._content = reply.body
            response._content_consumed = True  # type: ignore[attr-defined]
            self.core.finish(reply, self._now())
        return response

    def close(self) -> None:
        """Nothing to release: there is no connection pool."""
