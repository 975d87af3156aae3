"""The client's behaviour table, driven through a scripted transport and a fake clock."""

from __future__ import annotations

import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, List, Optional

import pytest
import requests

import cometsync
from cometsync import APIConnectionError, APITimeoutError, RetryPolicy, Timeout
from cometsync.testing import FakeClock, ScriptedTransport, completion_body, json_response

from .helpers import KEY, create, err, make, ok

# -- success and normalisation ---------------------------------------------------------------


def test_success_is_normalised_and_carries_its_history() -> None:
    """A plain success exposes the OpenAI shape plus one attempt record."""
    client, transport, clock = make([ok("hello")])
    r = create(client)
    assert r.choices[0].message.content == "hello"
    assert (r.model, r.usage.total_tokens) == ("m1", 5)
    assert [(a.model, a.status, a.attempt, a.decision) for a in r.attempts] == [
        ("m1", 200, 1, "success")
    ]
    assert r.attempts[0].route == "/v1/chat/completions"
    assert clock.sleeps == []


def test_missing_usage_null_content_and_unknown_fields_are_handled() -> None:
    """Different models' shapes never crash parsing: zeros, None and extras are kept."""
    body = completion_body(None)
    del body["usage"]
    body["provider_extra"] = {"latency": 1}
    body["choices"][0]["message"]["reasoning_content"] = "thought"
    client, _, _ = make([json_response(200, body)])
    r = create(client)
    assert r.usage.total_tokens == 0 and r.usage.prompt_tokens == 0
    assert r.choices[0].message.content is None
    assert r.choices[0].message.reasoning_content == "thought"
    assert r.provider_extra == {"latency": 1}
    d = r.to_dict()
    assert d["provider_extra"] == {"latency": 1}
    assert d["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_usage_total_is_derived_when_missing() -> None:
    """A usage block without total_tokens gets prompt + completion."""
    body = completion_body()
    body["usage"] = {"prompt_tokens": 7, "completion_tokens": 4}
    client, _, _ = make([json_response(200, body)])
    assert create(client).usage.total_tokens == 11


# -- the table: what is never retried --------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exc", "code"),
    [
        (400, cometsync.BadRequestError, None),
        (401, cometsync.AuthenticationError, None),
        (403, cometsync.PermissionDeniedError, None),
        (422, cometsync.UnprocessableEntityError, None),
        (500, cometsync.InternalServerError, "invalid_request"),
    ],
)
def test_malformed_requests_raise_at_once_without_fallback(
    status: int, exc: type, code: Optional[str]
) -> None:
    """No retry and no fallback may hide a malformed or unauthorised request."""
    client, transport, clock = make(
        [json_response(status, err(code))], fallback_models=["m2", "m3"]
    )
    with pytest.raises(exc) as info:
        create(client)
    assert transport.models == ["m1"]
    assert clock.sleeps == []
    assert [a.decision for a in info.value.attempts] == ["raise"]


def test_json_404_moves_to_the_next_model_at_once() -> None:
    """An unknown model is skipped without sleeping; the next model answers."""
    client, transport, clock = make(
        [json_response(404, err("model_not_found")), ok(model="m2")], fallback_models=["m2"]
    )
    r = create(client)
    assert transport.models == ["m1", "m2"]
    assert clock.sleeps == []
    assert r.model == "m2"
    assert [a.decision for a in r.attempts] == ["fallback", "success"]


@pytest.mark.parametrize(
    "reply",
    [
        json_response(404, "<!DOCTYPE html><html>nope</html>", {"content-type": "text/html"}),
        json_response(301, "", {"location": "https://api.cometapi.com/v1/chat/completions"}),
    ],
)
def test_wrong_base_url_raises_with_a_hint_and_no_fallback(reply: Any) -> None:
    """An HTML 404 or a redirect says the URL is wrong; no model would fix that."""
    client, transport, _ = make([reply], fallback_models=["m2"])
    with pytest.raises(cometsync.APIStatusError, match="base_url"):
        create(client)
    assert transport.models == ["m1"]


# -- the table: what is retried ---------------------------------------------------------------


