"""Attempt.queued (time held in the client) apart from latency, and model-less requests."""

from __future__ import annotations

import contextlib
from typing import Any, List

import cometsync
from cometsync import MetricsRecorder, Protections, RetryPolicy
from cometsync.testing import FakeClock, ScriptedTransport, completion_body, json_response

KEY = "sk-test-SECRET-queued"
MSGS = [{"role": "user", "content": "hi"}]


def ok(model: str = "m1") -> Any:
    return json_response(200, completion_body("fine", model=model))


def busy(retry_after: str) -> Any:
    body = {"error": {"message": "slow down", "code": "rate_limit"}}
    return json_response(429, body, headers={"Retry-After": retry_after})


def test_a_limiter_hold_is_queued_time_not_latency() -> None:
    """A send held by a server's Retry-After records the wait as queued, the exchange as latency."""
    clock = FakeClock()
    transport = ScriptedTransport([busy("0.5"), ok("m2"), ok()], clock=clock, latency=0.2)
    seen: List[cometsync.Attempt] = []
    client = cometsync.Client(
        api_key=KEY,
        transport=transport,
        clock=clock,
        fallback_models=["m2"],
        retry=RetryPolicy(max_retries=0),
        on_attempt=seen.append,
    )
    first = client.chat.completions.create(model="m1", messages=MSGS)  # 429 on m1, then m2
    assert [a.model for a in first.attempts] == ["m1", "m2"]
    assert [a.queued for a in first.attempts] == [0.0, 0.0]
    # m1 is held for 0.5 s from the 429's arrival; 0.2 s of it went on m2's exchange.
    second = client.chat.completions.create(model="m1", messages=MSGS)
    (attempt,) = second.attempts
    assert abs(attempt.queued - 0.3) < 1e-9
    assert abs(attempt.latency - 0.2) < 1e-9
    assert attempt.to_dict()["queued"] == attempt.queued
    assert seen[-1] == attempt


def test_waiting_for_a_cooling_chain_is_queued_time() -> None:
    """When the whole chain cools down, the wait for a model to come back is the send's queued."""
    clock = FakeClock()
    fail = json_response(500, {"error": {"message": "down", "code": None}})
    transport = ScriptedTransport([fail] * 5 + [ok()], clock=clock, latency=0.1)
    client = cometsync.Client(
        api_key=KEY, transport=transport, clock=clock, retry=RetryPolicy(max_retries=0)
    )
    for _ in range(5):  # five failures in a row: m1 cools down for 5 s
        with contextlib.suppress(cometsync.APIError):
            client.chat.completions.create(model="m1", messages=MSGS)
    result = client.chat.completions.create(model="m1", messages=MSGS)
    (attempt,) = result.attempts
    assert attempt.queued > 4.0 and abs(attempt.latency - 0.1) < 1e-9


def test_metrics_recorder_reports_queued_apart_from_latency() -> None:
    """MetricsRecorder keeps queued samples in their own snapshot, and its summary shows both."""
    recorder = MetricsRecorder()
    record = cometsync.Attempt(
        model="m1", route="/v1/chat/completions", status=200, latency=0.01, attempt=1, queued=0.25
    )
    recorder(record)
    (latency,) = recorder.snapshot()
    (queued,) = recorder.queued_snapshot()
    assert latency["p50"] == 0.01 and queued["p50"] == 0.25
    assert "queued p50" in recorder.summary() and "250.0ms" in recorder.summary()


def test_model_less_requests_stay_out_of_the_limiter_and_the_budget() -> None:
    """Catalog and models requests leave no 'None' model in stats and count no budget call."""
    catalog = {"data": [{"id": "m1", "pricing": {"input": 1.0, "output": 2.0}}]}
    models = {"object": "list", "data": [{"id": "m1"}]}
    transport = ScriptedTransport(
        [
            json_response(503, {"error": "busy"}),
            json_response(200, catalog),
            json_response(200, models),
            ok(),
        ]
    )
    client = cometsync.Client(
        api_key=KEY, transport=transport, clock=FakeClock(), protections=Protections()
    )
    client.catalog()
    client.models.list()
    stats = client.stats()
    assert stats["limiter"] == {} and stats["cooldowns"] == {}
    assert (stats["budget"]["calls"], stats["budget"]["retries"]) == (0, 0)
    client.chat.completions.create(model="m1", messages=MSGS)
    stats = client.stats()
    assert list(stats["limiter"]) == ["m1"] and stats["budget"]["calls"] == 1
