"""Read-only views of an HTTP exchange that errors carry, shaped like httpx's for openai users.

``APIStatusError.response`` and ``APIError.request`` are built from what the flow already
holds; they never hold the request's headers (they carry the API key).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple

__all__ = ["ErrorRequest", "ErrorResponse", "Headers"]


class Headers(Mapping[str, str]):
    """Response headers; names are looked up case-insensitively, as httpx's are."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._items: Dict[str, Tuple[str, str]] = {
            str(k).lower(): (str(k), str(v)) for k, v in headers.items()
        }

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()][1]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class ErrorRequest:
    """The method and URL of the request an error belongs to (headers withheld: the key)."""

    __slots__ = ("method", "url")

    def __init__(self, method: str, url: str) -> None:
        self.method = method
        self.url = url

    def __repr__(self) -> str:
        return f"<Request({self.method!r}, {self.url!r})>"


class ErrorResponse:
    """The HTTP response behind an ``APIStatusError`` (``.headers``, ``.status_code``, ``.text``).

    Built once per failed attempt, so the headers are wrapped only when first read.
    """

    __slots__ = (
        "_content",
        "_decoded",
        "_headers",
        "_method",
        "_raw_headers",
        "_request",
        "_url",
        "status_code",
    )

    def __init__(
        self,
        status_code: int,
        headers: Mapping[str, str],
        content: bytes,
        decoded: Any,
        method: str,
        url: str,
    ) -> None:
        self.status_code = status_code
        self._raw_headers = headers
        self._headers: Optional[Headers] = None
        self._content = content
        self._decoded = decoded  # the parsed JSON, or the text when it is not JSON
        self._method = method
        self._url = url
        self._request: Optional[ErrorRequest] = None

    @property
    def request(self) -> ErrorRequest:
        """The request that got this response (method and URL only)."""
        if self._request is None:
            self._request = ErrorRequest(self._method, self._url)
        return self._request

    @property
    def headers(self) -> Headers:
        """The response headers, looked up case-insensitively."""
        if self._headers is None:
            self._headers = Headers(self._raw_headers)
        return self._headers

    @property
    def url(self) -> str:
        return self._url

    @property
    def content(self) -> bytes:
        """The body's bytes (re-encoded when an in-process simulator handed over JSON)."""
        if not self._content and self._decoded not in (None, ""):
            if isinstance(self._decoded, str):
                return self._decoded.encode()
            return json.dumps(self._decoded).encode()
        return self._content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The decoded JSON body; ``ValueError`` when the body is not JSON, as httpx raises."""
        if isinstance(self._decoded, str):
            raise ValueError("the response body is not JSON")
        return self._decoded

    def scrubbed(
        self, scrub: Callable[[str], str], scrub_json: Callable[[Any], Any]
    ) -> ErrorResponse:
        """``self`` with ``scrub`` applied to the body, header values and URL (a key echoed);
        ``self`` itself when there was nothing to scrub."""
        headers = {k: scrub(str(v)) for k, v in self._raw_headers.items()}
        text = self._content.decode("utf-8", "replace") if self._content else ""
        clean = scrub(text)
        content = clean.encode() if clean != text else self._content
        decoded = scrub_json(self._decoded)
        url = scrub(self._url)
        same_headers = all(headers[k] == str(v) for k, v in self._raw_headers.items())
        same = content is self._content and decoded == self._decoded and url == self._url
        if same and same_headers:
            return self
        return ErrorResponse(self.status_code, headers, content, decoded, self._method, url)

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"
