"""The virtual fleet's store operations, replayed on a real Redis, get the same answers."""

from __future__ import annotations

from typing import Any

from benchmarks import fleet
from cometsync.guards.store import RedisStore
from cometsync.testing import FakeClock
from simulator.fleet import ModelledStore


def test_a_virtual_fleets_decisions_are_the_lua_scripts(redis_db: Any, patient_url: str) -> None:
    """Every answer of a shared fleet run (pacing, an outage's trip and probes) is Redis's too."""
    store = ModelledStore(record=True)
    outage = {"start": 2, "end": 5, "status": 503, "latency_ms": 20}
    fleet.run_fleet(
        4, 4, "shared", duration=10.0, warmup=1.0, seed=5, store=store, outages=[outage]
    )
    assert store.log is not None and len(store.log) > 300
    seen = {(kind, answer if kind == "budget" else answer[0]) for kind, *_, answer in store.log}
    # The run went through the decisions a fleet queueing for its turns makes: turns
    # reserved ahead, the trip, cooldown, probe and recovery. (Since turns are reserved, no
    # "rate" refusal comes within a 120 s wait, and no late attempt is sent into a cooldown,
    # so the budget refuses nothing here; test_equivalence's random sequences cover those.)
    assert {("admit", "queued"), ("admit", "go"), ("admit", "cooldown")} <= seen
    assert {("admit", "probe")} <= seen
    assert {("observe", "tripped"), ("observe", "closed"), ("budget", True)} <= seen
    redis = RedisStore(patient_url, "replay", FakeClock())
    try:
        for index, (kind, scope, model, argv, answer) in enumerate(store.log):
            if kind == "admit":
                got: Any = redis.admit(scope, model, argv)
            elif kind == "observe":
                got = redis.observe(scope, model, argv)
            else:
                got = redis.budget(scope, argv)
            assert got == answer, f"operation {index}: {kind} {model} {argv}"
        assert redis.shared  # every answer came from Redis, none from its local fallback
    finally:
        redis.close()
