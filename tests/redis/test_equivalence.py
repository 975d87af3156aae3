"""The Lua scripts and the pure model answer the same sequence of operations identically."""

from __future__ import annotations

import random
from typing import Any, Dict, List, Tuple

import pytest

from cometsync.guards import admission as model
from cometsync.guards.store import RedisStore
from cometsync.testing import FakeClock

SCOPE = "equivalence"


def _ops(seed: int, n: int) -> List[Tuple[str, Any, List[float]]]:
    """A random but reproducible sequence of (operation, model, argv) with explicit times."""
    rng = random.Random(seed)
    now = 1_700_000_000.0 + rng.random()
    out: List[Tuple[str, Any, List[float]]] = []
    for _ in range(n):
        now += rng.choice([0.0, 0.0, 0.001, 0.05, 0.3, 1.0, 7.0, 40.0]) * rng.random()
        name = rng.choice(["a", "b", None])
        pick = rng.random()
        if pick < 0.45:
            argv = model.admit_argv(
                now,
                rng.choice([model.GATE, model.SEND, model.ALL, model.ALL, model.PEEK]),
                rng.choice([0.0, 60.0, 600.0, 7.5]),
                rng.choice([0.0, 6000.0, 90_000.0]),
                float(rng.choice([0, 1, 57, 900, 20_000])),
                rng.choice([0.5, 60.0]),
                0.1,
                rng.choice([0.0, 1.0]),
                60.0,
                rng.choice([0.0, 0.0, -250.0, 30.0]),
                rng.random() < 0.3,
                0.2,
                float(rng.choice([0, 2])),
                10.0,
                rng.choice([0.0, 0.0, 0.05, 0.4, 5.0]),  # SEND: how far ahead it may queue
            )
            out.append(("admit", name, argv))
        elif pick < 0.85:
            argv = model.observe_argv(
                now,
                rng.choice([model.NEUTRAL, model.OK, model.FAIL, model.FAIL, model.NO_HEALTH]),
                rng.choice([-1.0, 0.0, 2.5]),
                rng.choice([-1.0, -1.0, 0.0, 0.2, 3.0]),
                rng.choice([0.0, 0.0, 120.0]),
                rng.choice([0.0, 0.0, 30_000.0]),
                rng.choice([0.0, -300.0, 45.0]),
                rng.choice([0.0, 6000.0]),
                float(rng.choice([1, 3])),
                rng.choice([0.5, 5.0]),
                rng.choice([0.0, 0.0, 60.0]),
                30.0,
                60.0,
            )
            out.append(("observe", name, argv))
        else:
            argv = model.budget_argv(now, rng.random() < 0.6, 0.2, float(rng.choice([0, 2])), 10.0)
            out.append(("budget", None, argv))
    return out


def _queue_ops(seed: int, n: int) -> List[Tuple[str, Any, List[float]]]:
    """A fleet pacing itself: mostly SENDs that may queue ahead, some holds, trips and peeks."""
    rng = random.Random(seed)
    now = 1_700_000_000.0 + rng.random()
    out: List[Tuple[str, Any, List[float]]] = []
    for _ in range(n):
        now += rng.choice([0.0, 0.0, 0.0, 0.01, 0.05, 0.2]) * rng.random()
        name = rng.choice(["a", "b"])
        pick = rng.random()
        if pick < 0.85:
            mode = rng.choice([model.SEND] * 6 + [model.ALL, model.PEEK])
            argv = model.admit_argv(
                now,
                mode,
                rng.choice([600.0, 1200.0, 0.0]),
                rng.choice([0.0, 90_000.0]),
                float(rng.choice([0, 57, 900])),
                60.0,
                0.1,
                1.0,
                60.0,
                rng.choice([0.0, 0.0, -200.0]),
                False,
                ahead=rng.choice([0.0, 0.05, 0.5, 3.0]),
            )
            out.append(("admit", name, argv))
        else:
            argv = model.observe_argv(
                now,
                rng.choice([model.NO_HEALTH, model.FAIL, model.OK, model.NEUTRAL]),
                -1.0,
                rng.choice([-1.0, -1.0, 0.2]),
                0.0,
                0.0,
                0.0,
                0.0,
                2.0,
                0.5,
                0.0,
                30.0,
                60.0,
            )
            out.append(("observe", name, argv))
    return out


def _replay(redis_db: Any, url: str, ops: List[Tuple[str, Any, List[float]]]) -> Dict[Any, bool]:
    """Run ``ops`` on the model and on Redis; assert equal answers and states; the verdicts."""
    store = RedisStore(url, "eq", FakeClock())
    states: Dict[Any, model.State] = {}
    budget: model.State = {}
    verdicts: Dict[Any, bool] = {}
    try:
        for index, (op, name, argv) in enumerate(ops):
            if op == "admit":
                expected: Any = model.admit(states.setdefault(name, {}), argv, budget)
                got: Any = store.admit(SCOPE, name, argv)
            elif op == "observe":
                expected = model.observe(states.setdefault(name, {}), argv)
                got = store.observe(SCOPE, name, argv)
            else:
                expected = model.budget(budget, argv)
                got = store.budget(SCOPE, argv)
            assert got == expected, f"operation {index}: {op} {name} {argv}"
            verdicts[got[0] if isinstance(got, tuple) else got] = True
        assert store.shared  # every answer came from Redis, none from the fallback
        for name, state in states.items():
            raw = redis_db.hgetall(store.model_key(SCOPE, name))
            assert {k.decode(): float(v) for k, v in raw.items()} == state
        raw = redis_db.hgetall(store.budget_key(SCOPE))
        assert {k.decode(): float(v) for k, v in raw.items()} == budget
    finally:
        store.close()
    return verdicts


@pytest.mark.parametrize("seed", range(6))
def test_lua_scripts_match_the_model(redis_db: Any, patient_url: str, seed: int) -> None:
    """2,000 random admissions (all modes), observations and budget calls: same answers, state."""
    _replay(redis_db, patient_url, _ops(seed, 2000))


@pytest.mark.parametrize("seed", range(3))
def test_queueing_ahead_matches_the_model(redis_db: Any, patient_url: str, seed: int) -> None:
    """1,500 operations of a fleet queueing for its turns: same answers and state as the model."""
    verdicts = _replay(redis_db, patient_url, _queue_ops(seed, 1500))
    assert {"queued", "rate", "hold", "cooldown", "go"} <= set(verdicts)  # every path taken
