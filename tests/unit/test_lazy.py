"""Errors and records built late (or kept, for a shared reply) equal those built at once."""

from __future__ import annotations

import random
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

import cometsync
from cometsync import FullJitter, RetryPolicy
from cometsync._attempt import Attempt
from cometsync._backoff import DecorrelatedJitter, EqualJitter, Exponential
from cometsync._flow import CallSpec, Send, Sleep, call_flow
from cometsync._policy import ResponseLike, assess, classify, shared
from cometsync._types import Timeout
from cometsync.guards import Guards
from cometsync.testing import FakeClock, json_response

SPEC: CallSpec[Any] = CallSpec(
    method="POST", path="/x", route="/v1/x", parse=lambda response, model: response
)

REPLIES: List[Tuple[int, Any, Dict[str, str]]] = [
    (409, {"error": {"message": "version changed", "type": "conflict", "code": "c"}}, {}),
    (429, {"error": {"message": "slow down", "code": "rate_limit"}}, {"retry-after": "2"}),
    (429, {"error": {"message": "no", "code": "insufficient_quota"}}, {}),
    (503, "<html><body>Bad gateway</body></html>", {"x-request-id": "req-1"}),
    (500, {"error": {"message": "x", "code": "invalid_request"}}, {"x-should-retry": "true"}),
    (404, {"error": {"message": "The model `m` does not exist", "code": "model_not_found"}}, {}),
    (404, "<html>nope</html>", {}),
    (400, {"error": {"message": "maximum context length is 8k"}}, {}),
    (302, "", {"location": "https://elsewhere.invalid/"}),
    (401, {"error": "bad key, request id: abc123"}, {}),
]


def _same_error(one: Any, two: Any) -> None:
    assert type(one) is type(two)
    assert str(one) == str(two)
    for name in ("status_code", "code", "request_id", "body", "model", "retry_after"):
        assert getattr(one, name, None) == getattr(two, name, None), name
    mine, theirs = getattr(one, "response", None), getattr(two, "response", None)
    assert (mine is None) == (theirs is None)
    if mine is not None:
        assert (mine.status_code, mine.text, mine.request.method, mine.request.url) == (
            theirs.status_code,
            theirs.text,
            theirs.request.method,
            theirs.request.url,
        )


@pytest.mark.parametrize(("status", "body", "headers"), REPLIES)
def test_a_deferred_error_equals_the_one_classify_builds(
    status: int, body: Any, headers: Dict[str, str]
) -> None:
    """assess's verdict is classify's without the error, and its Deferred builds that error."""
    response = json_response(status, body, headers)
    policy = RetryPolicy()
    verdict, deferred = assess(response, policy, "m", 0.0)
    full = classify(response, policy, model="m", now=0.0)
    assert deferred is not None and verdict.error is None
    assert verdict._replace(error=full.error) == full
    _same_error(deferred.build(), full.error)
    assert deferred.build() is not deferred.build()  # each caller gets its own error


class Observer(Guards):
    """Guards that protect nothing but look at every verdict (so the flow builds errors)."""

    def __init__(self) -> None:
        self.seen: List[Any] = []

    def observe(self, model: Optional[str], verdict: Any, now: float) -> None:
        self.seen.append(verdict.error)


def _drive(replies: Iterator[Any], **kwargs: Any) -> Any:
    flow = call_flow(
        SPEC,
        ["m1", "m2"],
        RetryPolicy(max_retries=2, backoff=FullJitter(base=0.1, rng=random.Random(3))),
        clock=FakeClock(),
        timeout=Timeout(),
        **kwargs,
    )
    action = next(flow)
    try:
        while True:
            outcome = next(replies) if isinstance(action, Send) else None
            assert isinstance(action, (Send, Sleep))
            action = flow.send(outcome)
    except cometsync.APIError as error:
        return error
    except StopIteration as stop:
        return stop.value


def _replies() -> Iterator[Any]:
    for status, body, headers in REPLIES[:2]:
        yield json_response(status, body, headers)
    yield cometsync.APITimeoutError("read timed out")  # the first model's last: the next one
    for status, body, headers in REPLIES[3:5] + REPLIES[:1]:
        yield json_response(status, body, headers)


