"""A single-purpose model of Brooker's experiment, for cross-checking and timing only.

It is written the way the blog's original simulator works (every hop is an event on one heap,
the backoff formulas are inlined, nothing else runs), so ``python -m benchmarks brooker
--reference`` can show, in the same run, that the engine driving cometsync's real flow gives
the same numbers and how its speed compares.
"""

from __future__ import annotations

import heapq
import random
from typing import Any, Callable, Dict, List, Tuple

__all__ = ["REFERENCE", "run_reference"]

_BASE = 0.005  # the blog's base; its envelope is base * 2**n with n from 1
_CAP = 2.0


def _expo(n: int) -> float:
    return min(_CAP, _BASE * 2.0**n)


def _full(rng: random.Random, n: int, previous: float) -> float:
    return rng.uniform(0.0, _expo(n))


def _equal(rng: random.Random, n: int, previous: float) -> float:
    half = _expo(n) / 2.0
    return half + rng.uniform(0.0, half)


def _decorrelated(rng: random.Random, n: int, previous: float) -> float:
    return min(_CAP, rng.uniform(_BASE, previous * 3.0))


REFERENCE: Dict[str, Callable[[random.Random, int, float], float]] = {
    "none": lambda rng, n, previous: 0.0,
    "exponential": lambda rng, n, previous: _expo(n),
    "full": _full,
    "equal": _equal,
    "decorrelated": _decorrelated,
}


def run_reference(clients: int, strategy: str, seed: Any) -> Tuple[int, float, int]:
    """One run: ``(write calls, time of the last event, events)``, like ``brooker.run_once``."""
    rng = random.Random(f"{seed}:reference")
    backoff = REFERENCE[strategy]

    def hop() -> float:
        return abs(rng.gauss(0.010, 0.002))

    version = 0
    calls = 0
    events = 0
    # Per client: attempt number, last sleep (decorrelated), version read.
    attempt = [0] * clients
    sleep = [_BASE] * clients
    seen = [0] * clients
    # (time, seq, kind, client); kinds: 0 read arrives, 1 read reply, 2 write arrives, 3 reply
    heap: List[Tuple[float, int, int, int]] = [(hop(), c, 0, c) for c in range(clients)]
    heapq.heapify(heap)
    seq = clients
    now = 0.0
    won = [False] * clients
    while heap:
        now, _, kind, c = heapq.heappop(heap)
        events += 1
        if kind == 0:
            seen[c] = version
            nxt = now + hop()
        elif kind == 1:
            nxt = now + hop()
        elif kind == 2:
            calls += 1
            won[c] = seen[c] == version
            if won[c]:
                version += 1
            nxt = now + hop()
        else:
            if won[c]:
                continue
            attempt[c] += 1
            sleep[c] = backoff(rng, attempt[c], sleep[c])
            nxt = now + hop() + sleep[c]
        seq += 1
        heapq.heappush(heap, (nxt, seq, (kind + 1) % 4, c))
    return calls, now, events
