"""Brooker's 2015 optimistic-concurrency experiment, run on cometsync's own call flow.

Setup (AWS Architecture Blog, "Exponential Backoff And Jitter"): one row with a version. Each
client reads the version, then writes conditionally on it; a write that lost the race fails
(a 409 here, which cometsync retries), the client sleeps its backoff and starts over with a
read; each client stops after one successful write. Every network hop (read request, read
reply, write request, write reply) takes ``|Normal(10 ms, sd 2 ms)|``; all clients start at
t = 0; base 5 ms, cap 2 s. "calls" counts write attempts; "time" is when the last event
happens (the last client's successful write reply).

One cometsync ``Send`` is one read-then-write transaction, so the flow's retry loop is exactly
the experiment's "start over with a read".

Base mapping: the blog's envelope is ``base * 2**n`` with n counting retries from 1, so its
first retry waits up to 10 ms; cometsync's is ``base * 2**(n-1)``. The faithful mapping is
therefore ``base = 10 ms`` for exponential, full and equal jitter. Decorrelated jitter does not
use the envelope (``min(cap, U(base, 3 * previous))`` from ``previous = base``), so it keeps the
blog's 5 ms.
"""

from __future__ import annotations

import math
import random
from typing import Any, Dict, Iterator, List, Sequence, Tuple

from cometsync._backoff import (
    Backoff,
    Constant,
    DecorrelatedJitter,
    EqualJitter,
    Exponential,
    FullJitter,
)
from cometsync._flow import CallSpec, Send, call_flow
from cometsync._policy import ResponseLike, RetryPolicy, shared
from cometsync._transport import Response
from cometsync._types import Timeout
from simulator.virtual import Engine, Task

from ._report import format_table, need_matplotlib, series

__all__ = ["STRATEGIES", "BrookerRow", "run_once", "sweep"]

CAP = 2.0
HOP_MEAN = 0.010
HOP_SD = 0.002
_SQRT2 = math.sqrt(2.0)
_TWO_HOPS_MEAN = 2 * HOP_MEAN
_TWO_HOPS_SD = HOP_SD * _SQRT2
_TWOPI = 2.0 * math.pi  # as random.TWOPI
_cos, _sin, _log, _sqrt = math.cos, math.sin, math.log, math.sqrt

#: The blog's five strategies as cometsync backoffs (see the module docstring for the bases).
STRATEGIES: Dict[str, Backoff] = {
    "none": Constant(base=0.0),
    "exponential": Exponential(base=0.010, cap=CAP),
    "full": FullJitter(base=0.010, cap=CAP),
    "equal": EqualJitter(base=0.010, cap=CAP),
    "decorrelated": DecorrelatedJitter(base=0.005, cap=CAP),
}

# The two replies every write gets, the same objects each time: ``shared`` lets the flow keep
# their verdicts instead of classifying the same reply again for every attempt.
_OK = shared(Response(200, {}, b"{}", "sim://row", payload={}))
_CONFLICT_BODY = {"error": {"message": "version changed", "type": "conflict", "code": "conflict"}}
_CONFLICT = shared(Response(409, {}, b"", "sim://row", payload=_CONFLICT_BODY))
_SPEC: CallSpec[ResponseLike] = CallSpec(
    method="POST", path="/row", route="/row", parse=lambda response, model: response
)
_TIMEOUT = Timeout()
# Unlimited retries, as in the experiment: every client writes once in the end.
_FOREVER = 10**9


