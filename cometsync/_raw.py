"""``with_raw_response``: the HTTP response behind a call, as openai-python's legacy response.

The call runs exactly as ``create`` does (same flow, retries, fallback, guards); the final
response is kept beside the parsed result, so headers such as ``x-request-id`` or the
rate-limit ones can be read.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Generic, Optional, Sequence, Tuple, TypeVar

from ._attempt import Attempt
from ._flow import CallSpec
from ._http_info import Headers
from ._policy import ResponseLike
from ._transport import HTTPRequest

__all__ = ["Headers", "RawResponse", "raw_spec"]

R = TypeVar("R")
T = TypeVar("T")


class RawResponse(Generic[R]):
    """What ``with_raw_response.<method>(...)`` returns: the last HTTP response of the call.

    Attributes:
        headers: the response headers (case-insensitive).
        status_code: its HTTP status.
        http_request: the request that got it (``.method``, ``.url``; headers withheld, they
            hold the key).
        attempts: the call's history, retries and fallbacks included.
        retries_taken: attempts before the one that answered.
    """

    def __init__(
        self,
        response: ResponseLike,
        request: HTTPRequest,
        parsed: R,
        attempts: Tuple[Attempt, ...] = (),
    ) -> None:
        self.http_response = response
        self.http_request = request
        self.headers = Headers(response.headers)
        self.status_code = response.status_code
        self.attempts = attempts
        self._parsed = parsed

    @property
    def retries_taken(self) -> int:
        return max(0, len(self.attempts) - 1)

    @property
    def request_id(self) -> Optional[str]:
        return self.headers.get("x-request-id")

    @property
    def url(self) -> str:
        return self.http_request.url

    @property
    def method(self) -> str:
        return self.http_request.method

    @property
    def content(self) -> bytes:
        """The body's bytes (re-encoded when an in-process simulator handed over JSON)."""
        content = self.http_response.content
        if not content:
            payload = self.json()
            if payload is not None:
                return json.dumps(payload).encode()
        return content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    @property
    def elapsed(self) -> datetime.timedelta:
        """Time from sending the answering attempt to its response."""
        latency = self.attempts[-1].latency if self.attempts else 0.0
        return datetime.timedelta(seconds=latency)

    def json(self) -> Any:
        """The decoded body."""
        try:
            return self.http_response.json()
        except ValueError:
            return None

    def parse(self) -> R:
        """The result ``create`` would have returned.

        The body was parsed during the call (a malformed body is retried as in ``create``),
        so this never fails.
        """
        return self._parsed

    def __repr__(self) -> str:
        return (
            f"<RawResponse [{self.status_code}] {self.http_request.method} "
            f"{self.http_request.url} attempts={len(self.attempts)}>"
        )


def raw_spec(spec: CallSpec[T], url: str) -> CallSpec[RawResponse[T]]:
    """``spec`` whose result also keeps the answering response: same request, same parsing.

    Parsing still happens inside the flow, so a malformed body is retried exactly as for
    the plain call; only the result's wrapping differs.
    """

    def parse(response: ResponseLike, model: Optional[str]) -> RawResponse[T]:
        request = HTTPRequest(spec.method, url, {}, None, spec.stream)
        return RawResponse(response, request, spec.parse(response, model))

    def attach(raw: RawResponse[T], attempts: Sequence[Attempt]) -> RawResponse[T]:
        raw._parsed = spec.attach(raw._parsed, attempts)
        raw.attempts = tuple(attempts)
        return raw

    return CallSpec(
        method=spec.method,
        path=spec.path,
        route=spec.route,
        parse=parse,
        body=spec.body,
        attach=attach,
        stream=spec.stream,
    )
