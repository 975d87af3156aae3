"""Failover of recoverable faults (issue 11): timeouts, first-token limits, context length.

Pure tests of the policy and of the call flow, driven with the fake clock: no sockets, no sleeps.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

import cometsync
from cometsync import (
    APIConnectionError,
    APITimeoutError,
    ConfigError,
    Cooldowns,
    Protections,
    RetryPolicy,
    Timeout,
)
from cometsync._errors import PoolTimeoutError
from cometsync._flow import CallSpec, Send, Sleep, call_flow
from cometsync._policy import Classification, classify, decide
from cometsync._stream_open import FirstToken, StreamStart, has_content, open_stream
from cometsync.guards.cooldowns import (
    CLOSED,
    FAILURE,
    NEUTRAL,
    OK,
    breaker_admit,
    breaker_observe,
    breaker_outcome,
    breaker_refuses_retry,
)
from cometsync.resources.chat import _attach, _parse_completion
from cometsync.testing import (
    DONE,
    FakeClock,
    ScriptedTransport,
    StreamedResponse,
    chunk_body,
    completion_body,
    json_response,
)

KEY = "sk-test-SECRET-failover"
MSGS = [{"role": "user", "content": "hi"}]
SPEC: CallSpec[cometsync.ChatCompletion] = CallSpec(
    method="POST",
    path="/chat/completions",
    route="/v1/chat/completions",
    parse=_parse_completion,
    body={"messages": MSGS},
    attach=_attach,
)
CONTEXT_BODY = {
    "error": {
        "message": "This model's maximum context length is 8192 tokens. However, your "
        "messages resulted in 9000 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}


def ok(model: str) -> Any:
    return json_response(200, completion_body("fine", model=model))


Reply = Callable[[Send], Any]


def drive(
    chain: Sequence[Optional[str]],
    reply: Reply,
    *,
    policy: Optional[RetryPolicy] = None,
    clock: Optional[FakeClock] = None,
    timeout: Optional[Timeout] = None,
    **kwargs: Any,
) -> Tuple[Any, List[Send], List[float]]:
    """Run one call_flow to its end; (result or raised error, sends, sleeps)."""
    clock = clock or FakeClock()
    flow = call_flow(
        SPEC, chain, policy or RetryPolicy(), clock=clock, timeout=timeout or Timeout(), **kwargs
    )
    sends: List[Send] = []
    sleeps: List[float] = []
    try:
        action = next(flow)
        while True:
            if isinstance(action, Send):
                sends.append(action)
                outcome = reply(action)
            else:
                assert isinstance(action, Sleep)
                sleeps.append(action.seconds)
                clock.sleep(action.seconds)
                outcome = None
            action = flow.send(outcome)
    except StopIteration as stop:
        return stop.value, sends, sleeps
    except cometsync.APIError as error:
        return error, sends, sleeps


def silent_then_ok(silent: str) -> Reply:
    def reply(send: Send) -> Any:
        if send.model == silent:
            return APITimeoutError(f"read timed out after {send.timeout.read:g}s")
        return ok(str(send.model))

    return reply


# -- point 1: timeouts fall over -------------------------------------------------------------


def test_a_timeout_is_classified_to_fall_over_and_a_slot_timeout_is_not() -> None:
    """A read/connect timeout marks fail_over; a limiter-slot timeout (nothing sent) does not."""
    policy = RetryPolicy()
    timed_out = classify(APITimeoutError("read timed out"), policy, model="m1", now=0)
    assert (timed_out.retry, timed_out.fallback, timed_out.fail_over) == (True, True, True)
    slot = classify(PoolTimeoutError("no slot"), policy, model="m1", now=0)
    assert (slot.retry, slot.fallback, slot.fail_over) == (True, True, False)
    reset = classify(APIConnectionError("reset"), policy, model="m1", now=0)
    assert (reset.retry, reset.fail_over) == (True, False)


def test_decide_falls_over_at_once_with_a_next_model_and_retries_on_the_last() -> None:
    """A timeout moves on at once when a model follows, and is retried per policy on the last."""
    verdict = Classification(ok=False, retry=True, fallback=True, fail_over=True)
    step = decide(verdict, 1, RetryPolicy())
    assert step.decision == "fallback" and step.delay is None and "timed out" in step.reason
    last = decide(verdict, 1, RetryPolicy(), has_next_model=False)
    assert last.decision == "retry" and last.delay is not None
    assert decide(verdict, 3, RetryPolicy(), has_next_model=False).decision == "raise"


def test_a_silent_primary_is_asked_once_before_the_fallback_answers() -> None:
    """One timed-out attempt on the primary, no sleep, then the fallback's answer."""
    result, sends, sleeps = drive(["m1", "m2"], silent_then_ok("m1"))
    assert isinstance(result, cometsync.ChatCompletion)
    assert [s.model for s in sends] == ["m1", "m2"]
    assert sleeps == []
    assert [a.decision for a in result.attempts] == ["fallback", "success"]


