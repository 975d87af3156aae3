"""Shared state for a virtual fleet: the engine's model of Redis, with its round trips.

A fleet of simulated processes shares one :class:`ModelledStore`. It is cometsync's own
``MemoryStore(fleet=True)``: every answer comes from the same pure functions
(``cometsync.guards.admission``) whose Lua twins run in Redis, so the fleet decides exactly as
processes sharing a real Redis would. What this module adds is the cost of reaching Redis:
each operation is one round trip of ``rtt`` seconds, paid in virtual time by the simulated
call that made it.

How the round trips are paid:

- operations a call's flow makes between two of its actions (counting the call in the retry
  budget, the admission of a model, an outcome's observation, a retry's budget check) are
  charged to that call (:func:`with_round_trips` names it to the store) and waited out as a
  ``Sleep`` before its next action, or before it ends;
- the pacing check the engine makes when an attempt leaves (``try_acquire``) delays the
  attempt's arrival by one round trip (:class:`RoundTripServer`); a refused check is counted
  but costs no virtual time, since the attempt was going to wait for its turn anyway.

Redis runs one script at a time in arrival order; with one round-trip time for everybody,
arrival order is the order the operations are made, so applying each at once is the same
serialisation.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from cometsync._errors import APITimeoutError
from cometsync._flow import Send, Sleep
from cometsync._policy import Classification
from cometsync.guards import Guards
from cometsync.guards.store import MemoryStore

from .virtual import Engine, Flow, Server, Task

__all__ = ["LateWaker", "ModelledStore", "RoundTripServer", "with_round_trips"]


class ModelledStore(MemoryStore):
    """``MemoryStore(fleet=True)`` (the admission model) that bills ``rtt`` per operation.

    Args:
        rtt: seconds one operation's round trip takes (loopback Redis: about 0.0002-0.0003).
        record: keep every operation and its answer in ``log``, to replay them elsewhere
            (e.g. on a real Redis, whose answers must be the same).

    Attributes:
        ops: operations answered, by kind (``admit``, ``observe``, ``budget``).
        current: the caller operations are charged to right now (None: nobody).
        log: with ``record``, ``(kind, scope, model, argv, answer)`` of every operation.
    """

    def __init__(self, rtt: float = 0.0003, *, record: bool = False) -> None:
        if not rtt >= 0:
            raise ValueError(f"the store's round trip must be >= 0 seconds, got {rtt!r}")
        super().__init__(fleet=True)
        self.rtt = rtt
        self.ops: Dict[str, int] = {"admit": 0, "observe": 0, "budget": 0}
        self.current: Any = None
        self.log: Optional[List[Tuple[str, str, Optional[str], List[float], Any]]] = (
            [] if record else None
        )
        self._debt: Dict[Any, float] = {}

    def _charge(self, kind: str) -> None:
        self.ops[kind] += 1
        if self.current is not None and self.rtt > 0:
            self._debt[self.current] = self._debt.get(self.current, 0.0) + self.rtt

    def take(self, caller: Any) -> float:
        """The round-trip time ``caller`` owes and has not waited yet (and forget it)."""
        return self._debt.pop(caller, 0.0)

    def _note(
        self, kind: str, scope: str, model: Optional[str], argv: Sequence[float], answer: Any
    ) -> None:
        if self.log is not None:
            self.log.append((kind, scope, model, list(argv), answer))

    def admit(self, scope: str, model: Optional[str], argv: Sequence[float]) -> Tuple[str, float]:
        self._charge("admit")
        answer = super().admit(scope, model, argv)
        self._note("admit", scope, model, argv, answer)
        return answer

    def observe(self, scope: str, model: Optional[str], argv: Sequence[float]) -> Tuple[str, float]:
        self._charge("observe")
        answer = super().observe(scope, model, argv)
        self._note("observe", scope, model, argv, answer)
        return answer

    def budget(self, scope: str, argv: Sequence[float]) -> bool:
        self._charge("budget")
        answer = super().budget(scope, argv)
        self._note("budget", scope, None, argv, answer)
        return answer

    def describe(self) -> Dict[str, Any]:
        return {"backend": "modelled", "rtt_ms": self.rtt * 1000, "ops": dict(self.ops)}


def with_round_trips(flow: Flow, store: ModelledStore, caller: Any) -> Flow:
    """``flow``, with the round trips its store operations cost waited out as ``Sleep``s.

    Operations made while ``flow`` runs are charged to ``caller``; before each action the
    flow yields (and before it returns or raises), what it owes is slept first.
    """
    outcome: Any = None
    while True:
        store.current = caller
        try:
            action = flow.send(outcome)
        except StopIteration as stop:
            store.current = None
            owed = store.take(caller)
            if owed > 0:
                yield Sleep(owed)
            return stop.value
        except Exception:  # the call failed: it still waits for its last answers
            store.current = None
            owed = store.take(caller)
            if owed > 0:
                yield Sleep(owed)
            raise
        store.current = None
        owed = store.take(caller)
        if owed > 0:
            yield Sleep(owed)
        outcome = yield action


class RoundTripServer:
    """A server whose requests arrive ``delay`` later (the pacing check's round trip).

    Args:
        inner: the server that answers (e.g. ``CoreServer``).
        delay: seconds added before each request reaches ``inner``.

    Attributes:
        arrivals: ``(virtual time, label)`` of every request that reached ``inner``; the label
            is the status as text, ``timeout`` or ``error``.
    """

    def __init__(self, inner: Server, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.arrivals: List[Tuple[float, str]] = []

    def submit(self, engine: Engine, task: Task, send: Send) -> None:
        if self.delay > 0:
            engine.schedule(engine.clock.now + self.delay, self._arrive, (engine, task, send))
        else:
            self._arrive((engine, task, send))

    def _arrive(self, arg: Tuple[Engine, Task, Send]) -> None:
        engine, task, send = arg
        self.inner.submit(engine, task, send)
        outcome = task.outcome  # set by the inner server's reply, delivered later
        status = getattr(outcome, "status_code", None)
        if isinstance(status, int):
            label = str(status)
        else:
            label = "timeout" if isinstance(outcome, APITimeoutError) else "error"
        self.arrivals.append((engine.clock.now, label))


class LateWaker(Guards):
    """One process's guards, whose threads wake up to ``jitter`` seconds after their turn.

    A real thread that sleeps until the store said its turn comes wakes a little late (timer
    slack, scheduling, the round trip to ask again), by a different amount each time, so the
    waiters of a turn race and a random one wins. In exact virtual time they would all wake
    at the same instant and floating-point rounding of the turn's time would pick the winner,
    the same threads every time. Every decision stays ``guards``'s; only the waits it
    announces (``acquire_in``, ``ready_in``) grow by a uniform draw from ``rng``.
    """

    def __init__(self, guards: Guards, rng: random.Random, jitter: float = 0.001) -> None:
        self.guards = guards
        self.rng = rng
        self.jitter = jitter

    def _late(self, wait: Optional[float]) -> Optional[float]:
        return None if wait is None else wait + self.rng.uniform(0.0, self.jitter)

    def on_call(self, now: float) -> None:
        self.guards.on_call(now)

    def admit(self, model: Optional[str], now: float) -> Optional[str]:
        return self.guards.admit(model, now)

    def ready_in(self, model: Optional[str], now: float) -> Optional[float]:
        return self._late(self.guards.ready_in(model, now))

    def allow_retry(self, model: Optional[str], now: float) -> bool:
        return self.guards.allow_retry(model, now)

    def refuse_retry(self, model: Optional[str], now: float) -> Optional[str]:
        return self.guards.refuse_retry(model, now)

    def observe(self, model: Optional[str], verdict: Classification, now: float) -> None:
        self.guards.observe(model, verdict, now)

    def try_acquire(self, model: Optional[str], now: float) -> bool:
        return self.guards.try_acquire(model, now)

    def acquire_in(self, model: Optional[str], now: float) -> Optional[float]:
        return self._late(self.guards.acquire_in(model, now))

    def release(self, model: Optional[str], now: float) -> None:
        self.guards.release(model, now)

    @contextlib.contextmanager
    def slot(
        self, model: Optional[str], timeout: Optional[float] = None, tokens: int = 0
    ) -> Iterator[None]:
        with self.guards.slot(model, timeout, tokens):
            yield

    def settle(self, model: Optional[str], reserved: int, used: int) -> None:
        self.guards.settle(model, reserved, used)

    def stats(self) -> Dict[str, Any]:
        return self.guards.stats()