def test_429_waits_for_retry_after_when_longer_than_backoff() -> None:
    """Retry-After (3 s) beats the first backoff (0.5 s)."""
    client, _, clock = make([json_response(429, err(), {"retry-after": "3"}), ok()])
    r = create(client)
    assert clock.sleeps == [3.0]
    assert r.attempts[0].delay == 3.0 and r.attempts[0].decision == "retry"


def test_429_backoff_wins_when_longer_than_retry_after() -> None:
    """Retry-After-ms of 100 ms is shorter than the 0.5 s backoff, so the backoff is used."""
    client, _, clock = make([json_response(429, err(), {"retry-after-ms": "100"}), ok()])
    create(client)
    assert clock.sleeps == [0.5]


def test_429_with_a_wait_above_the_limit_moves_on_at_once() -> None:
    """A server wait above max_retry_after is not slept: the next model is tried now."""
    client, transport, clock = make(
        [json_response(429, err(), {"retry-after": "600"}), ok(model="m2")], fallback_models=["m2"]
    )
    r = create(client)
    assert clock.sleeps == []
    assert transport.models == ["m1", "m2"]
    assert "max_retry_after" in r.attempts[0].reason


def test_429_exhausts_retries_then_falls_back() -> None:
    """Three 429s use up max_retries=2 on m1, then m2 is tried."""
    limited = [json_response(429, err()) for _ in range(3)]
    client, transport, clock = make([*limited, ok(model="m2")], fallback_models=["m2"])
    r = create(client)
    assert transport.models == ["m1", "m1", "m1", "m2"]
    assert clock.sleeps == [0.5, 1.0]
    assert [a.attempt for a in r.attempts] == [1, 2, 3, 1]


@pytest.mark.parametrize(
    "failure",
    [
        json_response(408, err()),
        json_response(409, err()),
        json_response(500, err()),
        json_response(502, "<html><body>Bad gateway</body></html>"),
        json_response(503, err()),
        json_response(504, err()),
        json_response(524, err()),
        APIConnectionError("connection reset"),
        APITimeoutError("read timed out"),
        json_response(200, b'{"id": "x", "choi'),
        json_response(200, b""),
    ],
)
def test_transient_failures_are_retried_with_backoff(failure: Any) -> None:
    """Timeouts, resets, 408/409/5xx and a 2xx with a broken body are retried on the same model."""
    client, transport, clock = make([failure, ok()])
    r = create(client)
    assert transport.models == ["m1", "m1"]
    assert clock.sleeps == [0.5]
    assert r.attempts[0].decision == "retry" and r.attempts[0].error


def test_whole_chain_failing_raises_the_last_error_with_the_full_history() -> None:
    """The last model's error class is raised, carrying every attempt on every model."""
    script = [json_response(503, err())] * 3 + [APIConnectionError("reset")] * 3
    client, transport, clock = make(list(script), fallback_models=["m2"])
    with pytest.raises(APIConnectionError) as info:
        create(client)
    attempts = info.value.attempts
    assert [(a.model, a.attempt) for a in attempts] == [
        ("m1", 1),
        ("m1", 2),
        ("m1", 3),
        ("m2", 1),
        ("m2", 2),
        ("m2", 3),
    ]
    assert [a.decision for a in attempts] == [
        "retry",
        "retry",
        "fallback",
        "retry",
        "retry",
        "raise",
    ]
    assert [a.status for a in attempts] == [503, 503, 503, None, None, None]
    assert clock.sleeps == [0.5, 1.0, 0.5, 1.0]


@pytest.mark.parametrize(
    ("header", "requests_sent"), [("false", ["m1", "m2"]), ("true", ["m1", "m1"])]
)
def test_x_should_retry_is_obeyed(header: str, requests_sent: List[str]) -> None:
    """x-should-retry: false skips same-model retries; true retries even a 400."""
    status = 503 if header == "false" else 400
    first = json_response(status, err(), {"x-should-retry": header})
    client, transport, _ = make([first, ok()], fallback_models=["m2"])
    create(client)
    assert transport.models == requests_sent


