"""The call flow's protocol: the actions it yields, the outcomes it receives, what a call is.

Kept apart from ``_flow`` so a driver (the Client's, the virtual-time engine's) can name the
protocol without the generator, and the generator stays one concern.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    TypeVar,
    Union,
)

from ._errors import APIError
from ._policy import ResponseLike
from ._recovery import Deliver, StreamBreak
from ._types import Attempt, Timeout

__all__ = ["Action", "CallSpec", "Outcome", "Queued", "Send", "Sleep"]

T = TypeVar("T")


class Send(NamedTuple):
    """Send one HTTP request and reply with the response, or the ``APIError`` it raised.

    Actions are NamedTuples rather than frozen dataclasses: immutable all the same, and several
    times cheaper to build on the per-attempt path the virtual-time engine runs millions of times.
    """

    model: Optional[str]
    method: str
    path: str
    body: Optional[Dict[str, Any]]
    timeout: Timeout
    stream: bool = False
    attempt: int = 1
    #: The call's deadline on the clock's monotonic scale, or None: a driver that waits
    #: before sending (for a limiter slot) cuts ``timeout`` to what is left of it.
    stop_at: Optional[float] = None


class Queued(NamedTuple):
    """A driver's answer to a ``Send`` that waited ``seconds`` in the client before it left.

    A driver that holds a request back (for a limiter slot, the server's pacing) answers with
    this instead of the bare outcome, so the attempt's ``latency`` is the exchange alone and
    the wait is its ``queued``. Answering with the bare outcome means no wait.
    """

    outcome: Union[ResponseLike, APIError]
    seconds: float


#: What a driver answers a ``Send`` with (None answers a ``Sleep``).
Outcome = Union[ResponseLike, APIError, StreamBreak, Queued, None]


class Sleep(NamedTuple):
    """Wait ``seconds`` before the next attempt, then reply with None."""

    seconds: float


Action = Union[Send, Sleep, Deliver]


def _no_attach(result: Any, attempts: Sequence[Attempt]) -> Any:
    return result


@dataclass(frozen=True)
class CallSpec(Generic[T]):
    """What one call sends and how a successful response becomes its result.

    Args:
        method: HTTP method.
        path: path relative to the base URL (``/chat/completions``).
        route: the path as recorded in attempts (``/v1/chat/completions``).
        body: JSON body without ``model`` (the flow adds each chain model), or None.
        parse: turns a 2xx response into the result; ValueError means an invalid body.
        attach: returns the result carrying the call's attempt history.
        stream: whether the request asks for a stream.
        recover: a stream recovered after its first chunk: on success the flow yields
            ``Deliver(result)`` instead of returning, and its reader resumes it with a
            ``StreamBreak`` when the stream breaks (``_recovery``).
    """

    method: str
    path: str
    route: str
    parse: Callable[[ResponseLike, Optional[str]], T]
    body: Optional[Mapping[str, Any]] = None
    attach: Callable[[T, Sequence[Attempt]], T] = field(default=_no_attach)
    stream: bool = False
    recover: bool = False