def test_a_silent_last_model_is_retried_per_the_policy() -> None:
    """With nowhere to go, a timeout is retried with backoff, max_retries times."""
    result, sends, sleeps = drive(["m1"], silent_then_ok("m1"))
    assert isinstance(result, APITimeoutError)
    assert len(sends) == 3 and len(sleeps) == 2
    assert [a.decision for a in result.attempts] == ["retry", "retry", "raise"]


def test_a_silent_middle_model_falls_over_and_a_silent_last_one_is_retried() -> None:
    """In a three-model chain, every silent model but the last is asked exactly once."""

    def reply(send: Send) -> Any:
        return APITimeoutError("connect timed out")

    error, sends, _ = drive(["m1", "m2", "m3"], reply, policy=RetryPolicy(max_retries=1))
    assert isinstance(error, APITimeoutError)
    assert [s.model for s in sends] == ["m1", "m2", "m3", "m3"]


def test_a_timeout_falls_over_through_the_client_with_one_primary_request() -> None:
    """Through Client + transport, a silent primary costs one request, then the fallback."""
    clock = FakeClock()
    transport = ScriptedTransport([APITimeoutError("read timed out"), ok("m2")])
    client = cometsync.Client(
        api_key=KEY, transport=transport, clock=clock, fallback_models=["m2"], timeout=0.2
    )
    result = client.chat.completions.create(model="m1", messages=MSGS)
    assert result.model == "m2"
    assert transport.models == ["m1", "m2"]
    assert clock.sleeps == []


# -- point 2: Timeout.first_token ----------------------------------------------------------


def test_timeout_first_token_defaults_to_none_and_old_forms_coerce_unchanged() -> None:
    """The new field is optional; seconds, pairs and None coerce exactly as before."""
    assert Timeout().first_token is None
    assert Timeout.coerce(3) == Timeout(connect=3.0, read=3.0)
    assert Timeout.coerce((2, 9)) == Timeout(connect=2, read=9)
    assert Timeout.coerce(None) == Timeout(connect=5.0, read=120.0, first_token=None)
    t = Timeout(first_token=10)
    assert Timeout.coerce(t) is t


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "5"])
def test_a_bad_first_token_is_a_config_error_naming_it(bad: Any) -> None:
    """first_token is validated like connect and read, and the message names the field."""
    with pytest.raises(ConfigError, match="first_token"):
        Timeout(first_token=bad)


def test_first_token_is_accepted_wherever_a_timeout_is() -> None:
    """Client(timeout=), with_options(timeout=) and create(timeout=) all take first_token."""
    clock = FakeClock()
    transport = ScriptedTransport([ok("m1")])
    client = cometsync.Client(
        api_key=KEY, transport=transport, clock=clock, timeout=Timeout(first_token=7)
    )
    assert client.timeout.first_token == 7
    assert client.with_options(timeout=Timeout(read=30, first_token=4)).timeout.first_token == 4
    client.chat.completions.create(
        model="m1", messages=MSGS, timeout=Timeout(read=30, first_token=3)
    )
    assert transport.timeouts[-1].first_token == 3


def test_the_deadline_caps_first_token_like_the_other_parts() -> None:
    """capped() cuts first_token to the time left, and until_first_token() caps read to it."""
    t = Timeout(connect=5, read=60, first_token=20)
    assert t.capped(8) == Timeout(connect=5, read=8, first_token=8)
    assert t.capped(None) is t
    assert t.until_first_token() == Timeout(connect=5, read=20, first_token=20)
    assert Timeout(read=5, first_token=20).until_first_token().read == 5
    assert Timeout().until_first_token() == Timeout()


