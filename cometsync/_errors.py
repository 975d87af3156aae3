"""The exception tree; every error a call raises carries the full attempt history.

::

    CometError                         base of everything cometsync raises on purpose
    ├── ConfigError (ValueError)       bad client settings: missing key, bad base_url, bad policy
    ├── RequestValidationError (ValueError)
    │   │                              a request that cannot be valid, caught before any traffic
    │   └── RequestTypeError (TypeError)  ... because an argument has the wrong type
    └── APIError                       the gateway could not give a usable answer
        ├── APIConnectionError         no response: refused, reset, DNS, broken body
        │   └── APITimeoutError        connect/read timeout, or the call's deadline ran out
        │       └── PoolTimeoutError   no in-flight slot in time (the limiter); nothing was sent
        ├── APIResponseValidationError a 2xx whose body is not the JSON it should be
        ├── APIStreamError             a stream that failed after its first chunk was delivered
        ├── ModelCooldownError         every model of the chain is cooling down; nothing was sent
        └── APIStatusError             an HTTP error status (.status_code .body .code .response)
            ├── BadRequestError            400
            ├── AuthenticationError        401
            ├── PermissionDeniedError      403
            ├── NotFoundError              404
            ├── ConflictError              409
            ├── UnprocessableEntityError   422
            ├── RateLimitError             429 (.retry_after)
            └── InternalServerError        >= 500

Names follow openai-python so that ``except RateLimitError`` reads the same in both.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Optional, Tuple, Type

from ._attempt import Attempt
from ._http_info import ErrorRequest, ErrorResponse

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APIStreamError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "CometError",
    "ConfigError",
    "ConflictError",
    "InternalServerError",
    "ModelCooldownError",
    "NotFoundError",
    "PermissionDeniedError",
    "PoolTimeoutError",
    "RateLimitError",
    "RequestTypeError",
    "RequestValidationError",
    "UnprocessableEntityError",
    "status_error",
]


class CometError(Exception):
    """Base class of every error cometsync raises deliberately."""


class ClientClosedError(CometError, RuntimeError):
    """The client was closed: it sends nothing more; also a ``RuntimeError``."""


class ConfigError(CometError, ValueError):
    """The client or a policy was configured with a value that cannot work."""


class RequestValidationError(CometError, ValueError):
    """A request that cannot be valid; raised before anything is sent."""


class RequestTypeError(RequestValidationError, TypeError):
    """A request argument of the wrong type (``messages="hi"``); also a ``TypeError``."""


class APIError(CometError):
    """The gateway did not give a usable answer.

    Attributes:
        attempts: every attempt of the call, across retries and models, oldest first.
        model: the model of the attempt that produced this error, if any.
        request: the method and URL of that attempt's request (``.method``, ``.url``; never
            its headers), or None when nothing was sent (a slot or deadline ran out first).
    """

    request: Optional[ErrorRequest] = None

    def __init__(self, message: str, *, model: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.model = model
        self.attempts: Tuple[Attempt, ...] = ()


class APIConnectionError(APIError):
    """No HTTP response was received (refused, reset, broken body, ...)."""


class APITimeoutError(APIConnectionError):
    """The attempt timed out, or the call's deadline left no time for it."""


class PoolTimeoutError(APITimeoutError):
    """No in-flight slot came free in time (the adaptive limiter); nothing was sent.

    Named after httpx's ``PoolTimeout``. The gateway never saw the request, so it does not
    count against the model's health.
    """


class APIResponseValidationError(APIError):
    """A successful status whose body is not the JSON the API promises."""

    def __init__(
        self, message: str, *, model: Optional[str] = None, status_code: int = 200
    ) -> None:
        super().__init__(message, model=model)
        self.status_code = status_code


class APIStreamError(APIError):
    """A stream broke after chunks had reached the caller; ``.partial`` is the text so far."""

    def __init__(self, message: str, *, model: Optional[str] = None, partial: str = "") -> None:
        super().__init__(message, model=model)
        self.partial = partial


class ModelCooldownError(APIError):
    """Every model of the chain is cooling down after repeated failures; nothing was sent."""


