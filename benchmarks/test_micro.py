"""Micro-benchmarks (``make bench``): the per-attempt costs the benchmarks and the client pay.

Not collected by ``make test`` (pytest's testpaths is ``tests``).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from benchmarks.brooker import _CONFLICT, _OK, _SPEC, _TIMEOUT, run_once
from cometsync._backoff import FullJitter
from cometsync._flow import Send, Sleep, call_flow
from cometsync._policy import RetryPolicy, classify
from cometsync.testing import completion_body, json_response
from simulator.virtual import VirtualClock


def test_flow_attempt(benchmark: Any) -> None:
    """One failed attempt and its retry through the real call flow (409, sleep, send)."""
    policy = RetryPolicy(
        max_retries=10**9, backoff=FullJitter(0.01, 2.0).with_rng(random.Random(1))
    )
    flow = call_flow(_SPEC, (None,), policy, clock=VirtualClock(), timeout=_TIMEOUT)
    assert isinstance(next(flow), Send)

    def attempt() -> None:
        assert isinstance(flow.send(_CONFLICT), Sleep)
        flow.send(None)

    benchmark(attempt)


def test_flow_success(benchmark: Any) -> None:
    """A whole call that succeeds at once (start the flow, send, parse, return)."""
    policy = RetryPolicy()
    clock = VirtualClock()

    def call() -> Any:
        flow = call_flow(_SPEC, (None,), policy, clock=clock, timeout=_TIMEOUT)
        next(flow)
        try:
            flow.send(_OK)
        except StopIteration as stop:
            return stop.value
        raise AssertionError("the flow did not finish")

    assert benchmark(call) is _OK


def test_backoff_full_jitter(benchmark: Any) -> None:
    """One full-jitter delay."""
    backoff = FullJitter(0.5, 8.0).with_rng(random.Random(1))
    assert 0 <= benchmark(backoff.delay, 3) <= 2.0


@pytest.mark.parametrize("status", [200, 409, 429, 503])
def test_classify(benchmark: Any, status: int) -> None:
    """Classifying one response of each kind."""
    body = completion_body() if status == 200 else {"error": {"message": "x", "code": "c"}}
    response = json_response(status, body, {"retry-after": "1"})
    policy = RetryPolicy()
    verdict = benchmark(classify, response, policy, model="m", now=0.0)
    assert verdict.ok == (status == 200)


def test_brooker_run(benchmark: Any) -> None:
    """One Brooker run with 50 clients and full jitter on the virtual-time engine."""
    calls, _, _ = benchmark(run_once, 50, "full", "micro")
    assert calls >= 50


def test_in_process_round_trip(benchmark: Any) -> None:
    """One chat call through cometsync on the simulator's in-process adapter (no sockets)."""
    adapter = pytest.importorskip("simulator.adapter")
    import requests

    import cometsync

    session = requests.Session()
    session.mount("http://sim.local/", adapter.SimulatorAdapter("healthy", seed=1))
    client = cometsync.Client(api_key="sk-micro", base_url="http://sim.local/v1", session=session)
    messages = [{"role": "user", "content": "hi"}]
    result = benchmark(client.chat.completions.create, model="gpt-4o-mini", messages=messages)
    assert result.choices
    client.close()
    session.close()


def test_simulator_handle(benchmark: Any) -> None:
    """The fault model planning one chat reply (``Core.handle`` then ``finish``)."""
    core_module = pytest.importorskip("simulator.core")
    core = core_module.Core("healthy", seed=1)
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": "Bearer sk-micro"}

    def handle() -> Any:
        reply = core.handle("POST", "/v1/chat/completions", headers, b"", 0.0, request=request)
        core.finish(reply, 0.0)
        return reply

    assert benchmark(handle).status == 200