def test_a_first_token_timeout_falls_over_like_any_timeout() -> None:
    """The error a stream raises for a late first token is a timeout: next model at once."""

    def reply(send: Send) -> Any:
        if send.model == "m1":
            return APITimeoutError("no first token within 2s")
        return ok("m2")

    result, sends, sleeps = drive(["m1", "m2"], reply, timeout=Timeout(read=60, first_token=2))
    assert isinstance(result, cometsync.ChatCompletion)
    assert [s.model for s in sends] == ["m1", "m2"] and sleeps == []
    assert sends[0].timeout.first_token == 2


# -- point 4: context_length_exceeded -----------------------------------------------------


def context_reply(status: int = 400, body: Any = None) -> Reply:
    def reply(send: Send) -> Any:
        if send.model == "small":
            return json_response(status, CONTEXT_BODY if body is None else body)
        return ok(str(send.model))

    return reply


def test_context_length_falls_back_at_once_without_retrying() -> None:
    """A 400 context_length_exceeded asks the next model at once; the small one only once."""
    result, sends, sleeps = drive(["small", "large"], context_reply())
    assert isinstance(result, cometsync.ChatCompletion) and result.model == "large"
    assert [s.model for s in sends] == ["small", "large"] and sleeps == []


def test_context_length_on_the_last_model_is_raised_at_once() -> None:
    """With no larger model left, the 400 is raised after one attempt."""
    error, sends, sleeps = drive(["small"], context_reply())
    assert isinstance(error, cometsync.BadRequestError)
    assert error.code == "context_length_exceeded"
    assert len(sends) == 1 and sleeps == []


def test_openai_maximum_context_length_message_without_the_code_counts() -> None:
    """OpenAI's 'maximum context length' message is recognised when the code is missing."""
    body = {
        "error": {
            "message": "This model's maximum context length is 4096 tokens.",
            "type": "invalid_request_error",
            "code": None,
        }
    }
    result, sends, _ = drive(["small", "large"], context_reply(body=body))
    assert isinstance(result, cometsync.ChatCompletion)
    assert [s.model for s in sends] == ["small", "large"]


def test_context_length_is_never_resent_even_when_the_server_says_retry() -> None:
    """x-should-retry: true cannot make the same too-long prompt be sent again."""
    response = json_response(400, CONTEXT_BODY, {"x-should-retry": "true"})
    verdict = classify(response, RetryPolicy(), model="small", now=0)
    assert (verdict.retry, verdict.fallback) == (False, True)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            400,
            {
                "error": {
                    "message": "bad param",
                    "type": "invalid_request_error",
                    "code": "invalid_value",
                }
            },
        ),
        (
            400,
            {
                "error": {
                    "message": "flagged",
                    "type": "invalid_request_error",
                    "code": "content_filter",
                }
            },
        ),
        (
            401,
            {
                "error": {
                    "message": "bad key",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
        ),
        (413, CONTEXT_BODY["error"]["message"]),
    ],
)
def test_other_400s_content_filter_and_401_are_raised_at_once(status: int, body: Any) -> None:
    """Malformed requests, content-policy refusals and auth failures never retry or fall back."""
    error, sends, _ = drive(["small", "large"], context_reply(status, body))
    assert isinstance(error, cometsync.APIStatusError) and error.status_code == status
    assert [s.model for s in sends] == ["small"]


def test_context_length_does_not_count_against_the_model_in_the_breaker() -> None:
    """Long prompts say nothing of a model's health: they never trip its cooldown."""
    clock = FakeClock()
    script: List[Any] = []
    for _ in range(8):
        script += [json_response(400, CONTEXT_BODY), ok("large")]
    client = cometsync.Client(
        api_key=KEY,
        transport=ScriptedTransport(script),
        clock=clock,
        fallback_models=["large"],
        protections=cometsync.Protections(
            budget=None, limiter=None, cooldown=cometsync.Cooldowns(failures=2)
        ),
    )
    for _ in range(8):
        result = client.chat.completions.create(model="small", messages=MSGS)
        assert [a.model for a in result.attempts] == ["small", "large"]
    stats: Dict[str, Any] = client.stats()
    assert "small" not in (stats["cooldowns"] or {})


# -- point 5: breakers that close promptly --------------------------------------------------


