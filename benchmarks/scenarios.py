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

from cometsync._flow import CallSpec
from cometsync._types import ChatCompletion, Timeout
from cometsync.resources.chat import _parse_completion
from simulator.core import Core
from simulator.scenario import parse_scenario
from simulator.virtual import CoreServer, Engine, Task

from .strategies import Strategy

__all__ = ["SCENARIOS", "Scenario", "run_point", "run_strategy"]

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
        title="one API key limited to 300 requests/min (token bucket, truthful Retry-After); "
        "2.5 calls/s and a burst of 500 calls in 2 s at t=60 s",
        simulator={
            "models": {mid: _model(mid, latency_ms=_LATENCY) for mid in _PRICES},
            "rate_limits": {"rpm": 300},
        },
        chain=tuple(_PRICES),
        rate=2.5,
        duration=180.0,
        bursts=((60.0, 2.0, 500),),
        trigger=(60.0, 62.0),
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
    clock = engine.clock
    factory, guards = strategy.start(clock)
    chain = scenario.chain[:1] if strategy.single_model else scenario.chain
    for index, at in enumerate(arrivals):
        rng = random.Random(f"{seed}:{index}")
        flow = factory(_SPEC, chain, rng, clock, scenario.timeout)
        engine.spawn(flow, server, at=at, tag=index, guards=guards)
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
    # When the chain's first model is in use again: the first call after the trigger that it
    # answered (a one-model chain has nothing else to use, so it says nothing there).
    primary = scenario.chain[0]
    back = [
        x.started - trigger_end
        for x in after
        if x.ok and getattr(x.result, "model", None) == primary
    ]
    return {
        "success_after_trigger": round(sum(x.ok for x in after) / len(after), 4) if after else None,
        "recovered_after_s": recovered,
        "primary_back_after_s": round(min(back), 3) if back and len(scenario.chain) > 1 else None,
    }


def run_point(scenario: Scenario, strategy: Strategy, seed: Any, runs: int) -> Dict[str, Any]:
    """``run_strategy`` over seeds ``seed:0 .. seed:runs-1``, numbers averaged over runs."""
    rows = [run_strategy(scenario, strategy, f"{seed}:{run}") for run in range(runs)]
    out: Dict[str, Any] = dict(rows[0])
    for key, value in rows[0].items():
        if key == "attempts_by_status":
            merged: Dict[str, float] = {}
            for row in rows:
                for status, count in row[key].items():
                    merged[status] = merged.get(status, 0) + count / runs
            out[key] = {k: round(v, 1) for k, v in sorted(merged.items())}
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [row[key] for row in rows]
            if all(isinstance(v, (int, float)) for v in values):
                out[key] = round(sum(values) / runs, 6 if key.startswith("cost") else 4)
            else:
                out[key] = None
    out["runs"] = runs
    return out


def _job(job: Tuple[str, int, Any, int]) -> Dict[str, Any]:
    from .strategies import all_strategies

    name, index, seed, runs = job
    return run_point(SCENARIOS[name], all_strategies()[index], seed, runs)


def compare(name: str, seed: Any, runs: int, workers: int = 1) -> List[Dict[str, Any]]:
    """One row per strategy of ``all_strategies()``, in that order; same numbers at any
    ``workers``, since each (strategy, run) depends only on its seed."""
    from .strategies import all_strategies

    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    jobs = [(name, i, seed, runs) for i in range(len(all_strategies()))]
    if workers > 1:
        import multiprocessing

        with multiprocessing.Pool(workers) as pool:
            return pool.map(_job, jobs, chunksize=1)
    return [_job(job) for job in jobs]


_COLUMNS = (
    ("strategy", "strategy"),
    ("success", "success_rate"),
    ("amplif.", "amplification"),
    ("att/success", "attempts_per_success"),
    ("makespan s", "makespan_s"),
    ("p50 s", "p50_s"),
    ("p99 s", "p99_s"),
    ("cost $/1k ok", "cost_per_success_usd"),
    ("ok after trigger", "success_after_trigger"),
    ("primary back s", "primary_back_after_s"),
)


def table(rows: Sequence[Dict[str, Any]]) -> str:
    """The metrics table, then attempts by status."""
    from ._report import format_table

    body = []
    for row in rows:
        values = [row.get(key) for _, key in _COLUMNS]
        cost = row.get("cost_per_success_usd")
        values[7] = None if cost is None else round(cost * 1000, 4)
        body.append(values)
    statuses = sorted({s for row in rows for s in row["attempts_by_status"]}, key=_status_key)
    by_status = [
        [row["strategy"]] + [row["attempts_by_status"].get(s, 0) for s in statuses] for row in rows
    ]
    return (
        format_table([h for h, _ in _COLUMNS], body)
        + "\n\nattempts by status (per run):\n"
        + format_table(["strategy", *statuses], by_status)
    )


def _status_key(status: str) -> Tuple[int, str]:
    return (0, status) if status.isdigit() else (1, status)


def verdict(rows: Sequence[Dict[str, Any]], subject: str = "cometsync-default") -> List[str]:
    """Does ``subject`` beat each baseline on success rate, amplification, attempts per success?

    Amplification (attempts per call) cannot go below 1.00, which a baseline that never
    retries reaches while losing the calls it gives up on; attempts per *successful* call is
    printed beside it because it charges those lost calls.
    """
    from .strategies import BASELINES

    by_name = {row["strategy"]: row for row in rows}
    mine = by_name[subject]
    lines = []
    for base in BASELINES:
        other = by_name[base.name]
        parts = []
        for label, key, higher in (
            ("success", "success_rate", True),
            ("amplification", "amplification", False),
            ("attempts/success", "attempts_per_success", False),
        ):
            verdict_word = _compare(mine[key], other[key], higher=higher)
            parts.append(f"{label} {mine[key]:.3f} vs {other[key]:.3f} ({verdict_word})")
        lines.append(f"{subject} vs {base.name}: " + ", ".join(parts))
    return lines


def _compare(mine: float, other: float, *, higher: bool) -> str:
    if abs(mine - other) < 1e-9:
        return "tie"
    return "better" if (mine > other) == higher else "WORSE"


def plot(rows: Sequence[Dict[str, Any]], path: str, title: str) -> None:
    """Bars per strategy: success rate and amplification side by side."""
    from ._report import need_matplotlib

    plt = need_matplotlib()
    names = [row["strategy"] for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = ["#999999" if not n.startswith("cometsync") else "#2a7ab0" for n in names]
    left.barh(names, [row["success_rate"] for row in rows], color=colors)
    left.set(title="Success rate (higher is better)", xlim=(0, 1))
    right.barh(names, [row["amplification"] for row in rows], color=colors)
    right.set(title="Amplification: attempts per call (lower is better)")
    for axis in (left, right):
        axis.invert_yaxis()
        axis.grid(True, axis="x", alpha=0.3)
    right.set_yticklabels([])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