# -- deadline and timeouts -------------------------------------------------------------------


def test_deadline_caps_each_attempt_timeout_and_never_sleeps_past_it() -> None:
    """With 10 s left, the read timeout is cut to 10 s, and an 8 s wait past it is not taken."""
    clock = FakeClock()
    transport = ScriptedTransport(
        [
            json_response(503, err(), {"retry-after": "4"}),
            json_response(503, err(), {"retry-after": "8"}),
        ],
        clock=clock,
        latency=3.0,
    )
    client = cometsync.Client(
        api_key=KEY, transport=transport, clock=clock, deadline=10, timeout=Timeout(5, 60)
    )
    with pytest.raises(cometsync.InternalServerError) as info:
        create(client)
    assert transport.timeouts[0] == Timeout(connect=5, read=10)
    assert transport.timeouts[1].read == pytest.approx(3.0)  # 10 - 3 (latency) - 4 (wait)
    assert clock.sleeps == [4.0]
    assert "deadline" in info.value.attempts[-1].reason


def test_a_timeout_cut_by_the_deadline_names_it_and_records_no_fallback() -> None:
    """When the deadline runs out in an attempt, the error says so and no fallback is claimed."""
    clock = FakeClock()
    transport = ScriptedTransport(
        [cometsync.APITimeoutError("Read timed out. (read timeout=3)")], clock=clock, latency=3.0
    )
    client = cometsync.Client(
        api_key=KEY,
        transport=transport,
        clock=clock,
        deadline=3,
        timeout=Timeout(read=10),
        fallback_models=["h2"],
    )
    with pytest.raises(cometsync.APITimeoutError) as info:
        create(client)
    assert str(info.value).startswith("the call's deadline of 3s ran out: Read timed out")
    assert [a.decision for a in info.value.attempts] == ["raise"]
    assert "deadline" in info.value.attempts[0].reason
    assert transport.models == ["m1"]


def test_per_call_timeout_overrides_the_client_timeout() -> None:
    """create(timeout=...) applies to that call's attempts only."""
    client, transport, _ = make([ok(), ok()], timeout=30)
    create(client, timeout=2.5)
    create(client)
    assert transport.timeouts == [Timeout(2.5, 2.5), Timeout(30, 30)]


# -- passthrough --------------------------------------------------------------------------------


def test_openai_parameters_pass_through_and_fallback_models_is_never_sent() -> None:
    """Every OpenAI keyword reaches the body unchanged; the chain override stays local."""
    client, transport, _ = make(
        [json_response(404, err("model_not_found")), ok()], fallback_models=["x"]
    )
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    create(
        client,
        fallback_models=["m9"],
        temperature=0.2,
        tools=tools,
        response_format={"type": "json_object"},
        extra_body={"provider": {"order": ["a"]}},
        extra_headers={"X-Trace": "t1"},
    )
    assert transport.models == ["m1", "m9"]
    body = transport.bodies[1]
    assert body["temperature"] == 0.2 and body["tools"] == tools
    assert body["response_format"] == {"type": "json_object"}
    assert body["provider"] == {"order": ["a"]}
    assert "fallback_models" not in body
    assert transport.requests[0].headers["X-Trace"] == "t1"


def test_a_model_repeated_in_the_chain_is_tried_once() -> None:
    """Listing the primary again among the fallbacks does not double its attempts."""
    client, transport, _ = make([json_response(404, err("model_not_found")), ok()])
    create(client, fallback_models=["m1", "m2"])
    assert transport.models == ["m1", "m2"]


def test_requests_carry_auth_and_json_headers() -> None:
    """The key goes in the Authorization header and nowhere else."""
    client, transport, _ = make([ok()])
    create(client)
    req = transport.requests[0]
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.url == "https://api.cometapi.com/v1/chat/completions"
    assert KEY not in repr(req)


# -- the API key never leaks -----------------------------------------------------------------


