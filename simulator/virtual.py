"""The virtual-time engine: an event heap and a virtual clock driving many cometsync flows.

Each simulated client is a real ``cometsync._flow.call_flow`` generator (or any generator that
yields the same ``Send``/``Sleep`` actions). The engine never sleeps: a ``Sleep`` schedules the
flow's resumption on the heap, and a ``Send`` goes to a pluggable :class:`Server`, which
answers later by calling :meth:`Engine.reply` (so the server decides *when* each request is
processed and answered, e.g. at its arrival after a network hop). Events are ordered by
(virtual time, sequence number), so ties resolve in scheduling order and a run is a pure
function of its seeds: the same seed gives the same numbers.

Usage::

    engine = Engine()
    engine.spawn(call_flow(spec, chain, policy, clock=engine.clock, timeout=t), server)
    engine.run()
    engine.clock.now, engine.events, [task.result for task in engine.tasks]
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from typing import Any, Callable, Deque, Dict, Generator, List, Optional, Protocol, Tuple

from cometsync._errors import APIConnectionError, APIError, APITimeoutError
from cometsync._flow import Action, Outcome, Queued, Send, Sleep
from cometsync._transport import Response

__all__ = ["EPOCH", "CoreServer", "Engine", "Flow", "Server", "Task", "VirtualClock"]

#: Wall-clock seconds at virtual time 0 (only HTTP-date Retry-After headers read it).
EPOCH = 1_700_000_000.0

Flow = Generator[Action, Outcome, Any]


class VirtualClock:
    """cometsync's ``Clock`` protocol on virtual time; the engine moves ``now`` forward."""

    __slots__ = ("epoch", "now")

    def __init__(self, start: float = 0.0, epoch: float = EPOCH) -> None:
        self.now = start
        self.epoch = epoch

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.epoch + self.now

    def sleep(self, seconds: float) -> None:
        """Never valid: a flow driven by the engine yields ``Sleep`` and is resumed later."""
        raise RuntimeError(
            "VirtualClock.sleep was called: code driven by the virtual-time engine must "
            "yield Sleep actions instead of blocking"
        )

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.now:.6f})"


class Task:
    """One simulated call: its flow, where it is, and how it ended.

    Attributes:
        flow: the generator being driven.
        server: where its ``Send`` actions go.
        tag: anything the caller wants to find the task by (client id, request kind...).
        started: virtual time of its first step.
        finished: virtual time it ended, or None while running.
        result: the flow's return value on success.
        error: the ``APIError`` the flow raised, or None.
        sends: how many ``Send`` actions it yielded.
    """

    __slots__ = (
        "error",
        "finished",
        "flow",
        "guards",
        "holding",
        "on_done",
        "outcome",
        "queued",
        "result",
        "send",
        "sends",
        "server",
        "started",
        "tag",
        "try_acquire",
        "waiting_since",
    )

    def __init__(
        self,
        flow: Flow,
        server: Server,
        tag: Any,
        started: float,
        on_done: Optional[Callable[[Task], None]],
        guards: Any = None,
    ) -> None:
        self.flow = flow
        self.send = flow.send  # bound once: the engine resumes the flow twice per attempt
        self.server = server
        self.guards = guards
        # Looked up once: the engine asks for a slot before every send when there is one.
        self.try_acquire: Optional[Callable[[Optional[str], float], bool]] = (
            None if guards is None else getattr(guards, "try_acquire", None)
        )
        self.holding: Optional[Tuple[Optional[str]]] = None  # the model whose slot it holds
        self.tag = tag
        self.started = started
        self.on_done = on_done
        self.outcome: Outcome = None
        self.waiting_since: Optional[float] = None  # when its pending send first found no slot
        self.queued = 0.0  # seconds its pending send waited for a slot before it left
        self.finished: Optional[float] = None
        self.result: Any = None
        self.error: Optional[APIError] = None
        self.sends = 0

    @property
    def ok(self) -> bool:
        """Whether the call ended with a result."""
        return self.finished is not None and self.error is None

    def __repr__(self) -> str:
        state = "running" if self.finished is None else ("ok" if self.ok else "failed")
        return f"Task({self.tag!r}, {state}, sends={self.sends})"


class Server(Protocol):
    """Answers the engine's sends, in virtual time.

    ``submit`` is called at the virtual time the flow yields ``send``; the server must
    eventually call ``engine.reply(task, outcome, at)`` exactly once for it, with ``at`` no
    earlier than now. It may schedule its own events (``engine.schedule``) in between, e.g. to
    change state when the request reaches it.
    """

    def submit(self, engine: Engine, task: Task, send: Send) -> None: ...


