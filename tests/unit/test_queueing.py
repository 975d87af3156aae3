"""Scheduling ahead: an attempt that must wait reserves its turn, so callers are served in line."""

from __future__ import annotations

from typing import Any, Callable, List, Optional

import pytest

import cometsync
from cometsync._errors import PoolTimeoutError
from cometsync.guards import Guards
from cometsync.guards import admission as model
from cometsync.guards.shared import SharedGuards, build_guards
from cometsync.guards.store import MemoryStore
from cometsync.testing import FakeClock

NOW = 1_700_000_000.0


def send(state: model.State, now: float, ahead: float, rpm: float = 600, **kw: float) -> Any:
    argv = model.admit_argv(
        now, model.SEND, rpm, kw.get("tpm", 0), kw.get("tokens", 0), 60, 0.1, 1, 60, ahead=ahead
    )
    return model.admit(state, argv)


def spend_burst(state: model.State, now: float = NOW) -> None:
    """600 rpm allows 10 at once (one second's worth)."""
    assert [send(state, now, 0)[0] for _ in range(10)] == ["go"] * 10


def test_turns_are_handed_out_in_line() -> None:
    """Past the burst, each caller gets the next 100 ms turn, in the order it asked."""
    state: model.State = {}
    spend_burst(state)
    turns = [send(state, NOW, ahead=1.0) for _ in range(3)]
    assert [v for v, _ in turns] == ["queued"] * 3
    assert [w for _, w in turns] == pytest.approx([0.1, 0.2, 0.3], abs=1e-5)
    # A caller that comes back later does not jump the line: its turn is after the three.
    assert send(state, NOW + 0.05, ahead=1.0) == ("queued", pytest.approx(0.35, abs=1e-5))


def test_a_turn_beyond_the_budget_reserves_nothing() -> None:
    """A wait longer than the caller may wait is answered "rate" and leaves the state alone."""
    state: model.State = {}
    spend_burst(state)
    before = dict(state)
    assert send(state, NOW, ahead=0.05) == ("rate", pytest.approx(0.1, abs=1e-5))
    assert state == before
    assert send(state, NOW, ahead=0.0)[0] == "rate"  # no budget: as before scheduling ahead


def test_tokens_are_reserved_with_the_turn() -> None:
    """A queued request charges the token bucket too, so the next one queues behind both."""
    state: model.State = {}
    assert send(state, NOW, 1.0, rpm=0, tpm=6000, tokens=100)[0] == "go"  # a second's worth
    assert send(state, NOW, 5.0, rpm=0, tpm=6000, tokens=100) == ("queued", pytest.approx(1.0))
    assert send(state, NOW, 5.0, rpm=0, tpm=6000, tokens=50) == ("queued", pytest.approx(1.5))


def test_a_hold_or_a_cooldown_hands_out_no_turn() -> None:
    """While the server's hold or the breaker's cooldown lasts, nothing is reserved."""
    state: model.State = {}
    spend_burst(state)
    held = dict(state, hold=NOW + 2.0)
    assert send(held, NOW, ahead=10.0) == ("hold", pytest.approx(2.0))
    assert held == dict(state, hold=NOW + 2.0)
    cooling = dict(state, open=NOW + 3.0)
    assert send(cooling, NOW, ahead=10.0) == ("cooldown", pytest.approx(3.0))
    assert cooling == dict(state, open=NOW + 3.0)
    peek = model.admit_argv(NOW, model.PEEK, 0, 0, 0, 60, 0.1, 1, 60)
    assert model.admit(dict(held), peek) == ("hold", pytest.approx(2.0))


class HookClock(FakeClock):
    """A fake clock that runs ``hook`` (another process acting) when slept on."""

    def __init__(self) -> None:
        super().__init__()
        self.hook: Optional[Callable[[], None]] = None

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()


class Free(Guards):
    """Local protections that never make a send wait (so only the shared turn counts)."""

    def acquire_in(self, model: Optional[str], now: float) -> Optional[float]:
        return 0.0


def guards(clock: FakeClock, store: MemoryStore, rpm: float = 600) -> SharedGuards:
    made = build_guards(
        Free(),
        cometsync.Protections(),
        api_key="k",
        rate_limit=cometsync.RateLimit(rpm=rpm),
        shared_state=store,
        shared_namespace="cometsync",
        ceiling=8,
        clock=clock,
    )
    assert isinstance(made, SharedGuards)
    return made


def paced(g: SharedGuards, timeout: float, tokens: int = 0) -> None:
    with g.slot("m", timeout, tokens):
        pass