class BrookerRow:
    """The row store as a virtual-time server: one version, conditional writes.

    A send is a transaction: the read reaches the row after one hop, its reply and the write
    take two more, and the write succeeds only if no other write succeeded in between.
    """

    def __init__(self, engine: Engine, rng: random.Random) -> None:
        self._engine = engine
        self.rng = rng
        self.writes = 0
        self._last_success = -1.0
        # Bound once: used two or four times per attempt, millions of times in a sweep.
        self._random = rng.random
        self._write_cb = self._write
        self._schedule = engine.schedule
        self._reply = engine.reply

    def _hop(self) -> float:
        return abs(self.rng.gauss(HOP_MEAN, HOP_SD))

    def _two_hops(self) -> float:
        # The read reply and the write request, as one draw: the sum of two independent
        # Normal(10, 2) hops is exactly Normal(20, 2*sqrt(2)); abs() never bites at 7 sd.
        return abs(self.rng.gauss(_TWO_HOPS_MEAN, _TWO_HOPS_SD))

    # submit() and _write() draw their normals as ``random.Random.gauss`` does, inlined (a
    # Python call each saved, three per attempt): the same ``random()`` calls in the same
    # order, the same float operations, and the spare normal kept in the Random's own
    # ``gauss_next``, so ``rng.gauss`` elsewhere sees exactly the state it would have.

    def submit(self, engine: Engine, task: Task, send: Send) -> None:
        rng = self.rng
        random_ = self._random
        z = rng.gauss_next  # _hop(): the spare normal, or a new pair
        if z is None:
            x2pi = random_() * _TWOPI
            g2rad = _sqrt(-2.0 * _log(1.0 - random_()))
            z = _cos(x2pi) * g2rad
            w = _sin(x2pi) * g2rad  # _two_hops() takes the pair's spare; none is left
        else:
            x2pi = random_() * _TWOPI  # _two_hops() needs a new pair; its spare is kept
            g2rad = _sqrt(-2.0 * _log(1.0 - random_()))
            w = _cos(x2pi) * g2rad
            rng.gauss_next = _sin(x2pi) * g2rad
        # abs(), as a conditional: the same sum (only -0.0 differs, and it adds as 0.0).
        hop = HOP_MEAN + z * HOP_SD
        read_at = engine.clock.now + (hop if hop >= 0.0 else -hop)
        hops = _TWO_HOPS_MEAN + w * _TWO_HOPS_SD
        self._schedule(read_at + (hops if hops >= 0.0 else -hops), self._write_cb, (task, read_at))

    def _write(self, arg: Tuple[Task, float]) -> None:
        task, read_at = arg
        engine = self._engine
        now = engine.clock.now
        self.writes += 1
        won = self._last_success < read_at  # the version read is still current
        if won:
            self._last_success = now
        rng = self.rng
        z = rng.gauss_next  # _hop()
        if z is None:
            random_ = self._random
            x2pi = random_() * _TWOPI
            g2rad = _sqrt(-2.0 * _log(1.0 - random_()))
            z = _cos(x2pi) * g2rad
            rng.gauss_next = _sin(x2pi) * g2rad
        else:
            rng.gauss_next = None
        hop = HOP_MEAN + z * HOP_SD
        self._reply(task, _OK if won else _CONFLICT, now + (hop if hop >= 0.0 else -hop))


def run_once(clients: int, strategy: str, seed: Any) -> Tuple[int, float, int]:
    """One run: ``(write calls, time of the last event in seconds, engine events)``."""
    net_rng = random.Random(f"{seed}:net")
    backoff = STRATEGIES[strategy].with_rng(random.Random(f"{seed}:backoff"))
    policy = RetryPolicy(max_retries=_FOREVER, backoff=backoff)
    engine = Engine()
    row = BrookerRow(engine, net_rng)
    clock = engine.clock
    for _ in range(clients):
        engine.spawn(call_flow(_SPEC, (None,), policy, clock=clock, timeout=_TIMEOUT), row)
    end = engine.run()
    if not all(task.ok for task in engine.tasks):  # pragma: no cover - a broken flow
        raise RuntimeError("a Brooker client ended without writing")
    return row.writes, end, engine.events


def _runs(job: Tuple[int, str, Any, int, int]) -> Tuple[int, float, int]:
    """Sums of ``run_once`` over runs ``first .. first + count - 1`` of one point."""
    clients, strategy, seed, first, count = job
    calls = events = 0
    elapsed = 0.0
    for run in range(first, first + count):
        c, t, e = run_once(clients, strategy, f"{seed}:{clients}:{strategy}:{run}")
        calls += c
        elapsed += t
        events += e
    return calls, elapsed, events


def _jobs(
    clients: Sequence[int], strategies: Sequence[str], runs: int, seed: Any, chunk: int
) -> Iterator[Tuple[int, str, Any, int, int]]:
    for n in clients:
        for name in strategies:
            for first in range(0, runs, chunk):
                yield n, name, seed, first, min(chunk, runs - first)


