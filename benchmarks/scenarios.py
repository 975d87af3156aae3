"""The fault-model scenarios: ``gateway``, ``outage`` and ``overload``, in virtual time.

Each scenario is a simulator scenario (the same data the socket server takes), a model chain
and an open-loop arrival schedule: calls arrive on their own (Poisson, plus a burst where the
scenario has one), as from many independent users, whatever the earlier calls are doing. Every
strategy faces the same arrivals and the same fault model; each call is one flow driven by the
virtual-time engine against ``simulator.core.Core``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from simulator.core import Core
from simulator.scenario import parse_scenario

from cometsync._client import _parse_completion
from cometsync._flow import CallSpec
from cometsync._types import ChatCompletion, Timeout
from simulator.virtual import CoreServer, Engine, Task

from .strategies import Strategy

__all__ = ["SCENARIOS", "Scenario", "run_strategy"]

_PRICES = {  # USD per million tokens (input, output), as in the simulator's catalog
    "gpt-4o-mini": {"input": 0.15, "output": 0.6},
    "claude-3-5-haiku-latest": {"input": 0.8, "output": 4.0},
    "gemini-2.0-flash": {"input": 0.1, "output": 0.4},
}
_SPEC: CallSpec[ChatCompletion] = CallSpec(
    method="POST",
    path="/chat/completions",
    route="/v1/chat/completions",
    parse=_parse_completion,
    body={
        "messages": [{"role": "user", "content": "Summarize CometAPI in one sentence."}],
        "max_tokens": 64,
    },
)


@dataclass(frozen=True)
class Scenario:
    """One benchmark setting.

    Attributes:
        name: the CLI name.
        title: one line saying what happens.
        simulator: the simulator scenario (plain data, as for ``python -m simulator``).
        chain: the models, in fallback order (single-model strategies use the first).
        rate: steady arrivals per second.
        duration: seconds of arrivals.
        bursts: ``(start, seconds, calls)``: extra calls spread evenly over a window.
        timeout: the per-attempt timeout every strategy uses.
        trigger: ``(start, end)`` of the scenario's trouble, for the report.
    """

    name: str
    title: str
    simulator: Dict[str, Any]
    chain: Tuple[str, ...]
    rate: float
    duration: float
    bursts: Tuple[Tuple[float, float, int], ...] = ()
    timeout: Timeout = field(default_factory=lambda: Timeout(connect=5.0, read=30.0))
    trigger: Optional[Tuple[float, float]] = None

    def scaled(self, factor: float) -> Scenario:
        """A shorter version (``--quick``): the timeline shrinks, the rates stay."""
        return Scenario(
            self.name,
            self.title,
            self.simulator,
            self.chain,
            self.rate,
            self.duration * factor,
            tuple((s * factor, w, int(n * factor) or 1) for s, w, n in self.bursts),
            self.timeout,
            None if self.trigger is None else (self.trigger[0] * factor, self.trigger[1] * factor),
        )

    def arrivals(self, rng: random.Random) -> List[float]:
        """Arrival times: Poisson at ``rate`` over ``duration``, plus the bursts."""
        times: List[float] = []
        t = rng.expovariate(self.rate)
        while t < self.duration:
            times.append(t)
            t += rng.expovariate(self.rate)
        for start, width, calls in self.bursts:
            times.extend(start + width * i / calls for i in range(calls))
        return sorted(times)


def _model(mid: str, **extra: Any) -> Dict[str, Any]:
    return {"pricing": dict(_PRICES[mid]), **extra}


_LATENCY = {"dist": "lognormal", "median": 800, "sigma": 0.3}

SCENARIOS: Dict[str, Scenario] = {
    "gateway": Scenario(
        name="gateway",
        title="one API key limited to 600 requests/min (truthful Retry-After); "
        "6 calls/s and a burst of 400 calls in 2 s at t=30 s",
        simulator={
            "models": {mid: _model(mid, latency_ms=_LATENCY) for mid in _PRICES},
            "rate_limits": {"rpm": 600},
        },
        chain=tuple(_PRICES),
        rate=6.0,
        duration=120.0,
        bursts=((30.0, 2.0, 400),),
        trigger=(30.0, 32.0),
    ),
    "outage": Scenario(
        name="outage",
        title="three-model chain; the primary answers 503 from t=30 s to t=90 s, then recovers",
        simulator={
            "models": {
                "gpt-4o-mini": _model(
                    "gpt-4o-mini",
                    latency_ms=_LATENCY,
                    outages=[{"start": 30, "end": 90, "status": 503, "latency_ms": 50}],
                ),
                "claude-3-5-haiku-latest": _model("claude-3-5-haiku-latest", latency_ms=_LATENCY),
                "gemini-2.0-flash": _model("gemini-2.0-flash", latency_ms=_LATENCY),
            }
        },
        chain=tuple(_PRICES),
        rate=5.0,
        duration=150.0,
        trigger=(30.0, 90.0),
    ),
    "overload": Scenario(
        name="overload",
        title="one model whose latency and 503s grow above 16 requests in flight, at ~60% "
        "load; it drops every request (503) from t=40 s to t=45 s: does traffic recover?",
        simulator={
            "models": {
                "gpt-4o-mini": _model(
                    "gpt-4o-mini",
                    latency_ms=_LATENCY,
                    load={"capacity": 16, "latency_slope": 2.0, "failure_slope": 0.6},
                    outages=[{"start": 40, "end": 45, "status": 503, "latency_ms": 20}],
                )
            }
        },
        chain=("gpt-4o-mini",),
        rate=12.0,
        duration=180.0,
        trigger=(40.0, 45.0),
    ),
}


def _percentile(values: Sequence[float], q: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def run_strategy(scenario: Scenario, strategy: Strategy, seed: Any) -> Dict[str, Any]:
    """Run every arrival of ``scenario`` with ``strategy``; the row of metrics.

    The arrivals and the fault model's draws depend only on ``seed`` (not on the strategy),
    and each call's own randomness (backoff jitter) on ``seed`` and the call's index.
    """
    arrivals = scenario.arrivals(random.Random(f"{seed}:{scenario.name}:arrivals"))
    core = Core(parse_scenario(scenario.simulator), seed=_int_seed(f"{seed}:core"))
    engine = Engine()
    core.set_origin(0.0)
    server = CoreServer(core)
    factory = strategy.start()
    chain = scenario.chain[:1] if strategy.single_model else scenario.chain
    clock = engine.clock
    for index, at in enumerate(arrivals):
        rng = random.Random(f"{seed}:{index}")
        flow = factory(_SPEC, chain, rng, clock, scenario.timeout)
        engine.spawn(flow, server, at=at, tag=index)
    end = engine.run()
    return _metrics(scenario, strategy, engine.tasks, server, end, engine.events)


def _int_seed(text: str) -> int:
    return random.Random(text).getrandbits(63)


def _metrics(
    scenario: Scenario,
    strategy: Strategy,
    tasks: Sequence[Task],
    server: CoreServer,
    end: float,
    events: int,
) -> Dict[str, Any]:
    calls = len(tasks)
    ok = [t for t in tasks if t.ok]
    attempts = sum(t.sends for t in tasks)
    latencies = [t.finished - t.started for t in tasks if t.finished is not None]
    cost = 0.0
    for model, (prompt, completion) in server.billed.items():
        price = scenario.simulator["models"][model]["pricing"]
        cost += (prompt * price["input"] + completion * price["output"]) / 1e6
    row: Dict[str, Any] = {
        "scenario": scenario.name,
        "strategy": strategy.name,
        "calls": calls,
        "success_rate": round(len(ok) / calls, 4) if calls else None,
        "amplification": round(attempts / calls, 3) if calls else None,
        "attempts_per_success": round(attempts / len(ok), 3) if ok else None,
        "makespan_s": round(end, 3),
        "p50_s": _round(_percentile(latencies, 0.50)),
        "p99_s": _round(_percentile(latencies, 0.99)),
        "attempts": attempts,
        "attempts_by_status": dict(sorted(server.statuses.items())),
        "cost_usd": round(cost, 6),
        "cost_per_success_usd": round(cost / len(ok), 8) if ok else None,
        "events": events,
    }
    if scenario.trigger is not None:
        row.update(_recovery(scenario, tasks))
    return row


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 3)


def _recovery(scenario: Scenario, tasks: Sequence[Task]) -> Dict[str, Any]:
    """Success of calls arriving after the trigger ended, and when it came back to 95%."""
    assert scenario.trigger is not None
    trigger_end = scenario.trigger[1]
    after = [t for t in tasks if t.started >= trigger_end]
    window = 5.0
    recovered: Optional[float] = None
    t = trigger_end
    while t < scenario.duration:
        batch = [x for x in after if t <= x.started < t + window]
        if batch and sum(x.ok for x in batch) / len(batch) >= 0.95:
            recovered = round(t - trigger_end, 1)
            break
        t += window
    return {
        "success_after_trigger": round(sum(x.ok for x in after) / len(after), 4) if after else None,
        "recovered_after_s": recovered,
    }