def test_a_paced_attempt_sleeps_once_until_its_turn() -> None:
    """Two processes' guards on one store: the second waits its turn once, without polling."""
    store = MemoryStore(fleet=True)
    a_clock, b_clock = FakeClock(), FakeClock()
    a, b = guards(a_clock, store), guards(b_clock, store)
    for _ in range(10):
        paced(a, 1.0)
    paced(b, 1.0)
    paced(b, 1.0)
    assert b_clock.sleeps == pytest.approx([0.1, 0.1], abs=1e-5)  # one sleep per attempt
    with pytest.raises(PoolTimeoutError, match="next in"):
        paced(a, 0.05)  # its turn would be after its timeout: refused at once, no sleep
    assert a_clock.sleeps == []


def test_a_hold_that_begins_during_the_wait_forfeits_the_turn() -> None:
    """Waking in a hold another process set, the attempt waits it out and queues again."""
    store = MemoryStore(fleet=True)
    clock = HookClock()
    g = guards(clock, store)
    for _ in range(10):
        paced(g, 1.0)
    hold = model.observe_argv(NOW, model.NO_HEALTH, -1, 0.5, 0, 0, 0, 0, 1, 5, 0, 30, 60)

    def another_process_sees_a_429() -> None:
        store.observe(g._scope, "m", [clock.time(), *hold[1:]])

    clock.hook = another_process_sees_a_429
    paced(g, 5.0)
    # the turn (0.1 s), the hold (0.5 s), then a new turn: due at once, the line having
    # moved on during the hold; the lost turn stays spent (two charges for one send).
    assert clock.sleeps == pytest.approx([0.1, 0.5], abs=1e-5)
    rt = store._models[(g._scope, "m")]["rt"]
    assert rt - clock.time() == pytest.approx(1.2 - 0.6, abs=1e-5)  # 12 turns, 0.6 s on


def test_a_cooldown_that_begins_during_the_wait_gives_the_attempt_up() -> None:
    """Waking while the breaker cools down, the attempt is not sent and its tokens come back."""
    store = MemoryStore(fleet=True)
    clock = HookClock()
    g = guards(clock, store)
    for _ in range(10):
        paced(g, 1.0)

    def another_process_trips_the_breaker() -> None:
        state = store._models[(g._scope, "m")]
        state["open"] = clock.time() + 5.0

    clock.hook = another_process_trips_the_breaker
    with pytest.raises(PoolTimeoutError, match="cooling down"):
        paced(g, 5.0, tokens=40)
    assert g._settle == {"m": -40.0}
    assert clock.sleeps == pytest.approx([0.1], abs=1e-5)


def test_threads_of_one_process_are_served_in_line() -> None:
    """Per process (no Redis), queued threads get consecutive turns, none polls twice."""
    store = MemoryStore()
    clock = FakeClock()
    g = guards(clock, store, rpm=60)
    waits: List[float] = []
    paced(g, 5.0)
    for _ in range(3):
        before = len(clock.sleeps)
        paced(g, 5.0)
        waits.extend(clock.sleeps[before:])
    assert waits == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)


def test_a_virtual_time_send_reserves_its_turn_and_keeps_it() -> None:
    """try_acquire (never blocking) reserves a turn; a later asker queues behind it."""
    store = MemoryStore(fleet=True)
    clock = FakeClock()
    a, b = guards(clock, store), guards(clock, store)

    def at(offset: float) -> float:
        clock.advance(offset - (clock.monotonic() - start))
        return clock.monotonic()

    start = clock.monotonic()
    assert all(a.try_acquire("m", at(0.0)) for _ in range(10))  # the burst
    assert not a.try_acquire("m", at(0.0))
    assert a.acquire_in("m", at(0.0)) == pytest.approx(0.1, abs=1e-5)
    assert not b.try_acquire("m", at(0.05))  # b asks later: its turn is after a's
    assert b.acquire_in("m", at(0.05)) == pytest.approx(0.15, abs=1e-5)
    assert not b.try_acquire("m", at(0.1))  # a's turn is not b's: b's other send queues (0.3)
    assert a.try_acquire("m", at(0.1))  # a's reserved turn: no new reservation
    assert b.try_acquire("m", at(0.2))
    rt = store._models[(a._scope, "m")]["rt"]
    # 13 turns charged (10 + a's + b's two), each send charged once: none lost, none doubled
    assert rt - clock.time() == pytest.approx(1.3 - 0.2, abs=1e-5)