def sweep(
    clients: Sequence[int],
    runs: int,
    *,
    strategies: Sequence[str] = tuple(STRATEGIES),
    seed: Any = 0,
    workers: int = 1,
) -> Tuple[List[Dict[str, Any]], int]:
    """Every (clients, strategy) point, averaged over ``runs`` seeded runs.

    Each run's randomness comes only from its own seed (``seed:clients:strategy:run``), so
    splitting the runs across ``workers`` processes gives exactly the numbers of one process.

    Returns:
        The rows ``{"clients", "strategy", "calls", "time_ms"}`` (means over runs), and the
        number of engine events processed.
    """
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    chunk = max(1, min(10, runs))
    jobs = list(_jobs(clients, strategies, runs, seed, chunk))
    if workers > 1:
        import multiprocessing

        # Largest points first so that no worker is left alone with a 190-client tail.
        order = sorted(range(len(jobs)), key=lambda i: -jobs[i][0])
        with multiprocessing.Pool(workers) as pool:
            done = pool.map(_runs, [jobs[i] for i in order], chunksize=1)
        parts = [done[0]] * len(jobs)
        for position, index in enumerate(order):
            parts[index] = done[position]
    else:
        parts = [_runs(job) for job in jobs]
    totals: Dict[Tuple[int, str], List[float]] = {}
    for job, (calls, elapsed, _) in zip(jobs, parts):
        total = totals.setdefault((job[0], job[1]), [0.0, 0.0])
        total[0] += calls
        total[1] += elapsed
    rows = [
        {
            "clients": n,
            "strategy": name,
            "calls": round(total[0] / runs, 2),
            "time_ms": round(total[1] / runs * 1000.0, 2),
        }
        for (n, name), total in totals.items()
    ]
    return rows, sum(part[2] for part in parts)


def table(rows: List[Dict[str, Any]], strategies: Sequence[str]) -> str:
    """Calls and time per client count, one column pair per strategy."""
    by_point = {(row["clients"], row["strategy"]): row for row in rows}
    clients = sorted({row["clients"] for row in rows})
    headers = ["clients"] + [f"{s} calls" for s in strategies] + [f"{s} ms" for s in strategies]
    body = []
    for n in clients:
        body.append(
            [n]
            + [by_point[(n, s)]["calls"] for s in strategies]
            + [by_point[(n, s)]["time_ms"] for s in strategies]
        )
    return format_table(headers, body)


def plot(rows: List[Dict[str, Any]], path: str, title: str) -> None:
    """Two panels, as in the blog: write calls and completion time against clients."""
    plt = need_matplotlib()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for name, (xs, ys) in series(rows, "strategy", "clients", "calls").items():
        left.plot(xs, ys, marker="o", label=name, linewidth=2.5 if name == "full" else 1.5)
    for name, (xs, ys) in series(rows, "strategy", "clients", "time_ms").items():
        right.plot(xs, ys, marker="o", label=name, linewidth=2.5 if name == "full" else 1.5)
    left.set(
        title="Work: write calls (fewer is better)",
        xlabel="contending clients",
        ylabel="calls per run (mean)",
    )
    right.set(
        title="Completion time (lower is better)",
        xlabel="contending clients",
        ylabel="time of the last write, ms (log)",
        yscale="log",
    )
    for axis in (left, right):
        axis.grid(True, alpha=0.3)
        axis.legend(title="backoff")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reference_sweep(
    clients: Sequence[int], runs: int, strategies: Sequence[str], seed: Any
) -> Tuple[List[Dict[str, Any]], int]:
    """The same sweep on the single-purpose reference model (one process)."""
    from .brooker_reference import run_reference

    rows = []
    events = 0
    for n in clients:
        for name in strategies:
            calls = elapsed = 0.0
            for run in range(runs):
                c, t, e = run_reference(n, name, f"{seed}:{n}:{name}:{run}")
                calls += c
                elapsed += t
                events += e
            rows.append(
                {
                    "clients": n,
                    "strategy": name,
                    "calls": round(calls / runs, 2),
                    "time_ms": round(elapsed / runs * 1000.0, 2),
                }
            )
    return rows, events