_push = heapq.heappush

# A heap entry: (time, sequence, callback, argument). The sequence breaks ties in scheduling
# order and keeps callbacks from ever being compared.
_Event = Tuple[float, int, Callable[[Any], None], Any]


class Engine:
    """An event heap keyed by (virtual time, sequence) and the clock it drives.

    Args:
        clock: the virtual clock; a new one starting at 0 by default.
    """

    def __init__(self, clock: Optional[VirtualClock] = None) -> None:
        self.clock = clock or VirtualClock()
        self.tasks: List[Task] = []
        self.events = 0
        self._heap: List[_Event] = []
        self._seq = itertools.count(1)
        # Bound once: a bound method made per event is an allocation per event.
        self._step_cb = self._step
        self._parked: Dict[Tuple[int, Optional[str]], Deque[Tuple[Task, Send]]] = {}

    def schedule(self, at: float, callback: Callable[[Any], None], arg: Any = None) -> None:
        """Call ``callback(arg)`` at virtual time ``at`` (now, if ``at`` is in the past)."""
        now = self.clock.now
        _push(self._heap, (at if at > now else now, next(self._seq), callback, arg))

    def spawn(
        self,
        flow: Flow,
        server: Server,
        *,
        at: float = 0.0,
        tag: Any = None,
        on_done: Optional[Callable[[Task], None]] = None,
        guards: Any = None,
    ) -> Task:
        """Start driving ``flow`` at virtual time ``at``; its sends go to ``server``.

        ``guards``, when given, is the flow's ``Guards``: each send then holds one of its
        in-flight slots (``try_acquire``/``release``) from its departure to its answer, and
        waits on the heap, never blocking, while the limiter has none free.
        """
        task = Task(flow, server, tag, at, on_done, guards)
        self.tasks.append(task)
        self.schedule(at, self._step_cb, task)
        return task

    def reply(self, task: Task, outcome: Outcome, at: float) -> None:
        """Deliver ``outcome`` (a response or an ``APIError``) to ``task``'s flow at ``at``."""
        task.outcome = outcome
        now = self.clock.now  # schedule(), inlined: once per attempt
        _push(self._heap, (at if at > now else now, next(self._seq), self._step_cb, task))

    def run(self, until: Optional[float] = None) -> float:
        """Process events in order until none is left (or the next is after ``until``).

        An event is a callback, or the resumption of a task's flow (two of the three events
        of a typical attempt), which this loop does itself rather than through a call.

        Returns:
            The virtual time of the last event processed.
        """
        heap = self._heap
        clock = self.clock
        pop = heapq.heappop
        resume = self._step_cb
        seq = self._seq
        events = 0
        try:
            while heap:
                if until is not None and heap[0][0] > until:
                    break
                at, _, callback, arg = pop(heap)
                clock.now = at
                events += 1
                if callback is not resume:
                    callback(arg)
                    continue
                # Resume the task's flow with its pending outcome; act on what it yields next.
                task: Task = arg
                outcome = task.outcome
                task.outcome = None
                # Only a task with a limiter's slots (_send()) ever waits for one or holds one.
                if task.try_acquire is not None:
                    if task.queued:  # the send waited for a slot: the flow records `queued`
                        outcome = Queued(outcome, task.queued)  # type: ignore[arg-type]
                        task.queued = 0.0
                    if task.holding is not None:
                        self._release(task)
                try:
                    # Any: `kind`, looked at once, tells Sleep (seconds: action[0]) from Send.
                    action: Any = task.send(outcome)
                    kind = type(action)
                    # A zero wait with nothing else due at this instant would be the very next
                    # event anyway: resume at once instead of a heap round trip (same order,
                    # same results).
                    while kind is Sleep and action[0] <= 0:
                        if heap and heap[0][0] <= at:
                            break
                        action = task.send(None)
                        kind = type(action)
                except StopIteration as stop:
                    self._finish(task, stop.value, None)
                    continue
                except APIError as error:
                    self._finish(task, None, error)
                    continue
                if kind is Sleep:
                    wake = at + action[0]
                    _push(heap, (wake if wake > at else at, next(seq), resume, task))
                elif kind is Send:
                    if task.try_acquire is None:
                        task.sends += 1  # _send() without a slot to take, inlined
                        task.server.submit(self, task, action)
                    else:
                        self._send(task, action)
                else:
                    raise TypeError(f"a flow yielded {action!r}; expected Send or Sleep")
        finally:
            self.events += events
        return clock.now

    def _step(self, task: Task) -> None:
        """The marker of a task's resumption on the heap; ``run`` does the work itself."""
        raise AssertionError("a resumption event is handled by run()")  # pragma: no cover

    def _send(self, task: Task, send: Send) -> None:
        guards = task.guards
        try_acquire = task.try_acquire
        if try_acquire is not None and send.model is not None:  # no slot without a model
            now = self.clock.now
            if not try_acquire(send.model, now):
                if task.waiting_since is None:
                    task.waiting_since = now
                wait = guards.acquire_in(send.model, now)
                if wait is None:  # until another send of this model releases its slot
                    key = (id(guards), send.model)
                    self._parked.setdefault(key, deque()).append((task, send))
                else:
                    self.schedule(now + max(wait, 1e-6), self._resend, (task, send))
                return
            task.holding = (send.model,)
            if task.waiting_since is not None:
                task.queued = now - task.waiting_since
                task.waiting_since = None
        task.sends += 1
        task.server.submit(self, task, send)

    def _resend(self, arg: Tuple[Task, Send]) -> None:
        self._send(*arg)

    def _release(self, task: Task) -> None:
        assert task.holding is not None
        model = task.holding[0]
        task.holding = None
        task.guards.release(model, self.clock.now)
        waiting = self._parked.get((id(task.guards), model))
        if waiting:
            self.schedule(self.clock.now, self._resend, waiting.popleft())

    def _finish(self, task: Task, result: Any, error: Optional[APIError]) -> None:
        task.finished = self.clock.now
        task.result = result
        task.error = error
        if task.on_done is not None:
            task.on_done(task)


