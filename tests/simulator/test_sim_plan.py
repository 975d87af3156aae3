"""The plan of a reply (script, outage, load, faults, latency), through Core with explicit times."""

from __future__ import annotations

from typing import Any, List

import pytest

from simulator import Core

from .sim_helpers import chat


def test_script_steps_are_served_in_order_then_normal_behaviour() -> None:
    """A script's steps answer the first requests in order, then the model answers 200."""
    core = Core({"models": {"m1": {"script": [{"status": 429, "retry_after": 1}, 503, 200]}}})
    replies = [chat(core, now=float(i)) for i in range(5)]
    assert [r.status for r in replies] == [429, 503, 200, 200, 200]
    assert replies[0].headers["retry-after"] == "1"
    assert [r.cause for r in replies] == ["script", "script", "script", "ok", "ok"]


def test_scripted_error_uses_its_code_message_and_retry_after_ms() -> None:
    """A scripted step's code, message and retry_after_ms reach the envelope and headers."""
    step = {"status": 429, "code": "insufficient_quota", "message": "quota", "retry_after_ms": 250}
    reply = chat(Core({"models": {"m1": {"script": [step]}}}))
    err = reply.payload["error"]
    assert err["code"] == "insufficient_quota" and err["type"] == "comet_api_error"
    assert err["message"].startswith("quota (request id: ")
    assert reply.headers["x-request-id"] in err["message"]
    assert reply.headers["retry-after-ms"] == "250" and "retry-after" not in reply.headers


def test_outage_answers_its_status_only_inside_its_window() -> None:
    """An outage window [2, 8) answers 503 inside and 200 outside, by the time passed in."""
    core = Core({"models": {"m1": {"outages": [{"start": 2, "end": 8}]}}})
    core.set_origin(100.0)
    statuses = [chat(core, now=100.0 + t).status for t in (0, 1.99, 2, 5, 7.99, 8, 20)]
    assert statuses == [200, 200, 503, 503, 503, 200, 200]


def test_reset_restarts_the_time_origin_of_outages() -> None:
    """After a reset at t, the outage window counts from t again."""
    core = Core({"models": {"m1": {"outages": [{"start": 2, "end": 8}]}}})
    core.set_origin(0.0)
    assert chat(core, now=10.0).status == 200
    core.reset(10.0)
    assert chat(core, now=13.0).status == 503


def test_same_seed_same_requests_give_same_statuses_bodies_and_delays() -> None:
    """Two fresh cores with one seed answer one request sequence identically."""

    def run(seed: int) -> List[Any]:
        core = Core("flaky", seed=seed)
        out = []
        for i in range(300):
            r = chat(core, now=i * 0.01, model="gpt-4o-mini", content=f"q{i % 7}")
            out.append((r.status, r.fault, r.body, r.latency))
        return out

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_reset_restores_the_random_state_and_script_positions() -> None:
    """After reset, the same requests get the same answers as from fresh."""
    core = Core(
        {
            "seed": 3,
            "models": {
                "m1": {
                    "script": [500],
                    "faults": [{"status": 503, "rate": 0.3}],
                    "latency_ms": {"dist": "uniform", "low": 1, "high": 9},
                }
            },
        }
    )
    first = [(r.status, r.latency) for r in (chat(core, now=i) for i in range(50))]
    core.reset(100.0)
    again = [(r.status, r.latency) for r in (chat(core, now=100 + i) for i in range(50))]
    assert first == again
    assert first[0][0] == 500 and any(s == 503 for s, _ in first)


def test_fault_rates_are_respected_statistically() -> None:
    """A 20% fault fires on roughly a fifth of 5,000 requests."""
    core = Core({"models": {"m1": {"faults": [{"status": 503, "rate": 0.2}]}}}, seed=5)
    n = sum(chat(core, now=i).status == 503 for i in range(5000))
    assert 850 < n < 1150


def test_stream_token_delays_and_time_to_first_token() -> None:
    """A stream's head goes at once, its first token after ttft_ms, the next token_ms apart."""
    core = Core({"models": {"m1": {"latency_ms": 500, "ttft_ms": 30, "token_ms": 5}}})
    reply = chat(core, stream=True)
    delays = [d for d, _ in reply.chunks or []]
    assert reply.latency == 0.0
    assert delays[0] == pytest.approx(0.030) and delays[1] == 0.0 and delays[-1] == 0.0
    assert set(delays[2:-1]) == {0.005}
    assert chat(core).latency == pytest.approx(0.5)
    plain = Core({"models": {"m1": {"latency_ms": 40, "token_ms": 5}}})
    without_ttft = chat(plain, stream=True)
    assert without_ttft.latency == pytest.approx(0.040)
    assert [d for d, _ in without_ttft.chunks or []][:2] == [0.0, 0.005]


def test_load_above_capacity_slows_and_fails_requests() -> None:
    """Beyond capacity, latency grows with requests in flight and failures appear."""
    core = Core(
        {"models": {"m1": {"latency_ms": 10, "load": {"capacity": 2, "failure_slope": 0.5}}}},
        seed=1,
    )
    calm = chat(core)
    assert calm.latency == pytest.approx(0.010)
    held = [chat(core, finish=False) for _ in range(40)]
    assert held[-1].latency > 5 * calm.latency
    assert sum(r.status == 503 for r in held) > 10
    assert {r.cause for r in held if r.status == 503} == {"load"}
    for r in held:
        core.finish(r, 1.0)
    assert core.in_flight("m1") == 0
    assert chat(core).latency == pytest.approx(0.010)