def test_the_api_key_never_appears_in_repr_errors_attempts_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Even when the server echoes the key back, no output shows it."""
    caplog.set_level(logging.DEBUG)
    echo = err(None, f"invalid key {KEY}")
    client, _, _ = make([json_response(503, echo), json_response(401, echo)])
    with pytest.raises(cometsync.AuthenticationError) as info:
        create(client)
    texts = [repr(client), str(info.value), repr(info.value), info.value.message]
    texts.append(str(info.value.body))
    texts += [repr(a) for a in info.value.attempts]
    texts += [r.getMessage() for r in caplog.records]
    assert caplog.records, "attempts should be logged"
    assert all(KEY not in t for t in texts)


# -- observers -------------------------------------------------------------------------------


def test_on_attempt_sees_every_attempt_and_its_failure_does_not_lose_the_result() -> None:
    """The hook gets each attempt after its decision; a raising hook is logged, not fatal."""
    seen: List[cometsync.Attempt] = []

    def hook(a: cometsync.Attempt) -> None:
        seen.append(a)
        raise RuntimeError("observer bug")

    client, _, _ = make([json_response(503, err()), ok()], on_attempt=hook)
    r = create(client)
    assert r.choices[0].message.content == "fine"
    assert [(a.status, a.decision, a.delay) for a in seen] == [
        (503, "retry", 0.5),
        (200, "success", None),
    ]


def test_every_attempt_is_logged_with_route_model_status_and_latency(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The cometsync logger gets one line per attempt."""
    caplog.set_level(logging.DEBUG, logger="cometsync")
    client, _, _ = make([json_response(429, err()), ok()])
    create(client)
    lines = [r.getMessage() for r in caplog.records if r.name == "cometsync"]
    assert len(lines) == 2
    assert (
        "/v1/chat/completions" in lines[0] and "model=m1" in lines[0] and "status=429" in lines[0]
    )
    assert "latency=" in lines[1]


def test_metrics_recorder_aggregates_per_route_model_and_status() -> None:
    """MetricsRecorder counts attempts and gives latency percentiles per key."""
    rec = cometsync.MetricsRecorder()
    clock = FakeClock()
    transport = ScriptedTransport([json_response(429, err()), ok(), ok()], clock=clock, latency=0.2)
    client = cometsync.Client(api_key=KEY, transport=transport, clock=clock, on_attempt=rec)
    create(client)
    create(client)
    rows = {(r["model"], r["status"]): r for r in rec.snapshot()}
    assert rows[("m1", 200)]["count"] == 2 and rows[("m1", 429)]["count"] == 1
    assert rows[("m1", 200)]["p50"] == pytest.approx(0.2)
    assert rec.decisions() == {"retry": 1, "success": 2}
    assert "m1" in rec.summary()


# -- configuration ---------------------------------------------------------------------------


def test_environment_supplies_key_and_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """COMETAPI_KEY and COMETAPI_BASE_URL are the defaults."""
    monkeypatch.setenv("COMETAPI_KEY", "sk-env")
    monkeypatch.setenv("COMETAPI_BASE_URL", "http://127.0.0.1:9/v1/")
    transport = ScriptedTransport([ok()])
    client = cometsync.Client(transport=transport)
    create(client)
    assert transport.requests[0].url == "http://127.0.0.1:9/v1/chat/completions"
    assert transport.requests[0].headers["Authorization"] == "Bearer sk-env"


def test_with_options_changes_settings_and_shares_the_transport() -> None:
    """A with_options copy has its own policy but the same transport; the original is untouched."""
    client, transport, clock = make([json_response(503, err()), json_response(503, err())])
    strict = client.with_options(max_retries=0, fallback_models=[])
    with pytest.raises(cometsync.InternalServerError):
        create(strict)
    assert len(transport.requests) == 1
    assert client.retry.max_retries == 2 and strict.retry.max_retries == 0
    assert strict.max_workers == client.max_workers


def test_close_releases_what_the_client_owns_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """close() closes the client's own transport once, never a caller's transport or session."""
    closed: List[object] = []
    monkeypatch.setattr(requests.Session, "close", lambda self: closed.append(self))
    monkeypatch.setattr(cometsync.Urllib3Transport, "close", lambda self: closed.append(self))
    with cometsync.Client(api_key=KEY) as own:
        pass
    own.close()
    assert len(closed) == 1
    assert isinstance(closed[0], cometsync.Urllib3Transport)
    mine = requests.Session()
    cometsync.Client(api_key=KEY, session=mine).close()
    assert mine not in closed
    client, transport, _ = make([])
    client.close()
    assert not transport.closed


