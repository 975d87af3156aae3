"""The virtual fleet's shared store: the admission model's answers, and round trips paid in time."""

from __future__ import annotations

import random
from typing import Any, Dict, Generator, List

import pytest

from cometsync._errors import APIConnectionError
from cometsync._flow import Send
from cometsync._transport import Response
from cometsync._types import Timeout
from cometsync.guards import Guards
from cometsync.guards import admission as model
from simulator.fleet import LateWaker, ModelledStore, RoundTripServer, with_round_trips
from simulator.virtual import Engine, Task
from tests.redis.test_equivalence import _ops

SCOPE = "fleet"
RTT = 0.01
SEND = Send("m", "POST", "/chat/completions", {}, Timeout(connect=1.0, read=5.0))
ADMIT = model.admit_argv(1_700_000_000.0, model.SEND, 600.0, 0.0, 0.0, 60.0, 0.1, 1.0, 60.0)


class _Answer:
    """A server that answers 200 after 0.1 s, or reset when told to fail."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.arrived: List[float] = []

    def submit(self, engine: Engine, task: Task, send: Send) -> None:
        self.arrived.append(engine.clock.now)
        outcome: Any = Response(200, {}, b"{}", "/v1/chat/completions")
        if self.fail:
            outcome = APIConnectionError("reset")
        engine.reply(task, outcome, engine.clock.now + 0.1)


@pytest.mark.parametrize("seed", range(3))
def test_the_modelled_store_answers_as_the_admission_model(seed: int) -> None:
    """The operation sequences the Lua scripts are tested on get the model's answers here too."""
    store = ModelledStore(rtt=RTT)
    states: Dict[Any, model.State] = {}
    budget: model.State = {}
    for index, (op, name, argv) in enumerate(_ops(seed, 2000)):
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
    assert sum(store.ops.values()) == 2000
    assert store.fleet and store.shared  # breaker and budget are kept in it, as in Redis


def test_operations_are_billed_to_the_current_caller_only() -> None:
    """Each operation costs one round trip to whoever is named current, nothing to nobody."""
    store = ModelledStore(rtt=RTT)
    store.admit(SCOPE, "m", ADMIT)
    store.current = "a"
    store.admit(SCOPE, "m", ADMIT)
    store.budget(SCOPE, model.budget_argv(1_700_000_000.0, False, 0.2, 2.0, 10.0))
    assert store.take("a") == pytest.approx(2 * RTT)
    assert store.take("a") == 0.0
    assert store.take(None) == 0.0
    assert store.ops == {"admit": 2, "observe": 0, "budget": 1}


def _flow(store: ModelledStore, fail_after: bool = False) -> Generator[Any, Any, str]:
    """Two store operations, one send, one more operation: as a call's flow makes them."""
    store.admit(SCOPE, "m", ADMIT)
    store.admit(SCOPE, "m", ADMIT)
    yield SEND
    store.budget(SCOPE, model.budget_argv(1_700_000_000.0, False, 0.2, 2.0, 10.0))
    if fail_after:
        raise APIConnectionError("gave up")
    return "done"


def test_a_flow_waits_out_its_round_trips_before_acting_and_ending() -> None:
    """Two round trips delay the send, the pacing check delays its arrival, a third the end."""
    store = ModelledStore(rtt=RTT)
    inner = _Answer()
    engine = Engine()
    task = engine.spawn(with_round_trips(_flow(store), store, "a"), RoundTripServer(inner, RTT))
    engine.run()
    assert inner.arrived == [pytest.approx(3 * RTT)]
    assert task.result == "done"
    assert task.finished == pytest.approx(3 * RTT + 0.1 + RTT)


def test_a_failing_flow_still_pays_its_round_trips() -> None:
    """A flow that raises after a store operation ends one round trip later, with its error."""
    store = ModelledStore(rtt=RTT)
    engine = Engine()
    server = RoundTripServer(_Answer(), 0.0)
    task = engine.spawn(with_round_trips(_flow(store, fail_after=True), store, "a"), server)
    engine.run()
    assert isinstance(task.error, APIConnectionError)
    assert task.finished == pytest.approx(2 * RTT + 0.1 + RTT)
    assert server.arrivals == [(pytest.approx(2 * RTT), "200")]


def test_a_free_store_changes_no_timing() -> None:
    """With a zero round trip the wrapped flow runs exactly as the bare one."""
    store = ModelledStore(rtt=0.0)
    engine = Engine()
    task = engine.spawn(with_round_trips(_flow(store), store, "a"), RoundTripServer(_Answer()))
    engine.run()
    assert task.finished == pytest.approx(0.1)


def test_a_negative_round_trip_is_refused() -> None:
    """A store cannot answer before it is asked."""
    with pytest.raises(ValueError, match="round trip"):
        ModelledStore(rtt=-0.001)


class _Fixed(Guards):
    """Guards whose every wait is 0.5 s and every decision a fixed answer."""

    def admit(self, model: Any, now: float) -> Any:
        return "no"

    def ready_in(self, model: Any, now: float) -> Any:
        return 0.5

    def try_acquire(self, model: Any, now: float) -> bool:
        return False

    def acquire_in(self, model: Any, now: float) -> Any:
        return None if model == "parked" else 0.5


def test_late_wakers_wait_a_little_longer_and_decide_nothing() -> None:
    """Announced waits grow by at most the jitter, differently each time; answers pass through."""
    late = LateWaker(_Fixed(), random.Random(1), jitter=0.001)
    waits = [late.acquire_in("m", 0.0) for _ in range(50)] + [late.ready_in("m", 0.0)]
    assert all(w is not None and 0.5 <= w <= 0.501 for w in waits)
    assert len(set(waits)) > 40
    assert late.acquire_in("parked", 0.0) is None  # waiting for a release stays so
    assert late.admit("m", 0.0) == "no" and late.try_acquire("m", 0.0) is False
