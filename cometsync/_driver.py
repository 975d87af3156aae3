"""The driver of the call flow: it carries out a flow's ``Send``/``Sleep`` with the real transport.

The client (``_client.py``) holds the configuration and builds one ``Driver`` per client (copies
included); resources call ``Client._call``, which hands the call to it. The decisions themselves
are in the sans-IO ``call_flow`` (``_flow.py``); the other driver is ``simulator/virtual.py``.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar

from ._config import OnAttempt, _Options, _Shared
from ._errors import APIError, APITimeoutError, ClientClosedError, PoolTimeoutError
from ._flow import CallSpec, Deliver, Queued, Send, Sleep, call_flow
from ._http_info import ErrorRequest
from ._recovery import FlowHandle
from ._redact import Redactor
from ._stream import defer_success
from ._stream_open import FirstToken, open_stream
from ._transport import HTTPRequest
from ._types import Timeout
from .guards import NO_GUARDS
from .guards.ratelimit import estimate_tokens
from .guards.shared import SharedGuards

__all__ = ["Driver"]

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # made once, not per call

_SLACK = 0.01  # seconds: a socket timeout may fire a hair before the clock reaches it

T = TypeVar("T")

Headers = Callable[[Optional[Mapping[str, str]], bool], Dict[str, str]]


class Driver:
    """Drives one client's calls through ``call_flow``, so the client keeps only its settings.

    Args:
        options: the client's settings (retry, timeout, deadline).
        shared: what every copy of the client shares (transport, clock, guards).
        redactor: scrubs the key from responses, errors and records.
        headers: builds a request's headers from its extra headers and whether it sends the key.
        url: turns a flow's path into the URL sent to.
        on_attempt: called with every ``Attempt`` (logging, then the user's hook).
    """

    def __init__(
        self,
        options: _Options,
        shared: _Shared,
        redactor: Redactor,
        headers: Headers,
        url: Callable[[str], str],
        on_attempt: OnAttempt,
    ) -> None:
        self._options = options
        self._shared = shared
        self._redactor = redactor
        self._headers = headers
        self._url = url
        self._on_attempt = on_attempt

    def call(
        self,
        spec: CallSpec[T],
        chain: Sequence[Optional[str]],
        *,
        timeout: Optional[Timeout] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        auth: bool = True,
    ) -> T:
        """Drive one call's flow with the real transport and clock; ``auth=False`` sends no key."""
        if self._shared.closed:
            raise ClientClosedError("this cometsync.Client is closed")
        options = self._options
        shared = self._shared
        headers = self._headers(extra_headers, auth)
        flow = call_flow(
            spec,
            chain,
            options.retry,
            clock=shared.clock,
            timeout=timeout or options.timeout,
            deadline=options.deadline,
            guards=shared.guards,
            on_attempt=defer_success(self._on_attempt) if spec.stream else self._on_attempt,
            scrub=self._redactor.text,
        )
        guards = shared.guards
        # Rate limits: reserve tokens, settle to usage (a route without a model has none).
        pacer = guards if isinstance(guards, SharedGuards) else None
        if not any(m is not None for m in chain):
            pacer = None
        paced = pacer is not None
        last: List[Tuple[Optional[str], int]] = []  # the last Send's (model, tokens reserved)

        def drive(first: Callable[[], Any]) -> Deliver:
            return self._drive(flow, headers, first, paced, last)

        try:
            if pacer is not None:
                with pacer.call(estimate_tokens(spec.body)):
                    action = drive(flow.__next__)
            else:
                action = drive(flow.__next__)
        except StopIteration as stop:
            flow.close()
            if last and last[-1][1]:
                used = getattr(getattr(stop.value, "usage", None), "total_tokens", None)
                if isinstance(used, int):
                    guards.settle(last[-1][0], last[-1][1], used)
            return stop.value  # type: ignore[no-any-return]
        except BaseException:
            flow.close()
            raise
        # A stream with recovery: its reader resumes the flow if the stream breaks (a stream
        # keeps its token estimate: its usage is not settled).
        action.result._bind_flow(FlowHandle(flow, drive))
        return action.result  # type: ignore[no-any-return]

    def _drive(
        self,
        flow: Any,
        headers: Mapping[str, str],
        first: Callable[[], Any],
        paced: bool,
        last: List[Tuple[Optional[str], int]],
    ) -> Deliver:
        """Carry out the flow's actions, from ``first()``, until it delivers a stream.

        Raises:
            StopIteration: the flow returned its result.
            APIError: the flow failed (scrubbed of the key).
        """
        try:
            action = first()
            while not isinstance(action, Deliver):
                if isinstance(action, Send):
                    tokens = estimate_tokens(action.body) if paced else 0
                    outcome: Any = self._send(action, headers, tokens)
                    last[:] = [(action.model, tokens)]
                else:
                    assert isinstance(action, Sleep)
                    self._shared.clock.sleep(action.seconds)
                    outcome = None
                action = flow.send(outcome)
        except APIError as error:
            self._scrub_error(error)
            raise
        return action

    def _send(self, action: Send, headers: Mapping[str, str], tokens: int = 0) -> Any:
        """Send one attempt; a wait for its slot (limit, pacing, server hold) is ``Queued``."""
        clock = self._shared.clock
        began = clock.monotonic()
        entered: List[float] = []  # when the slot was taken
        outcome = self._send_in_slot(action, headers, tokens, entered)
        queued = (entered[0] if entered else clock.monotonic()) - began
        return Queued(outcome, queued) if queued > 0 else outcome

    def _send_in_slot(
        self, action: Send, headers: Mapping[str, str], tokens: int, entered: List[float]
    ) -> Any:
        body = None if action.body is None else _ENCODER.encode(action.body).encode()
        request = HTTPRequest(action.method, self._url(action.path), headers, body, action.stream)
        # The wait for a slot is bounded like the attempt itself (already cut to the
        # deadline's remainder), so a congested model fails as a timeout, never hangs.
        wait = max(action.timeout.connect, action.timeout.read)
        clock = self._shared.clock
        sent = False
        budget: Optional[FirstToken] = None
        # A route without a model is no model's traffic: it takes no limiter slot.
        guards = self._shared.guards if action.model is not None else NO_GUARDS
        try:
            with guards.slot(action.model, wait, tokens):
                entered.append(clock.monotonic())
                timeout = action.timeout
                if action.stop_at is not None:  # the slot wait came out of the deadline
                    left = action.stop_at - clock.monotonic()
                    if left <= 0:
                        raise PoolTimeoutError(
                            "the call's deadline passed while waiting for a slot"
                        )
                    timeout = timeout.capped(left)
                sent = True
                if not action.stream:
                    response = self._shared.transport.send(request, timeout)
                    # Scrubbed before anything reads it: errors quote (and cut) what it sent.
                    response = self._redactor.response(response)
                    if tokens and response.status_code >= 400:
                        self._shared.guards.settle(action.model, tokens, 0)  # refused: refund
                    return response
                if timeout.first_token is not None:
                    budget = FirstToken(
                        clock.monotonic() + timeout.first_token,
                        timeout.first_token,
                        timeout.read,
                        clock,
                    )
                response = self._shared.transport.send(request, timeout.until_first_token())
                response = self._redactor.response(response)
                # Read a stream up to its first chunk here, so failures before it are retried.
                opened = open_stream(response, action.model, budget, self._redactor)
                if isinstance(opened, APIError):
                    opened.request = ErrorRequest(request.method, request.url)
                return opened
        except APITimeoutError as error:
            if sent and tokens:
                self._shared.guards.settle(action.model, tokens, 0)
            # The headers did not come within the first-token budget (read was capped to it).
            late = budget is not None and clock.monotonic() >= budget.due - _SLACK
            if budget is not None and late and not isinstance(error, PoolTimeoutError):
                error = APITimeoutError(f"no first token within {budget.seconds:g}s ({error})")
            if sent:
                error.request = ErrorRequest(request.method, request.url)
            self._redactor.error(error)
            return error
        except APIError as error:
            if sent and tokens:
                self._shared.guards.settle(action.model, tokens, 0)
            if sent:
                error.request = ErrorRequest(request.method, request.url)
            self._redactor.error(error)
            return error

    def _scrub_error(self, error: APIError) -> None:
        """Remove the key from an error once more before it is raised (every text field)."""
        self._redactor.error(error)