def test_a_closed_client_refuses_calls() -> None:
    """Calling a closed client is a clear error, not a hang or an obscure pool failure."""
    client, _, _ = make([])
    client.close()
    with pytest.raises(cometsync.ClientClosedError, match="closed") as info:
        create(client)
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, cometsync.CometError)


def test_models_list_parses_the_list_object() -> None:
    """GET /v1/models gives Model records; a broken body is retried like any call."""
    body = {
        "object": "list",
        "data": [{"id": "a", "object": "model", "owned_by": "x"}, {"id": "b"}],
    }
    client, transport, clock = make(
        [json_response(200, {"data": "broken"}), json_response(200, body)]
    )
    models = client.models.list()
    assert [m.id for m in models] == ["a", "b"] and models[0].owned_by == "x"
    assert transport.requests[0].method == "GET" and transport.requests[0].body is None
    assert clock.sleeps == [0.5]


def test_client_is_safe_to_share_between_threads() -> None:
    """Many threads calling one client each get their own answer and history."""

    class Echo:
        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.count = 0

        def send(self, request: cometsync.HTTPRequest, timeout: Timeout) -> cometsync.Response:
            import json

            body = json.loads(request.body or b"{}")
            with self.lock:
                self.count += 1
                fail = self.count % 3 == 0
            if fail:
                return json_response(503, err())
            return json_response(200, completion_body(body["messages"][0]["content"]))

        def close(self) -> None:
            pass

    client = cometsync.Client(
        api_key=KEY,
        transport=Echo(),
        clock=FakeClock(),
        retry=RetryPolicy(max_retries=5, backoff=cometsync.FullJitter(rng=random.Random(1))),
        # A third of all answers fail: the default retry budget would rightly refuse retries.
        protections=cometsync.Protections.off(),
    )

    def one(i: int) -> Optional[str]:
        r = client.chat.completions.create(
            model="m1", messages=[{"role": "user", "content": str(i)}]
        )
        return r.choices[0].message.content

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(300)))
    assert results == [str(i) for i in range(300)]


def test_public_names_are_sorted_and_importable() -> None:
    """__all__ is sorted (the house rule) and every name in it exists."""
    names = list(cometsync.__all__)
    assert names == sorted(names)
    assert all(hasattr(cometsync, n) for n in names)
    for contract in (
        "Client",
        "RetryPolicy",
        "FullJitter",
        "EqualJitter",
        "DecorrelatedJitter",
        "Exponential",
        "Timeout",
        "Attempt",
        "MetricsRecorder",
        "RateLimitError",
        "APITimeoutError",
        "UnprocessableEntityError",
        "ConfigError",
    ):
        assert contract in names


def test_exception_tree_matches_the_contract() -> None:
    """The documented hierarchy holds (openai-python names)."""
    c = cometsync
    assert issubclass(c.ConfigError, c.CometError) and issubclass(c.ConfigError, ValueError)
    assert issubclass(c.APIError, c.CometError)
    assert issubclass(c.APITimeoutError, c.APIConnectionError)
    assert issubclass(c.APIConnectionError, c.APIError)
    for sub in (
        c.BadRequestError,
        c.AuthenticationError,
        c.PermissionDeniedError,
        c.NotFoundError,
        c.UnprocessableEntityError,
        c.RateLimitError,
        c.InternalServerError,
    ):
        assert issubclass(sub, c.APIStatusError) and issubclass(sub, c.APIError)


def test_client_max_retries_is_the_openai_style_shortcut() -> None:
    """Client(max_retries=4) keeps the default backoff with four retries per model."""
    client = cometsync.Client(api_key=KEY, max_retries=4, transport=ScriptedTransport([]))
    assert client.retry.max_retries == 4
    assert client.retry.backoff == cometsync.RetryPolicy().backoff
