"""For fixed seeds the virtual-time engine gives the numbers it gave before its speed work."""

from __future__ import annotations

import json
from typing import Any

from .engine_golden import GOLDEN, _normal, compute


def test_same_seed_same_benchmark_json_bit_for_bit() -> None:
    """Brooker's CLI JSON, the scenarios' rows and every call's history equal the golden file."""
    golden: Any = json.loads(GOLDEN.read_text())
    now = _normal(compute())
    assert now["brooker_cli"] == golden["brooker_cli"]
    assert now["brooker_runs"] == golden["brooker_runs"]
    for name, rows in golden["scenarios"].items():
        for old, new in zip(rows, now["scenarios"][name]):
            assert new == old, f"{name}/{old['strategy']} changed"
    assert now == golden


def _brooker_engine(seed: str) -> Any:
    import random

    from benchmarks.brooker import _SPEC, _TIMEOUT, STRATEGIES, BrookerRow
    from cometsync._flow import call_flow
    from cometsync._policy import RetryPolicy
    from simulator.virtual import Engine

    engine = Engine()
    row = BrookerRow(engine, random.Random(f"{seed}:net"))
    backoff = STRATEGIES["full"].with_rng(random.Random(f"{seed}:backoff"))
    policy = RetryPolicy(max_retries=10**9, backoff=backoff)
    for _ in range(30):
        flow = call_flow(_SPEC, (None,), policy, clock=engine.clock, timeout=_TIMEOUT)
        engine.spawn(flow, row)
    return engine, row


def test_a_run_in_slices_until_a_time_equals_one_run() -> None:
    """run(until=t) stops before later events; resumed, it ends exactly as one run does."""
    whole, whole_row = _brooker_engine("slices")
    end = whole.run()
    sliced, sliced_row = _brooker_engine("slices")
    t = 0.0
    while sliced._heap:
        t += 0.05
        assert sliced.run(until=t) <= t
    assert sliced.clock.now == end
    assert (sliced.events, sliced_row.writes) == (whole.events, whole_row.writes)
    assert [task.finished for task in sliced.tasks] == [task.finished for task in whole.tasks]
