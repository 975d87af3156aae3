"""The ``fleet`` scenario: N processes x M threads sharing one API key, in virtual time.

Every simulated process is configured as a user would configure each real one:
``Client(rate_limit=RateLimit(rpm=<the key's limit>))`` with the default protections (retry
budget, adaptive limiter, cooldowns), each with its own state. Each of its M threads makes
calls back to back (a worker with a backlog). All of them share one key whose limit the
simulator enforces (``simulator.ratelimit``: a token bucket of ``rpm`` requests per minute,
Retry-After on each 429).

Three ways to run the same fleet:

- ``per-process``: every protection, the rate limit included, is the process's own (a
  ``MemoryStore`` per process), so N processes that each respect the limit send N times it;
- ``shared``: the rate limit, the server's holds, the breaker and the retry budget live in
  one store every process uses: ``simulator.fleet.ModelledStore``, cometsync's own admission
  model (the decisions Redis's Lua scripts make) with a round trip of ``rtt`` per operation;
- ``shared-learned``: the same, but no process is told the limit (no ``RateLimit``): they
  learn it from the gateway's ``x-ratelimit-limit-requests`` headers, shared in the store.

The simulator's bucket starts with the key's minute-long burst spent (but two seconds'
worth, as ``real-fleet`` leaves it), as for a key already in use; a thread waiting for its
turn wakes up to ``WAKE_JITTER`` late, as a real one does (``simulator.fleet.LateWaker``);
rates are measured from ``warmup`` to ``duration``.
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any, Dict, List, Optional, Sequence

from cometsync._flow import call_flow
from cometsync._policy import RetryPolicy
from cometsync._types import Timeout
from cometsync.guards import Protections
from cometsync.guards.ratelimit import RateLimit
from cometsync.guards.shared import build_guards
from simulator.core import Core
from simulator.fleet import LateWaker, ModelledStore, RoundTripServer, with_round_trips
from simulator.scenario import parse_scenario
from simulator.virtual import CoreServer, Engine, Task

from ._report import format_table
from .scenarios import _SPEC

__all__ = ["MODES", "PROCESSES", "QUICK_PROCESSES", "plot", "run", "run_fleet", "table"]

KEY = "sk-fleet-virtual-0000000000"
MODEL = "gpt-4o-mini"
MODES = ("per-process", "shared", "shared-learned")
PROCESSES = (1, 4, 16, 64)
QUICK_PROCESSES = (1, 4, 16)
#: A Client's default: a call may wait up to max(connect, read) for its turn.
TIMEOUT = Timeout()
#: How late a waiting thread wakes for its turn, at most (``simulator.fleet.LateWaker``).
WAKE_JITTER = 0.001


def _scenario(rpm: int, latency_ms: float, outages: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    model: Dict[str, Any] = {"outages": [dict(o) for o in outages]}
    if latency_ms > 0:
        model["latency_ms"] = {"dist": "lognormal", "median": latency_ms, "sigma": 0.3}
    return {"models": {MODEL: model}, "rate_limits": {"rpm": rpm}}


def _int_seed(text: str) -> int:
    return random.Random(text).getrandbits(63)


def _drain(core: Core, rpm: int) -> None:
    """Spend the key's minute-long burst at t=0 but two seconds' worth, as ``real-fleet`` does."""
    headers = {"authorization": f"Bearer {KEY}"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    for _ in range(rpm - max(2, rpm // 30)):
        reply = core.handle("POST", "/v1/chat/completions", headers, b"", 0.0, request=body)
        core.finish(reply, 0.0)


def _percentile(values: Sequence[float], q: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def run_fleet(
    processes: int,
    threads: int,
    mode: str,
    *,
    rpm: int = 600,
    duration: float = 60.0,
    rtt: float = 0.0003,
    warmup: float = 5.0,
    seed: Any = 0,
    store: Optional[ModelledStore] = None,
    outages: Sequence[Dict[str, Any]] = (),
    latency_ms: float = 800.0,
    timeout: Timeout = TIMEOUT,
) -> Dict[str, Any]:
    """Run one fleet for ``duration`` virtual seconds; its row of metrics.

    Args:
        processes: simulated processes, each with its own protections and client state.
        threads: calls each process runs at once, back to back.
        mode: ``per-process``, ``shared`` or ``shared-learned`` (see the module docstring).
        rpm: the key's limit at the simulator, also each process's ``RateLimit(rpm=)`` (but
            in ``shared-learned``).
        duration: seconds during which threads start new calls (the started ones finish).
        rtt: the shared store's round trip, seconds.
        warmup: rates are measured from here to ``duration``.
        seed: the same seed gives the same numbers.
        store: the shared modes' store (a fresh ``ModelledStore(rtt)`` by default), e.g. one
            that records its operations.
        outages: the model's outages, as in a simulator scenario (none by default).
        latency_ms: the model's median latency (lognormal, sigma 0.3); 0: instant answers.
        timeout: each attempt's; a ``Client`` waits up to ``max(connect, read)`` for a turn.
    """
    if mode not in MODES:
        raise ValueError(f"fleet mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not 0 <= warmup < duration:
        raise ValueError(
            f"the warm-up ({warmup:g} s) must be shorter than the run ({duration:g} s)"
        )
    core = Core(parse_scenario(_scenario(rpm, latency_ms, outages)), seed=_int_seed(f"{seed}:core"))
    core.set_origin(0.0)
    _drain(core, rpm)
    engine = Engine()
    clock = engine.clock
    if mode == "per-process":
        store = None
    elif store is None:
        store = ModelledStore(rtt)
    else:
        rtt = store.rtt
    front = RoundTripServer(CoreServer(core, api_key=KEY), rtt if store is not None else 0.0)
    protections = Protections()
    base = RetryPolicy()
    starts = random.Random(f"{seed}:starts")

    def process(p: int) -> None:
        inner = protections.build(ceiling=threads, clock=clock)
        built = build_guards(
            inner,
            protections,
            api_key=KEY,
            rate_limit=None if mode == "shared-learned" else RateLimit(rpm=rpm),
            shared_state=store,
            shared_namespace="cometsync",
            ceiling=threads,
            clock=clock,
        )
        guards = LateWaker(built, random.Random(f"{seed}:{p}:late"), WAKE_JITTER)

        def start(thread: int, index: int, at: float) -> None:
            rng = random.Random(f"{seed}:{p}:{thread}:{index}")
            policy = dataclasses.replace(base, backoff=base.backoff.with_rng(rng))
            flow = call_flow(_SPEC, (MODEL,), policy, clock=clock, timeout=timeout, guards=guards)
            if store is not None:
                flow = with_round_trips(flow, store, (p, thread))

            def next_call(task: Task) -> None:
                assert task.finished is not None
                if task.finished < duration:
                    start(thread, index + 1, task.finished)

            engine.spawn(flow, front, at=at, tag=(p, thread), on_done=next_call, guards=guards)

        for thread in range(threads):
            start(thread, 0, starts.random())  # processes and threads start within a second

    for p in range(processes):
        process(p)
    end = engine.run()
    row = _metrics(
        engine.tasks, front.arrivals, store, processes, threads, mode, rpm, duration, warmup, rtt
    )
    turn = max(timeout.connect, timeout.read)
    # A Client stops waiting for its turn after the attempt's timeout, the engine does not:
    # these calls would have ended with a timeout (and perhaps a retry) instead.
    row["calls_over_timeout"] = sum(
        1 for t in engine.tasks if t.finished is not None and t.finished - t.started > turn
    )
    row["timeout_s"] = turn
    row["end_s"] = round(end, 3)
    row["events"] = engine.events
    return row


def _metrics(
    tasks: Sequence[Task],
    arrivals: Sequence[Any],
    store: Optional[ModelledStore],
    processes: int,
    threads: int,
    mode: str,
    rpm: int,
    duration: float,
    warmup: float,
    rtt: float,
) -> Dict[str, Any]:
    calls = len(tasks)
    ok = sum(1 for t in tasks if t.ok)
    attempts = sum(t.sends for t in tasks)
    limited = sum(1 for _, label in arrivals if label == "429")
    window = [(t, label) for t, label in arrivals if warmup <= t < duration]
    span = duration - warmup
    per_second = rpm / 60.0
    sent = len(window) / span
    accepted = sum(1 for _, label in window if label == "200") / span
    times = sorted(t for t, _ in window)
    peak, first = 0, 0
    for last, t in enumerate(times):  # the most requests sent within any one second
        while times[first] <= t - 1.0:
            first += 1
        peak = max(peak, last - first + 1)
    latencies = [t.finished - t.started for t in tasks if t.finished is not None]
    p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
    row: Dict[str, Any] = {
        "processes": processes,
        "threads": threads,
        "mode": mode,
        "rpm": rpm,
        "calls": calls,
        "success_rate": round(ok / calls, 4) if calls else None,
        "attempts_per_call": round(attempts / calls, 3) if calls else None,
        "attempts": attempts,
        "429s": limited,
        "429s_per_call": round(limited / calls, 3) if calls else None,
        "sent_vs_limit": round(sent / per_second, 3),
        "accepted_vs_limit": round(accepted / per_second, 3),
        "peak_1s_vs_limit": round(peak / per_second, 3),
        "latency_p50_s": None if p50 is None else round(p50, 3),
        "latency_p99_s": None if p99 is None else round(p99, 3),
        # What a run of real processes (``real-fleet``) counts: requests and 429s from the
        # start of the window, calls that ended by ``duration``.
        "requests_in_window": len(window),
        "429s_in_window": sum(1 for _, label in window if label == "429"),
        "calls_ok_by_end": sum(
            1 for t in tasks if t.ok and t.finished is not None and t.finished < duration
        ),
        "calls_failed_by_end": sum(
            1 for t in tasks if not t.ok and t.finished is not None and t.finished < duration
        ),
        "rtt_ms": rtt * 1000 if store is not None else None,
        "store_ops_per_call": (
            round(sum(store.ops.values()) / calls, 2) if store is not None and calls else None
        ),
    }
    return row


def run(
    processes: Sequence[int],
    threads: int,
    *,
    rpm: int = 600,
    duration: float = 60.0,
    rtt: float = 0.0003,
    warmup: float = 5.0,
    seed: Any = 0,
    latency_ms: float = 800.0,
    timeout: Timeout = TIMEOUT,
) -> List[Dict[str, Any]]:
    """Every fleet size in ``processes``, in every mode: the rows."""
    return [
        run_fleet(
            n,
            threads,
            mode,
            rpm=rpm,
            duration=duration,
            rtt=rtt,
            warmup=warmup,
            seed=seed,
            latency_ms=latency_ms,
            timeout=timeout,
        )
        for n in processes
        for mode in MODES
    ]


def table(rows: Sequence[Dict[str, Any]]) -> str:
    """The rows as a terminal (and Markdown-friendly) table."""
    headers = [
        "processes",
        "threads",
        "state",
        "calls",
        "success",
        "attempts/call",
        "429s",
        "429s/call",
        "sent/limit",
        "accepted/limit",
        "peak 1 s/limit",
        "p50 s",
        "p99 s",
        "> timeout",
        "store ops/call",
    ]
    return format_table(
        headers,
        [
            [
                r["processes"],
                r["threads"],
                r["mode"],
                r["calls"],
                r["success_rate"],
                r["attempts_per_call"],
                r["429s"],
                r["429s_per_call"],
                r["sent_vs_limit"],
                r["accepted_vs_limit"],
                r["peak_1s_vs_limit"],
                r["latency_p50_s"],
                r["latency_p99_s"],
                r["calls_over_timeout"],
                r["store_ops_per_call"],
            ]
            for r in rows
        ],
    )


def plot(rows: Sequence[Dict[str, Any]], path: str, title: str) -> None:
    """Lines per mode against the fleet size: sent rate / limit, and success rate."""
    from ._report import need_matplotlib, series

    plt = need_matplotlib()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    style = {"shared-learned": {"linestyle": "--", "marker": "x"}}  # it overlays "shared"
    for axis, key in ((left, "sent_vs_limit"), (right, "success_rate")):
        for mode, (xs, ys) in series(list(rows), "mode", "processes", key).items():
            axis.plot(xs, ys, label=mode, **style.get(mode, {"marker": "o"}))
    left.set(title="Sent rate / the key's limit (1 is ideal)", xlabel="processes", yscale="log")
    right.set(title="Success rate", xlabel="processes", ylim=(0, 1.05))
    ticks = sorted({row["processes"] for row in rows})
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_xticks(ticks, [str(t) for t in ticks])
        axis.grid(True, alpha=0.3)
        axis.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