def test_a_breaker_probes_at_a_steady_interval_however_long_the_outage() -> None:
    """Failed probes reopen the breaker for `cooldown` each time, never doubling."""
    config = Cooldowns(failures=1, cooldown=5.0)
    b = breaker_observe(CLOSED, config, FAILURE, None, 0.0)
    opened = []
    now = 0.0
    for _ in range(40):  # 200 s of outage: forty failed probes
        assert b.open_until is not None
        opened.append(b.open_until - now)
        now = b.open_until
        b, refusal = breaker_admit(b, config, now)
        assert refusal is None  # the probe
        b = breaker_observe(b, config, FAILURE, None, now)
    assert set(opened) == {5.0}
    assert breaker_observe(b, config, OK, None, now + 5.0) is CLOSED


def test_a_breaker_waits_for_a_longer_retry_after_and_no_longer() -> None:
    """The server's Retry-After holds the breaker open when longer than the cooldown."""
    config = Cooldowns(failures=1, cooldown=5.0)
    b = breaker_observe(CLOSED, config, FAILURE, 8.0, 10.0)
    assert b.open_until == 18.0
    b, _ = breaker_admit(b, config, 18.0)
    b = breaker_observe(b, config, FAILURE, 2.0, 18.5)
    assert b.open_until == 23.5  # a shorter Retry-After: the steady cooldown


def test_a_breaker_refuses_retries_while_open_or_probing_and_only_a_fault_counts() -> None:
    """Retries are refused when open or half-open; 429s and 400s are neutral, as is a success."""
    config = Cooldowns(failures=2, cooldown=5.0)
    b = breaker_observe(CLOSED, config, FAILURE, None, 0.0)
    assert breaker_refuses_retry(b, 0.0) is None  # one failure: still closed
    b = breaker_observe(b, config, FAILURE, None, 1.0)
    assert "cools down" in str(breaker_refuses_retry(b, 1.0))
    assert "half-open" in str(breaker_refuses_retry(b, 6.5))
    rate_limited = Classification(
        ok=False, retry=True, fallback=True, error=cometsync.RateLimitError("x", status_code=429)
    )
    assert breaker_outcome(rate_limited) == NEUTRAL
    assert breaker_outcome(Classification(ok=True)) == OK


def test_max_cooldown_brings_back_the_doubling() -> None:
    """A max_cooldown above cooldown doubles after each failed probe, up to it."""
    config = Cooldowns(failures=1, cooldown=5.0, max_cooldown=12.0)
    b = breaker_observe(CLOSED, config, FAILURE, None, 0.0)
    waits = []
    for _ in range(3):
        assert b.open_until is not None
        now = b.open_until
        b, _ = breaker_admit(b, config, now)
        b = breaker_observe(b, config, FAILURE, None, now)
        assert b.open_until is not None
        waits.append(b.open_until - now)
    assert waits == [10.0, 12.0, 12.0]
    with pytest.raises(ConfigError, match="max_cooldown"):
        Cooldowns(cooldown=5.0, max_cooldown=4.0)


def breaker_client(
    script: Sequence[Any], clock: FakeClock, **kwargs: Any
) -> Tuple[cometsync.Client, ScriptedTransport]:
    transport = ScriptedTransport(script)
    kwargs.setdefault("protections", Protections(budget=None, limiter=None, cooldown=Cooldowns()))
    client = cometsync.Client(api_key=KEY, transport=transport, clock=clock, **kwargs)
    return client, transport


def test_the_call_that_trips_the_breaker_sends_nothing_more_to_that_model() -> None:
    """The 5th failure in a row trips the breaker: that call goes to the next model at once."""
    clock = FakeClock()
    fail = json_response(503, {"error": {"message": "down"}})
    client, transport = breaker_client([fail] * 3 + [ok("m2")] + [fail] * 2 + [ok("m2")], clock)
    client = client.with_options(fallback_models=["m2"])
    create = client.chat.completions.create
    first = create(model="m1", messages=MSGS)
    assert [a.model for a in first.attempts] == ["m1", "m1", "m1", "m2"]
    second = create(model="m1", messages=MSGS)  # failures 4 and 5: the 5th trips it
    assert [(a.model, a.decision) for a in second.attempts] == [
        ("m1", "retry"),
        ("m1", "fallback"),
        ("m2", "success"),
    ]
    assert "cools down" in second.attempts[1].reason
    assert second.attempts[1].delay is None