class APIStatusError(APIError):
    """The gateway answered with an error status.

    As in openai-python, ``body`` is the ``error`` object of the JSON body when it has one.

    Attributes:
        status_code: the HTTP status.
        body: the JSON body's ``"error"`` value (``{"message", "type", "param", "code"}``)
            when there is one, else the whole decoded body, or the text when it is not JSON.
        code: ``body["code"]`` (``body["type"]`` when the code is missing), if any.
        type: ``body["type"]``, if any.
        param: ``body["param"]``, if any.
        request_id: from ``x-request-id`` or the message text, if any.
        response: the HTTP response (``.status_code``, case-insensitive ``.headers``,
            ``.text``, ``.json()``, ``.request.method``/``.url``), or None when built by hand.
        headers: the response headers, looked up by lower-case name (kept as received:
            requests' case-insensitive dict, or a simulator's lower-case dict).
    """

    response: Optional[ErrorResponse] = None

    # Read from the body when asked: one error is built per failed attempt (see __init__).
    @property
    def type(self) -> Optional[str]:
        """``body["type"]``, if any."""
        return _opt_str(self.body.get("type")) if isinstance(self.body, dict) else None

    @property
    def param(self) -> Optional[str]:
        """``body["param"]``, if any."""
        return _opt_str(self.body.get("param")) if isinstance(self.body, dict) else None

    @property  # type: ignore[override]
    def request(self) -> Optional[ErrorRequest]:
        """The response's request (method and URL), unless one was set."""
        own: Optional[ErrorRequest] = self.__dict__.get("_request")
        if own is None and self.response is not None:
            return self.response.request
        return own

    @request.setter
    def request(self, value: Optional[ErrorRequest]) -> None:
        self.__dict__["_request"] = value

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: Optional[str] = None,
        request_id: Optional[str] = None,
        body: Any = None,
        headers: Optional[Mapping[str, str]] = None,
        model: Optional[str] = None,
        response: Optional[ErrorResponse] = None,
    ) -> None:
        # Set directly rather than through super().__init__: one error is built per failed
        # attempt, and the virtual-time engine runs millions of them.
        Exception.__init__(self, message)
        self.message = message
        self.model = model
        self.attempts = ()
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        self.body = body
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        if response is not None:
            self.response = response


class BadRequestError(APIStatusError):
    """400: the request is malformed; retrying or another model will not fix it."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this resource."""


class NotFoundError(APIStatusError):
    """404: unknown model (JSON body) or wrong URL (HTML body)."""


class ConflictError(APIStatusError):
    """409: a conflicting concurrent operation; retryable."""


class UnprocessableEntityError(APIStatusError):
    """422: well-formed but semantically invalid request."""


class RateLimitError(APIStatusError):
    """429: slow down; ``.retry_after`` is the server's requested wait in seconds, if sent."""

    retry_after: Optional[float] = None


class InternalServerError(APIStatusError):
    """A 5xx from the gateway or the model provider behind it."""


_BY_STATUS: Dict[int, Type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def _opt_str(value: Any) -> Optional[str]:
    return None if value is None else str(value)


_REQUEST_ID_IN_TEXT = re.compile(r"request id:?\s*([A-Za-z0-9_\-]+)", re.IGNORECASE)


def status_error(
    status: int,
    headers: Mapping[str, str],
    body: Any,
    *,
    model: Optional[str],
    hint: str = "",
    retry_after: Optional[float] = None,
    response: Optional[ErrorResponse] = None,
) -> APIStatusError:
    """Build the error of the right class for an HTTP error status.

    Args:
        status: the HTTP status.
        headers: response headers, looked up by lower-case name.
        body: the decoded JSON body, or the raw text when it is not JSON (the error's
            ``.body`` is its ``"error"`` value when it has one, as in openai-python).
        model: the model the attempt was for.
        hint: extra advice appended to the message (e.g. about base_url).
        retry_after: the parsed server wait, stored on RateLimitError.
        response: the response, kept as the error's ``.response``.
    """
    err = body.get("error") if isinstance(body, dict) else None
    code: Optional[str] = None
    if isinstance(err, dict):
        text = str(err.get("message") or "")
        raw_code = err.get("code") or err.get("type")
        code = str(raw_code) if raw_code is not None else None
    elif isinstance(err, str):
        text = err
    elif isinstance(body, str):
        text = " ".join(body.split())[:200]
    else:
        text = ""
    request_id = headers.get("x-request-id")
    if request_id is None and "request id" in text.lower():  # skip the regex on the hot path
        found = _REQUEST_ID_IN_TEXT.search(text)
        request_id = found.group(1) if found else None
    message = f"Error code: {status}" + (f" - {text}" if text else "")
    if model:
        message += f" (model {model})"
    if hint:
        message += f". {hint}"
    cls = _BY_STATUS.get(status, InternalServerError if status >= 500 else APIStatusError)
    error = cls(
        message,
        status_code=status,
        code=code,
        request_id=request_id,
        body=body.get("error", body) if isinstance(body, dict) else body,
        headers=headers,
        model=model,
        response=response,
    )
    if isinstance(error, RateLimitError):
        error.retry_after = retry_after
    return error
