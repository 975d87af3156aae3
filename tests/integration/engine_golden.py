"""What the virtual-time engine computes for fixed seeds, for the golden test of its speed work.

``python -m tests.integration.engine_golden --write`` regenerates ``engine_golden.json``; do
that only for a change meant to alter results (a new fault, a new decision), never to make a
speed-up pass. The benchmark JSON (Brooker through the CLI, fault-scenario rows) is kept as
is; every attempt record and final error of every call is kept as a SHA-256 digest, so the
file stays small while one changed message, delay or latency anywhere still shows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

from benchmarks import brooker, scenarios
from benchmarks.__main__ import main
from benchmarks.strategies import Strategy, all_strategies
from cometsync._types import Timeout
from simulator.core import Core
from simulator.scenario import parse_scenario
from simulator.virtual import CoreServer, Engine

__all__ = ["GOLDEN", "compute"]

GOLDEN = Path(__file__).with_name("engine_golden.json")
SEED = "golden"

# The scenarios cut short (fewer calls, same kinds of trouble) so the whole file takes seconds.
_SMALL: Dict[str, Dict[str, Any]] = {
    "gateway": {"duration": 30.0, "bursts": ((10.0, 2.0, 400),), "trigger": (10.0, 12.0)},
    "outage": {"duration": 50.0},
    "overload": {"duration": 50.0, "rate": 12.0},
}
# Every kind of failure a reply can have (statuses with and without Retry-After, resets,
# hangs, bad bodies, HTML pages, a read timeout cutting the latency tail), on a 3-model chain.
_FLAKY = [
    {"status": 429, "rate": 0.08, "retry_after": 0.2},
    {"status": 503, "rate": 0.06},
    {"status": 502, "rate": 0.03},
    {"status": 524, "rate": 0.03},
    {"fault": "reset", "rate": 0.03},
    {"fault": "hang", "rate": 0.02},
    {"fault": "malformed", "rate": 0.03},
    {"fault": "empty", "rate": 0.02},
    {"fault": "html", "rate": 0.02},
    {"fault": "error", "rate": 0.02},
]
_SMALL["flaky"] = {
    "name": "flaky",
    "simulator": {
        "models": {
            mid: {**model, "faults": _FLAKY}
            for mid, model in scenarios.SCENARIOS["outage"].simulator["models"].items()
        }
    },
    "duration": 60.0,
    "timeout": Timeout(connect=5.0, read=1.5),
}


def _brooker_cli() -> Any:
    """The Brooker JSON exactly as ``python -m benchmarks brooker`` writes it."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "brooker.json"
        args = ["brooker", "--clients", "10,40", "--runs", "2", "--workers", "1"]
        if main([*args, "--seed", SEED, "--json", str(out)]) != 0:  # pragma: no cover
            raise RuntimeError("the brooker CLI failed")
        return json.loads(out.read_text())


def _brooker_runs() -> List[Tuple[str, int, float, int]]:
    """Single runs with their engine event counts (the event loop's own bookkeeping)."""
    rows = []
    for name in brooker.STRATEGIES:
        calls, end, events = brooker.run_once(30, name, f"{SEED}:{name}")
        rows.append((name, calls, end, events))
    return rows


def _scenario_run(name: str, strategy: Strategy) -> Dict[str, Any]:
    """``scenarios.run_strategy`` on the small scenario, plus a digest of every call's history."""
    base = scenarios.SCENARIOS["outage" if name == "flaky" else name]
    scenario = dataclasses.replace(base, **_SMALL[name])
    # The result carries its history out as a pair (unpacked below).
    keep: Any = lambda result, attempts: (result, tuple(attempts))  # noqa: E731
    spec = dataclasses.replace(scenarios._SPEC, attach=keep)
    seed = f"{SEED}:{name}"
    arrivals = scenario.arrivals(random.Random(f"{seed}:{scenario.name}:arrivals"))
    core = Core(parse_scenario(scenario.simulator), seed=scenarios._int_seed(f"{seed}:core"))
    engine = Engine()
    core.set_origin(0.0)
    server = CoreServer(core)
    clock = engine.clock
    factory, guards = strategy.start(clock)
    chain = scenario.chain[:1] if strategy.single_model else scenario.chain
    for index, at in enumerate(arrivals):
        rng = random.Random(f"{seed}:{index}")
        flow = factory(spec, chain, rng, clock, scenario.timeout)
        engine.spawn(flow, server, at=at, guards=guards)
    end = engine.run()
    history: List[Any] = []
    for task in engine.tasks:
        attempts: Tuple[Any, ...] = ()
        if isinstance(task.result, tuple):
            task.result, attempts = task.result
        if task.error is not None:
            attempts = task.error.attempts
            outcome: Any = [type(task.error).__name__, str(task.error)]
        else:
            outcome = [task.result.model, task.result.usage.total_tokens]
        history.append([task.started, task.finished, task.sends, outcome])
        history.append([a.to_dict() for a in attempts])
    row = scenarios._metrics(scenario, strategy, engine.tasks, server, end, engine.events)
    blob = json.dumps(history, sort_keys=True).encode()
    row["history_sha256"] = hashlib.sha256(blob).hexdigest()
    return row


def compute() -> Dict[str, Any]:
    """Everything the golden file pins, recomputed (the SDK's warnings silenced meanwhile)."""
    logger = logging.getLogger("cometsync")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return _compute()
    finally:
        logger.setLevel(level)


def _compute() -> Dict[str, Any]:
    return {
        "brooker_cli": _brooker_cli(),
        "brooker_runs": [list(row) for row in _brooker_runs()],
        "scenarios": {
            name: [_scenario_run(name, strategy) for strategy in all_strategies()]
            for name in _SMALL
        },
    }


def _normal(data: Any) -> Any:
    """What the data looks like once written as JSON and read back (tuples become lists)."""
    return json.loads(json.dumps(data))


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.integration.engine_golden --write")
    GOLDEN.write_text(json.dumps(_normal(compute()), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