def test_a_probe_is_one_attempt_and_a_failed_probe_falls_back_at_once() -> None:
    """Past the cooldown one call probes with one attempt; on failure it falls back, no sleep."""
    clock = FakeClock()
    fail = json_response(503, {"error": {"message": "down"}})
    protections = Protections(budget=None, limiter=None, cooldown=Cooldowns(failures=1))
    client, transport = breaker_client(
        [fail, ok("m2"), fail, ok("m2"), ok("m1")], clock, protections=protections
    )
    client = client.with_options(fallback_models=["m2"])
    create = client.chat.completions.create
    tripped = create(model="m1", messages=MSGS)
    assert [a.model for a in tripped.attempts] == ["m1", "m2"]
    clock.advance(5.0)
    sleeps_before = list(clock.sleeps)
    probed = create(model="m1", messages=MSGS)
    assert [(a.model, a.decision) for a in probed.attempts] == [
        ("m1", "fallback"),
        ("m2", "success"),
    ]
    assert clock.sleeps == sleeps_before
    clock.advance(5.0)
    back = create(model="m1", messages=MSGS)
    assert [a.model for a in back.attempts] == ["m1"]
    assert transport.models == ["m1", "m2", "m1", "m2", "m1"]


def test_on_a_single_model_the_tripping_call_waits_out_the_cooldown_then_probes() -> None:
    """With no other model, the call that tripped the breaker sends nothing until it closes."""
    clock = FakeClock()
    fail = json_response(503, {"error": {"message": "down"}})
    protections = Protections(budget=None, limiter=None, cooldown=Cooldowns(failures=1))
    client, transport = breaker_client([fail, ok("m1")], clock, protections=protections)
    start = clock.monotonic()
    result = client.chat.completions.create(model="m1", messages=MSGS)
    assert [a.decision for a in result.attempts] == ["retry", "success"]
    assert clock.monotonic() - start == pytest.approx(5.0)
    assert transport.models == ["m1", "m1"]


class OutageTransport:
    """The primary answers 503 between ``start`` and ``end`` on the fake clock; others answer."""

    def __init__(self, clock: FakeClock, start: float, end: float) -> None:
        self.clock, self.start, self.end = clock, start, end
        self.sent: List[Tuple[float, str, int]] = []

    def send(self, request: Any, timeout: Timeout) -> Any:
        model = json.loads(request.body)["model"]
        now = self.clock.monotonic()
        self.clock.advance(0.05)
        if model == "primary" and self.start <= now < self.end:
            self.sent.append((now, model, 503))
            return json_response(503, {"error": {"message": "down"}})
        self.sent.append((now, model, 200))
        return ok(model)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("outage", [20.0, 45.0, 60.0, 100.0, 600.0])
def test_the_primary_is_back_in_use_within_10s_of_the_end_of_any_outage(outage: float) -> None:
    """One call every 4 s; after an outage of any length the primary answers within ~10 s."""
    clock = FakeClock(start=0.0)
    transport = OutageTransport(clock, 8.0, 8.0 + outage)
    client = cometsync.Client(
        api_key=KEY, transport=transport, clock=clock, fallback_models=["backup"]
    )
    lost = 0
    while clock.monotonic() < 8.0 + outage + 40.0:
        try:
            client.chat.completions.create(model="primary", messages=MSGS)
        except cometsync.APIError:
            lost += 1
        clock.advance(4.0 - (clock.monotonic() % 4.0))
    end = 8.0 + outage
    back = min(t for t, m, status in transport.sent if m == "primary" and t >= end)
    assert back - end <= 10.0
    assert all(m == "primary" for t, m, _ in transport.sent if t > back)
    during = [t for t, m, _ in transport.sent if m == "primary" and 20.0 <= t < end]
    assert len(during) <= outage / 8.0 + 1  # a single probe per cooldown at most
    assert lost == 0


# -- point 2 in the stream's opening (fake clock, no sockets) -------------------------------


class SlowPieces(StreamedResponse):
    """A scripted stream whose every piece costs ``gap`` seconds on the fake clock."""

    def __init__(self, pieces: Sequence[Any], clock: FakeClock, gap: float) -> None:
        super().__init__(pieces)
        self.clock, self.gap = clock, gap

    def iter_bytes(self) -> Iterator[bytes]:
        for piece in super().iter_bytes():
            self.clock.advance(self.gap)
            yield piece