def test_records_built_at_the_end_equal_records_built_at_once() -> None:
    """Without a hook the attempts (errors' text scrubbed) equal those a hook receives."""
    scrub: Callable[[str], str] = lambda text: text.replace("slow", "s***")  # noqa: E731
    hooked: List[Attempt] = []
    late = _drive(_replies(), scrub=scrub)
    early = _drive(_replies(), scrub=scrub, on_attempt=hooked.append)
    watched = _drive(_replies(), scrub=scrub, guards=Observer())
    assert isinstance(late, cometsync.ConflictError)
    assert late.attempts == early.attempts == watched.attempts == tuple(hooked)
    assert len(late.attempts) == 6 and any("s***" in (a.error or "") for a in late.attempts)
    _same_error(late, early)
    _same_error(late, watched)


def test_a_success_carries_its_history_only_when_the_spec_attaches_it() -> None:
    """attach gets every built record; without attach the result comes back as parsed."""
    seen: List[Sequence[Attempt]] = []
    spec = CallSpec(
        method="POST",
        path="/x",
        route="/v1/x",
        parse=lambda response, model: model,
        attach=lambda result, attempts: seen.append(attempts) or result,
    )
    flow = call_flow(spec, ["m1"], RetryPolicy(), clock=FakeClock(), timeout=Timeout())
    next(flow)
    assert isinstance(flow.send(json_response(409, REPLIES[0][1])), Sleep)
    assert isinstance(flow.send(None), Send)
    with pytest.raises(StopIteration) as stop:
        flow.send(json_response(200, {}))
    assert stop.value.value == "m1"
    assert [(a.status, a.decision) for a in seen[0]] == [(409, "retry"), (200, "success")]
    assert seen[0][0].error == "ConflictError: Error code: 409 - version changed (model m1)"


def test_a_shared_reply_keeps_its_verdict_per_policy_and_model() -> None:
    """The same verdict object comes back for the same policy and model, not for others."""
    reply = shared(json_response(409, REPLIES[0][1]))
    policy, other = RetryPolicy(), RetryPolicy()
    first = assess(reply, policy, "m", 0.0)
    assert assess(reply, policy, "m", 5.0) is first
    assert assess(reply, other, "m", 0.0) is not first
    assert assess(reply, other, "n", 0.0)[1] == first[1]._replace(model="n")
    plain = json_response(409, REPLIES[0][1])
    assert assess(plain, policy, "m", 0.0) is not assess(plain, policy, "m", 0.0)


def test_a_shared_reply_whose_wait_is_a_date_is_classified_each_time() -> None:
    """A Retry-After date depends on the clock, so its verdict is never kept."""
    reply: ResponseLike = shared(
        json_response(429, {"error": {}}, {"retry-after": "Wed, 21 Oct 2037 07:28:00 GMT"})
    )
    policy = RetryPolicy()
    early = assess(reply, policy, "m", 2_000_000_000.0)[0].retry_after
    later = assess(reply, policy, "m", 2_000_000_060.0)[0].retry_after
    assert early is not None and later is not None and early - later == pytest.approx(60.0)


@pytest.mark.parametrize(
    "backoff",
    [
        FullJitter(base=0.01, cap=2.0),
        FullJitter(base=0.0, cap=0.0),
        FullJitter(base=3.0, cap=3.0),
        EqualJitter(base=0.01, cap=2.0),
        Exponential(base=0.5, cap=8.0, jitter=0.1),
        DecorrelatedJitter(base=0.005, cap=2.0),
    ],
)
def test_inlined_envelopes_draw_exactly_the_documented_formulas(backoff: Any) -> None:
    """Each strategy's delay equals its formula on expo() bit for bit, edge retries included."""
    for retry in [*range(-2, 70), 10**9]:
        mine, theirs = random.Random(retry), random.Random(retry)
        got = backoff.with_rng(mine).delay(retry, 0.3)
        envelope = backoff.expo(retry)
        if isinstance(backoff, FullJitter):
            want = theirs.uniform(0.0, envelope)
        elif isinstance(backoff, EqualJitter):
            want = envelope / 2.0 + theirs.uniform(0.0, envelope / 2.0)
        elif isinstance(backoff, Exponential):
            want = envelope + theirs.uniform(0.0, backoff.jitter)
        else:
            want = min(backoff.cap, theirs.uniform(backoff.base, 0.3 * 3.0))
        assert repr(got) == repr(want), retry