class CoreServer:
    """The simulator's fault model (``simulator.core.Core``) as a virtual-time server.

    A send is handled when it is made (``core.handle`` at the virtual now) and answered after
    the planned latency. Transport faults become the errors the real transport raises: a
    ``reset`` an ``APIConnectionError``; a ``hang``, or a reply slower than the attempt's read
    timeout, an ``APITimeoutError`` once the read timeout has passed. The core counts a request
    in flight until its planned end even when the client gave up earlier: the server does not
    know the client left, which is how abandoned work keeps an overload going.

    Args:
        core: the fault model.
        api_key: the bearer key sent (per-key rate limits apply to it).
        prefix: prepended to each send's path (the base URL's path).

    Attributes:
        statuses: attempts by outcome: the status as text, ``timeout`` or ``reset``.
        billed: per model, ``[prompt_tokens, completion_tokens]`` of every 200 the server
            produced, delivered or not (a provider bills a generation the client abandoned).
    """

    def __init__(self, core: Any, *, api_key: str = "sk-virtual", prefix: str = "/v1") -> None:
        self.core = core
        self.prefix = prefix
        self.headers = {"authorization": f"Bearer {api_key}"}
        self.statuses: Dict[str, int] = {}
        self.billed: Dict[str, List[int]] = {}

    def submit(self, engine: Engine, task: Task, send: Send) -> None:
        now = engine.clock.now
        path = self.prefix + send.path
        reply = self.core.handle(send.method, path, self.headers, b"", now, request=send.body)
        status = reply.status
        latency = reply.latency
        read_timeout = send.timeout.read
        outcome: Outcome
        if status is None and reply.end == "reset":
            outcome = APIConnectionError("connection reset by peer (simulated)")
            label, at, ends = "reset", now + latency, now + latency
        elif status is None or latency > read_timeout:
            outcome = APITimeoutError(f"read timed out after {read_timeout:g}s (simulated)")
            label, at = "timeout", now + read_timeout
            ends = at if status is None else now + latency  # a hang ends when the client leaves
        else:
            if reply.payload is not None:
                outcome = Response(status, reply.headers, b"", path, payload=reply.payload)
            else:
                outcome = Response(status, reply.headers, reply.body, path)
            label, at, ends = str(status), now + latency, now + latency
        if status == 200 and isinstance(reply.payload, dict):
            usage = reply.payload.get("usage") or {}
            tokens = self.billed.setdefault(str(reply.model), [0, 0])
            tokens[0] += int(usage.get("prompt_tokens") or 0)
            tokens[1] += int(usage.get("completion_tokens") or 0)
        self.statuses[label] = self.statuses.get(label, 0) + 1
        engine.schedule(ends, self._finish, (engine, reply, label != "timeout"))
        engine.reply(task, outcome, at)

    def _finish(self, arg: Tuple[Engine, Any, bool]) -> None:
        engine, reply, delivered = arg
        self.core.finish(reply, engine.clock.now, delivered=delivered)
