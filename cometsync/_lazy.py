"""What a failed attempt leaves unbuilt until someone reads it: its error and its record.

The virtual-time engine runs millions of failed attempts whose error and record nobody reads
(no ``on_attempt`` hook, no guard that looks at the error, not the call's last failure);
building each error message and ``Attempt`` was most of the flow's cost per attempt. What is
built later is built from the same fields by the same functions, so it is equal to what would
have been built at once.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Optional, Tuple, Union

from ._attempt import Attempt
from ._errors import APIError, APIStatusError, status_error
from ._http_info import ErrorResponse

__all__ = ["Deferred", "Unbuilt", "build_record", "built"]


class Deferred(NamedTuple):
    """An HTTP error status's error, not yet built: ``build()`` makes it when it is needed."""

    status: int
    headers: Mapping[str, str]
    body: Any
    model: Optional[str]
    hint: str
    retry_after: Optional[float]
    content: bytes
    method: str
    url: str

    def build(self) -> APIStatusError:
        """The error ``classify`` puts in its verdict (a new, equal one on every call)."""
        response = ErrorResponse(
            self.status, self.headers, self.content, self.body, self.method, self.url
        )
        return status_error(
            self.status,
            self.headers,
            self.body,
            model=self.model,
            hint=self.hint,
            retry_after=self.retry_after,
            response=response,
        )


def built(failure: Union[APIError, Deferred]) -> APIError:
    """The error itself, built if it was deferred."""
    return failure.build() if type(failure) is Deferred else failure  # type: ignore[return-value]


#: An attempt's record before it is built: the arguments of ``Attempt._record``, with the
#: error not yet formatted (an ``APIError``, a ``Deferred`` or None).
Unbuilt = Tuple[
    Optional[str],
    str,
    Optional[int],
    float,
    int,
    Union[APIError, Deferred, None],
    Optional[float],
    str,
    str,
    float,
]


def build_record(fields: Unbuilt, scrub: Callable[[str], str]) -> Attempt:
    """The ``Attempt`` of ``fields``, its error text ``"ClassName: message"``, scrubbed."""
    failure = fields[5]
    if failure is None:
        error_text = None
    else:
        error = built(failure)
        error_text = scrub(f"{type(error).__name__}: {error}")
    return Attempt._record(
        fields[0],
        fields[1],
        fields[2],
        fields[3],
        fields[4],
        error_text,
        fields[6],
        fields[7],
        fields[8],
        fields[9],
    )
