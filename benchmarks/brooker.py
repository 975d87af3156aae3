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

import dataclasses
import random
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from cometsync._backoff import (
    Backoff,
    Constant,
    DecorrelatedJitter,
    EqualJitter,
    Exponential,
    FullJitter,
)
from cometsync._flow import CallSpec, Send, call_flow
from cometsync._policy import ResponseLike, RetryPolicy
from cometsync._transport import Response
from cometsync._types import Timeout
from simulator.virtual import Engine, Task

__all__ = ["STRATEGIES", "BrookerRow", "run_once", "sweep"]

CAP = 2.0
HOP_MEAN = 0.010
HOP_SD = 0.002

#: The blog's five strategies as cometsync backoffs (see the module docstring for the bases).
STRATEGIES: Dict[str, Backoff] = {
    "none": Constant(base=0.0),
    "exponential": Exponential(base=0.010, cap=CAP),
    "full": FullJitter(base=0.010, cap=CAP),
    "equal": EqualJitter(base=0.010, cap=CAP),
    "decorrelated": DecorrelatedJitter(base=0.005, cap=CAP),
}

_OK = Response(200, {}, b"{}", "sim://row", payload={})
_CONFLICT_BODY = {"error": {"message": "version changed", "type": "conflict", "code": "conflict"}}
_CONFLICT = Response(409, {}, b"", "sim://row", payload=_CONFLICT_BODY)
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

    def _hop(self) -> float:
        return abs(self.rng.gauss(HOP_MEAN, HOP_SD))

    def submit(self, engine: Engine, task: Task, send: Send) -> None:
        read_at = engine.clock.now + self._hop()
        engine.schedule(read_at + self._hop() + self._hop(), self._write, (task, read_at))

    def _write(self, arg: Tuple[Task, float]) -> None:
        task, read_at = arg
        engine = self._engine
        now = engine.clock.now
        self.writes += 1
        won = self._last_success < read_at  # the version read is still current
        if won:
            self._last_success = now
        engine.reply(task, _OK if won else _CONFLICT, now + self._hop())


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