def test_role_only_chunks_are_held_until_the_first_content_chunk() -> None:
    """With a budget, open_stream returns at the first content chunk, keeping the role chunk."""
    clock = FakeClock()
    pieces = [chunk_body(None, role="assistant"), chunk_body("hi"), DONE]
    budget = FirstToken(clock.monotonic() + 5.0, 5.0, 60.0, clock)
    start = open_stream(SlowPieces(pieces, clock, 1.0), "m1", budget)
    assert isinstance(start, StreamStart) and start.first is not None
    assert not has_content(start.first)
    assert [c.choices[0].delta.content for c in start.rest] == ["hi"]
    plain = open_stream(SlowPieces(pieces, clock, 1.0), "m1")
    assert isinstance(plain, StreamStart) and plain.rest == ()


def test_a_budget_spent_on_role_chunks_and_comments_is_a_timeout() -> None:
    """Pieces that carry no content cannot stretch the budget: APITimeoutError, response closed."""
    clock = FakeClock()
    pieces = [chunk_body(None, role="assistant")] + [b": ping\n\n"] * 10 + [chunk_body("x")]
    response = SlowPieces(pieces, clock, 1.0)
    budget = FirstToken(clock.monotonic() + 4.0, 4.0, 60.0, clock)
    outcome = open_stream(response, "m1", budget)
    assert isinstance(outcome, APITimeoutError)
    assert str(outcome) == "no first token within 4s"
    assert response.closed and response.reads <= 5


def test_an_empty_answer_after_a_role_chunk_is_still_an_answer() -> None:
    """A role chunk then [DONE] within the budget is handed over, as without a budget."""
    clock = FakeClock()
    pieces = [chunk_body(None, role="assistant", finish_reason=None), DONE]
    budget = FirstToken(clock.monotonic() + 5.0, 5.0, 60.0, clock)
    start = open_stream(SlowPieces(pieces, clock, 0.1), "m1", budget)
    assert isinstance(start, StreamStart) and start.first is not None
    assert next(start.events).data == "[DONE]"


class TripsDuringSleep(cometsync.Guards):
    """Guards whose breaker for m1 opens while the call sleeps its backoff."""

    def __init__(self) -> None:
        self.calls = 0

    def refuse_retry(self, model: Optional[str], now: float) -> Optional[str]:
        self.calls += 1
        return None if self.calls == 1 else "the model cools down for 5s"


def test_a_retry_decided_before_the_trip_is_not_sent_to_the_cooling_model() -> None:
    """A call that slept its backoff while the breaker tripped goes to the next model instead."""
    fail = json_response(503, {"error": {"message": "down"}})

    def reply(send: Send) -> Any:
        return fail if send.model == "m1" else ok("m2")

    result, sends, sleeps = drive(["m1", "m2"], reply, guards=TripsDuringSleep())
    assert isinstance(result, cometsync.ChatCompletion)
    assert [s.model for s in sends] == ["m1", "m2"]
    assert len(sleeps) == 1


def test_in_virtual_time_the_primary_is_back_within_10s_of_a_long_outage() -> None:
    """The simulator's fault model, one call every 4 s, the primary down for 60 s: back <= 10 s."""
    from simulator.core import Core
    from simulator.scenario import parse_scenario
    from simulator.virtual import CoreServer, Engine

    scenario = {
        "models": {
            "primary": {"outages": [{"start": 10, "end": 70, "status": 503}]},
            "backup": {},
        }
    }
    core = Core(parse_scenario(scenario), seed=1)
    core.set_origin(0.0)
    engine = Engine()
    server = CoreServer(core)
    guards = Protections().build(ceiling=8, clock=engine.clock)
    for i in range(30):
        flow = call_flow(
            SPEC,
            ["primary", "backup"],
            RetryPolicy(),
            clock=engine.clock,
            timeout=Timeout(),
            guards=guards,
        )
        engine.spawn(flow, server, at=4.0 * i, guards=guards)
    engine.run()
    assert all(t.ok for t in engine.tasks)
    back = min(t.started for t in engine.tasks if t.started >= 70 and t.result.model == "primary")
    assert back - 70 <= 10.0
    probes = [
        t for t in engine.tasks if 20 <= t.started < 70 and t.result.attempts[0].model == "primary"
    ]
    assert all(len([a for a in t.result.attempts if a.model == "primary"]) == 1 for t in probes)
