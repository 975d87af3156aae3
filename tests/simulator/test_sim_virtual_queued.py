"""The virtual-time engine records a send's wait for a limiter slot as the attempt's queued."""

from __future__ import annotations

from typing import Any, List, Optional

from cometsync import AdaptiveLimiter, Attempt, Protections, RetryPolicy, Timeout
from cometsync._flow import CallSpec, Send, call_flow
from cometsync._transport import Response
from simulator.virtual import Engine, Task


class FixedLatency:
    """Answers every send with a 200 after ``latency`` virtual seconds."""

    def __init__(self, latency: float) -> None:
        self.latency = latency

    def submit(self, engine: Engine, task: Task, send: Send) -> None:
        engine.reply(task, Response(200, {}, b"{}"), engine.clock.now + self.latency)


def parse(response: Any, model: Optional[str]) -> Any:
    return response


def test_a_send_parked_for_a_slot_records_queued_apart_from_latency() -> None:
    """With one slot, the second call waits the first's exchange: queued 0.1 s, latency 0.1 s."""
    engine = Engine()
    limiter = Protections(budget=None, limiter=AdaptiveLimiter(ceiling=1), cooldown=None)
    guards = limiter.build(ceiling=1, clock=engine.clock)
    spec: CallSpec[Any] = CallSpec("POST", "/chat/completions", "/v1/chat/completions", parse)
    seen: List[Attempt] = []
    server = FixedLatency(0.1)
    for _ in range(2):
        flow = call_flow(
            spec,
            ["m"],
            RetryPolicy(),
            clock=engine.clock,
            timeout=Timeout(),
            guards=guards,
            on_attempt=seen.append,
        )
        engine.spawn(flow, server, guards=guards)
    engine.run()
    assert [round(a.queued, 9) for a in seen] == [0.0, 0.1]
    assert [round(a.latency, 9) for a in seen] == [0.1, 0.1]


def test_a_model_less_send_takes_no_slot() -> None:
    """A send without a model goes out at once even when the limiter has no slot free."""
    engine = Engine()
    guards = Protections(limiter=AdaptiveLimiter(ceiling=1)).build(ceiling=1, clock=engine.clock)
    spec: CallSpec[Any] = CallSpec("GET", "/models", "/v1/models", parse)
    seen: List[Attempt] = []
    for _ in range(2):
        flow = call_flow(
            spec,
            [None],
            RetryPolicy(),
            clock=engine.clock,
            timeout=Timeout(),
            guards=guards,
            on_attempt=seen.append,
        )
        engine.spawn(flow, FixedLatency(0.1), guards=guards)
    engine.run()
    assert [a.queued for a in seen] == [0.0, 0.0]
    assert engine.clock.now == 0.1
    assert guards.stats()["limiter"] == {}
