"""Pure retry decisions: classify an outcome, choose the next step.

Nothing here does I/O or keeps state; the call flow feeds these functions and acts on them.
What a reply's headers say is read in ``_headers`` (re-exported here); what its body says, in
``_bodies``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, FrozenSet, Mapping, NamedTuple, Optional, Tuple, TypeVar, Union

from ._backoff import Backoff, FullJitter
from ._bodies import (
    _INVALID_REQUEST_CODES,
    _QUOTA_CODES,
    _context_exceeded,
    _error_code,
    _looks_html,
    _names_model,
)
from ._decode import loads
from ._errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APITimeoutError,
    ConfigError,
    PoolTimeoutError,
)
from ._headers import RateLimitInfo, parse_duration, parse_rate_limit, parse_retry_after
from ._lazy import Deferred

__all__ = [
    "BASE_URL_HINT",
    "NO_RESPONSE",
    "Classification",
    "RateLimitInfo",
    "ResponseLike",
    "RetryPolicy",
    "Step",
    "assess",
    "classify",
    "decide",
    "parse_duration",
    "parse_rate_limit",
    "parse_retry_after",
    "shared",
]

BASE_URL_HINT = (
    "This looks like a wrong URL, not a model problem: check base_url (it should end in /v1, "
    "e.g. https://api.cometapi.com/v1)"
)
_tuple_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__


@dataclass(frozen=True)
class RetryPolicy:
    """How one call retries a model before moving down the fallback chain.

    Args:
        max_retries: retries per model after its first attempt (so ``max_retries + 1``
            attempts per model).
        backoff: the wait before retry ``n``; the server's Retry-After wins when longer.
        max_retry_after: a server wait longer than this (seconds) is not slept: the call
            moves to the next model at once (or raises when there is none).
        retry_statuses: statuses retried on the same model, besides every 5xx.
        retry_server_errors: whether 5xx statuses are retried (except ``invalid_request``).
        retry_connection_errors: whether connection errors and timeouts are retried.
        respect_should_retry: obey the server's ``x-should-retry: true/false`` header.
    """

    max_retries: int = 2
    backoff: Backoff = field(default_factory=lambda: FullJitter(base=0.5, cap=8.0))
    max_retry_after: float = 60.0
    retry_statuses: FrozenSet[int] = frozenset({408, 409, 429})
    retry_server_errors: bool = True
    retry_connection_errors: bool = True
    respect_should_retry: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ConfigError(f"RetryPolicy.max_retries must be an int, got {self.max_retries!r}")
        if self.max_retries < 0:
            raise ConfigError(f"RetryPolicy.max_retries must be >= 0, got {self.max_retries}")
        if not isinstance(self.backoff, Backoff):
            raise ConfigError(
                f"RetryPolicy.backoff must be a cometsync backoff strategy, got {self.backoff!r}"
            )
        if not self.max_retry_after >= 0:
            raise ConfigError("RetryPolicy.max_retry_after must be >= 0 seconds")
        object.__setattr__(self, "retry_statuses", frozenset(self.retry_statuses))


class ResponseLike:
    """What the flow reads of an HTTP response; transports and simulators provide it.

    Header names are looked up in lower case. ``json()`` may be overridden by a simulator that
    already holds the decoded body.
    """

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    url: str
    # The last verdict of a reply marked ``shared``: (policy, model, method, what ``assess``
    # said).
    _assessed: Optional[Tuple[Any, Optional[str], Optional[str], Any]] = None

    def json(self) -> Any:
        return loads(self.content)


R = TypeVar("R", bound=ResponseLike)


def shared(response: R) -> R:
    """Mark a reply that answers many attempts unchanged (a simulator's canned reply).

    ``assess`` then keeps its verdict on it, per policy, model and method, instead of
    classifying the same object again for each attempt: a pure function of an object that no
    longer changes. A verdict that depends on the clock (a Retry-After date) is never kept.
    Returns ``response``, which must not be changed afterwards.
    """
    response._assessed = (None, None, None, None)
    return response


class Classification(NamedTuple):
    """What an outcome means for the call (a NamedTuple: built once per attempt, so cheap).

    Attributes:
        ok: a 2xx response; the body still has to parse.
        retry: the same model may be tried again.
        fallback: the next model may be tried.
        error: the error to raise or record (None when ok).
        retry_after: the server's requested wait in seconds, if any.
        overloaded: a 429/503-like signal that the server wants less traffic.
        rate_limit: the server's request-rate headers, when it sent them (any status).
        fail_over: the failure is the route's, not the moment's (a timeout with no
            response): go to the next model at once when there is one; only the last model
            of the chain is retried.
        token_limit: the server's token-rate headers (``x-ratelimit-*-tokens``), likewise.
    """

    ok: bool
    retry: bool = False
    fallback: bool = False
    error: Optional[APIError] = None
    retry_after: Optional[float] = None
    overloaded: bool = False
    rate_limit: Optional[RateLimitInfo] = None
    fail_over: bool = False
    token_limit: Optional[RateLimitInfo] = None


class Step(NamedTuple):
    """The flow's next move: ``success``, ``retry`` (after ``delay``), ``fallback`` or ``raise``."""

    decision: str
    delay: Optional[float] = None
    reason: str = ""


def classify(
    outcome: Union[ResponseLike, APIError],
    policy: RetryPolicy,
    *,
    model: Optional[str],
    now: float,
    method: str = "POST",
) -> Classification:
    """Classify one attempt's outcome (a response, or a transport error).

    Args:
        outcome: the response, or the APIConnectionError the transport raised.
        policy: the retry policy in force.
        model: the model the attempt was for (named in error messages).
        now: wall-clock seconds since the epoch, to resolve Retry-After dates.
        method: the request's method, kept on a status error's ``.response.request``.
    """
    verdict, deferred = assess(outcome, policy, model, now, method)
    if deferred is None:
        return verdict
    return _with_error(verdict, deferred.build())


def _with_error(verdict: Classification, error: APIError) -> Classification:
    # Not ``_replace``: this runs once per failed attempt.
    return _tuple_new(
        Classification,
        (
            verdict.ok,
            verdict.retry,
            verdict.fallback,
            error,
            verdict.retry_after,
            verdict.overloaded,
            verdict.rate_limit,
            verdict.fail_over,
            verdict.token_limit,
        ),
    )


def assess(
    outcome: Union[ResponseLike, APIError],
    policy: RetryPolicy,
    model: Optional[str],
    now: float,
    method: str = "POST",
) -> Tuple[Classification, Optional[Deferred]]:
    """``classify``, with an error status's error left to build: ``(verdict, deferred)``.

    For an HTTP error status the verdict's ``error`` is None and ``deferred.build()`` makes
    it; for anything else ``deferred`` is None and the verdict is ``classify``'s.
    """
    if isinstance(outcome, APIError):
        connection = isinstance(outcome, APIConnectionError)
        # A model silent past the timeout is likely to stay silent: asking it again only
        # multiplies the wait (openai-python #3828). A slot timeout sent nothing, so it is not.
        silent = isinstance(outcome, APITimeoutError) and not isinstance(outcome, PoolTimeoutError)
        verdict = Classification(
            ok=False,
            retry=policy.retry_connection_errors and connection,
            fallback=True,
            error=outcome,
            fail_over=silent,
        )
        return verdict, None
    status = outcome.status_code
    headers = outcome.headers
    if 200 <= status < 300:
        rate_limit = parse_rate_limit(headers)
        token_limit = parse_rate_limit(headers, "tokens")
        if rate_limit is None and token_limit is None:
            return _OK, None
        return Classification(True, rate_limit=rate_limit, token_limit=token_limit), None
    kept = getattr(outcome, "_assessed", None)
    if kept is not None and kept[0] is policy and kept[1] == model and kept[2] == method:
        return kept[3]  # type: ignore[no-any-return]
    get = headers.get
    # Most failures carry neither header: the parsers' calls only when one is there.
    timeless = get("retry-after-ms") is None and get("retry-after") is None
    retry_after = None if timeless else parse_retry_after(headers, now)
    try:  # the decoded JSON body, else its text
        body = outcome.json()
    except (ValueError, RecursionError):  # RecursionError: a custom ResponseLike's own json()
        body = outcome.content.decode("utf-8", "replace")
    json_error = isinstance(body, dict) and "error" in body
    hint = ""
    retry = fallback = False
    if 300 <= status < 400:
        location = headers.get("location")
        hint = BASE_URL_HINT + (f"; the server redirects to {location}" if location else "")
    elif status == 404:
        # Unknown model: another may exist. Any other 404 (an HTML page, or a JSON
        # "Invalid URL" as OpenAI sends for a wrong path) means base_url is wrong.
        fallback = json_error and _names_model(body)
        if not fallback:
            hint = f"{BASE_URL_HINT}; requested {outcome.url}"
    elif status == 400 and _context_exceeded(body):
        fallback = True  # too long for this model; one further down may have a larger window
    elif status in (400, 401, 403, 422):
        pass  # malformed or unauthorised: no retry and no fallback may hide it
    elif status >= 500 and _error_code(body) & _INVALID_REQUEST_CODES:
        pass  # CometAPI reports some invalid requests as 500 invalid_request
    elif status == 429 and _error_code(body) & _QUOTA_CODES:
        pass  # the account is out of quota: waiting or another model will not help
    elif status in policy.retry_statuses or (status >= 500 and policy.retry_server_errors):
        retry = fallback = True
    if policy.respect_should_retry:
        should = get("x-should-retry")
        if should is not None:
            should = should.strip().lower()
            if should in ("true", "false"):
                # The same prompt can never fit the same window: a context-length error is
                # never resent unchanged, whatever the server suggests.
                retry = should == "true" and not (fallback and status == 400)
    if status >= 500 and not json_error and not isinstance(body, dict) and _looks_html(body):
        hint = hint or "an HTML error page, likely from a proxy in front of the gateway"
    # tuple.__new__ rather than the NamedTuples' Python-level __new__: this runs once per
    # failed attempt, millions of times in a benchmark sweep.
    verdict = _tuple_new(
        Classification,
        (
            False,
            retry,
            fallback,
            None,
            retry_after,
            status in (429, 503, 529),
            None if get("x-ratelimit-limit-requests") is None else parse_rate_limit(headers),
            False,
            None
            if get("x-ratelimit-limit-tokens") is None
            else parse_rate_limit(headers, "tokens"),
        ),
    )
    deferred = _tuple_new(
        Deferred,
        (status, headers, body, model, hint, retry_after, outcome.content, method, outcome.url),
    )
    assessed = verdict, deferred
    if kept is not None and timeless:
        outcome._assessed = (policy, model, method, assessed)
    return assessed


_OK = Classification(True)


def invalid_body(model: Optional[str], status: int, problem: str) -> APIResponseValidationError:
    """The error for a 2xx whose body did not parse (retryable: proxies truncate bodies)."""
    return APIResponseValidationError(
        f"status {status} with an invalid body: {problem}" + (f" (model {model})" if model else ""),
        model=model,
        status_code=status,
    )


#: The reason of a fail-over after a timeout with no response.
NO_RESPONSE = "timed out with no response: the next model at once"


def decide(
    verdict: Classification,
    attempt: int,
    policy: RetryPolicy,
    previous_delay: Optional[float] = None,
    time_left: Optional[float] = None,
    has_next_model: bool = True,
) -> Step:
    """Choose what follows an attempt.

    Args:
        verdict: the attempt's classification.
        attempt: the attempt number on this model, from 1.
        policy: the retry policy.
        previous_delay: the last delay slept on this model (for decorrelated jitter).
        time_left: seconds until the call's deadline, or None without a deadline.
        has_next_model: whether the fallback chain has another model.
    """
    if verdict.ok:
        return _SUCCESS
    if time_left is not None and time_left <= 0:  # no time for a retry nor a fallback
        return Step("raise", reason="the call's deadline ran out")
    move_on = "fallback" if verdict.fallback and has_next_model else "raise"
    if verdict.fail_over and move_on == "fallback":
        return Step(move_on, reason=NO_RESPONSE)
    if not verdict.retry:
        reason = "not retryable" if not verdict.fallback else "not retryable on this model"
        return Step(move_on, reason=reason)
    if attempt > policy.max_retries:
        return Step(move_on, reason=f"retries exhausted ({policy.max_retries})")
    server_wait = verdict.retry_after
    if server_wait is not None and server_wait > policy.max_retry_after:
        return Step(
            move_on,
            reason=f"server asked to wait {server_wait:g}s, above max_retry_after "
            f"{policy.max_retry_after:g}s",
        )
    delay = policy.backoff.delay(attempt, previous_delay)
    if server_wait is not None:
        delay = max(delay, server_wait)
    if time_left is not None and delay >= time_left:
        return Step(move_on, reason=f"a {delay:.3g}s wait would pass the deadline")
    # tuple.__new__ skips the NamedTuple's Python-level __new__ (once per retry).
    return tuple.__new__(Step, ("retry", delay, ""))


_SUCCESS = Step("success")


def demote(verdict: Classification, has_next_model: bool, reason: str) -> Step:
    """Turn a would-be retry into a fallback or a raise (e.g. the retry budget said no)."""
    return Step("fallback" if verdict.fallback and has_next_model else "raise", reason=reason)
