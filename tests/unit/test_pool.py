"""submit and the ordered, lazy, bounded map on the client's thread pool (no sockets)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Dict, Iterator, List

import pytest

import cometsync
from cometsync import RequestValidationError, Timeout
from cometsync._pool import bounded_map, map_window, ordered_map
from cometsync.testing import FakeClock, completion_body, json_response

KEY = "sk-test-SECRET-pool"


class Echo:
    """Answers each request with its own message content; waits on a per-content gate."""

    def __init__(self, gates: Dict[str, threading.Event] | None = None) -> None:
        self.gates = gates or {}
        self.lock = threading.Lock()
        self.sent: List[str] = []

    def send(self, request: cometsync.HTTPRequest, timeout: Timeout) -> cometsync.Response:
        text = json.loads(request.body or b"{}")["messages"][0]["content"]
        with self.lock:
            self.sent.append(text)
        gate = self.gates.get(text)
        if gate is not None:
            gate.wait(5)
        if text.startswith("fail"):
            return json_response(400, {"error": {"message": "bad", "code": "invalid_request"}})
        return json_response(200, completion_body(text))

    def close(self) -> None:
        pass


def req(text: str) -> Dict[str, Any]:
    return {"model": "m1", "messages": [{"role": "user", "content": text}]}


def make(transport: Echo, max_workers: int = 4) -> cometsync.Client:
    return cometsync.Client(api_key=KEY, transport=transport, max_workers=max_workers)


def content(r: Any) -> Any:
    return r.choices[0].message.content


def test_submit_returns_a_future_of_the_completion() -> None:
    """submit runs create on the pool and its future holds the completion."""
    with make(Echo()) as client:
        future = client.chat.completions.submit(**req("a"))
        assert isinstance(future, Future)
        assert content(future.result(timeout=5)) == "a"


def test_submit_puts_a_bad_request_in_the_future() -> None:
    """A request that cannot be valid fails its future, not the caller."""
    with make(Echo()) as client:
        future = client.chat.completions.submit(messages=[{"role": "user", "content": "x"}])
        with pytest.raises(cometsync.RequestTypeError, match="model"):
            future.result(timeout=5)


def test_stream_is_refused_by_submit_and_map() -> None:
    """stream=True is refused clearly: at once by submit, as the item's failure by map."""
    with make(Echo()) as client:
        with pytest.raises(RequestValidationError, match="stream=True cannot be used"):
            client.chat.completions.submit(stream=True, **req("a"))
        out = list(
            client.chat.completions.map([{**req("a"), "stream": True}], return_exceptions=True)
        )
        assert isinstance(out[0], RequestValidationError)


def test_map_yields_in_input_order_whatever_the_completion_order() -> None:
    """Results come back in input order even when later items finish first."""
    gate = threading.Event()
    transport = Echo({"0": gate})
    with make(transport) as client:
        results = client.chat.completions.map(req(str(i)) for i in range(6))
        threading.Timer(0.05, gate.set).start()
        assert [content(r) for r in results] == [str(i) for i in range(6)]
    assert sorted(transport.sent) == [str(i) for i in range(6)]


def test_map_reads_its_input_lazily_within_a_bounded_window() -> None:
    """Input is read at most map's window ahead of what was yielded."""
    consumed = [0]

    def endless() -> Iterator[Dict[str, Any]]:
        i = 0
        while True:
            consumed[0] += 1
            yield req(str(i))
            i += 1

    with make(Echo(), max_workers=3) as client:
        results = client.chat.completions.map(endless())
        assert consumed[0] == 0  # nothing happens before the first result is asked for
        for n, r in enumerate(results):
            assert content(r) == str(n)
            assert consumed[0] <= n + 1 + map_window(3)
            if n == 50:
                break
    assert consumed[0] >= 2 * 3  # read ahead, not one item at a time


def test_ordered_map_keeps_workers_busy_behind_a_slow_head() -> None:
    """While the head is slow, the window keeps every worker busy with later items."""
    release = threading.Event()
    started: List[int] = []
    lock = threading.Lock()

    def job(i: int) -> int:
        with lock:
            started.append(i)
        if i == 0:
            release.wait(5)
        return i

    with ThreadPoolExecutor(2) as pool:
        results = ordered_map(lambda i: pool.submit(job, i), range(10), window=4)
        threading.Timer(0.1, release.set).start()
        assert next(results) == 0
        assert len(started) >= 3  # head + at least two others ran while the head waited
        assert list(results) == list(range(1, 10))


def test_return_exceptions_puts_each_failure_in_place() -> None:
    """With return_exceptions, failures (API errors, bad items) are yielded in their slot."""
    items: List[Any] = [req("a"), req("fail"), {"messages": req("x")["messages"]}, "nope", req("b")]
    with make(Echo()) as client:
        out = list(client.chat.completions.map(items, return_exceptions=True))
    assert content(out[0]) == "a" and content(out[4]) == "b"
    assert isinstance(out[1], cometsync.BadRequestError)
    assert isinstance(out[2], cometsync.RequestTypeError)  # no model
    assert "requests[2]" in str(out[2]) and "'model'" in str(out[2])
    assert isinstance(out[3], cometsync.RequestTypeError)
    assert "requests[3]" in str(out[3]) and "dict of create() arguments" in str(out[3])


def test_embeddings_map_and_submit_name_an_item_without_a_model() -> None:
    """A bad embeddings item fails alone as a RequestTypeError naming the missing argument."""
    with make(Echo()) as client:
        out = list(client.embeddings.map([{"input": "x"}, 7], return_exceptions=True))
        future = client.embeddings.submit(input="x")
    assert isinstance(out[0], cometsync.RequestTypeError) and "'model'" in str(out[0])
    assert isinstance(out[1], cometsync.RequestTypeError) and "requests[1]" in str(out[1])
    assert isinstance(future.exception(), cometsync.RequestTypeError)


def test_first_failure_is_raised_and_unstarted_items_are_cancelled() -> None:
    """Without return_exceptions the first failure is raised and later items never start."""
    gate = threading.Event()
    transport = Echo({"fail": gate})
    with make(transport, max_workers=1) as client:
        results = client.chat.completions.map([req("fail"), *[req(str(i)) for i in range(20)]])
        threading.Timer(0.05, gate.set).start()
        with pytest.raises(cometsync.BadRequestError):
            next(results)
    assert len(transport.sent) <= 2  # the failing head and at most the one running beside it


def test_keyboard_interrupt_during_map_cancels_and_returns_quickly() -> None:
    """Ctrl-C while map waits returns control at once and starts nothing more."""
    gate = threading.Event()
    transport = Echo({str(i): gate for i in range(100)})  # every call waits: none finishes
    client = make(transport, max_workers=2)
    results = client.chat.completions.map(req(str(i)) for i in range(100))
    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        next(results)
    assert time.monotonic() - began < 1.0
    gate.set()
    client.close()
    assert len(transport.sent) <= 2  # what was running; the queued ones were cancelled


def test_close_shuts_the_pool_down_and_refuses_new_work() -> None:
    """After close, submit and map raise and no pool thread is left."""
    client = make(Echo())
    client.chat.completions.submit(**req("a")).result(timeout=5)
    client.close()
    with pytest.raises(cometsync.ClientClosedError, match="closed"):
        client.chat.completions.submit(**req("a"))
    with pytest.raises(cometsync.ClientClosedError, match="closed"):
        client.chat.completions.map([req("a")])
    assert not [t for t in threading.enumerate() if t.name.startswith("cometsync")]


def test_a_thousand_create_close_cycles_leave_no_threads() -> None:
    """Clients that used their pool and were closed leave no thread behind."""
    before = threading.active_count()
    for i in range(1000):
        with make(Echo(), max_workers=2) as client:
            if i % 100 == 0:
                client.chat.completions.submit(**req("a")).result(timeout=5)
    assert threading.active_count() == before


def test_with_options_copies_share_pool_and_protections() -> None:
    """A with_options copy uses the same pool and the same protection state."""
    with make(Echo()) as client:
        copy = client.with_options(max_retries=0)
        copy.chat.completions.submit(**req("a")).result(timeout=5)
        assert client._shared.executor is copy._shared.executor is not None
        assert client.stats() == copy.stats()
        assert client.stats()["budget"]["calls"] == 1


def test_keyboard_interrupt_also_cancels_the_awaited_head() -> None:
    """The item being waited on is cancelled too when it has not started (a shared pool)."""
    busy = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(busy.wait, 2.0)  # the only worker is busy elsewhere
        started: List[int] = []

        def submit(i: int) -> Future[int]:
            return pool.submit(lambda: started.append(i) or i)

        results = ordered_map(submit, range(3), window=3)
        timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            next(results)
        busy.set()
    assert started == []


def test_a_failing_input_still_delivers_what_was_started_then_raises() -> None:
    """Calls already sent are paid for: their results come out before the input's error."""

    def source() -> Iterator[int]:
        yield from range(3)
        raise ValueError("bad input row")

    with ThreadPoolExecutor(2) as pool:
        results = ordered_map(lambda i: pool.submit(lambda: i * 10), source(), window=4)
        got = [next(results), next(results), next(results)]
        with pytest.raises(ValueError, match="bad input row"):
            next(results)
    assert got == [0, 10, 20]


class HeldBackoff:
    """A clock whose sleeps (a retry's backoff) last until ``release`` is set, 5 s at most."""

    def __init__(self) -> None:
        self.fake = FakeClock()
        self.release = threading.Event()
        self.released: List[bool] = []  # per sleep: whether it ended by release, not timeout

    def monotonic(self) -> float:
        return self.fake.monotonic()

    def time(self) -> float:
        return self.fake.time()

    def sleep(self, seconds: float) -> None:
        self.released.append(self.release.wait(5))


class HeadFailsOnce(Echo):
    """The item "head" gets a 503 first; the backoff ends once ``others`` items succeeded."""

    def __init__(self, clock: HeldBackoff, others: int) -> None:
        super().__init__()
        self.clock = clock
        self.others = others
        self.head_sends = 0

    def send(self, request: cometsync.HTTPRequest, timeout: Timeout) -> cometsync.Response:
        text = json.loads(request.body or b"{}")["messages"][0]["content"]
        if text == "head":
            self.head_sends += 1
            if self.head_sends == 1:
                return json_response(503, {"error": {"message": "busy", "code": None}})
            return json_response(200, completion_body(text))
        response = super().send(request, timeout)
        with self.lock:
            if len(self.sent) == self.others:
                self.clock.release.set()
        return response


@pytest.mark.parametrize("ordered", [True, False])
def test_a_head_in_backoff_does_not_stall_the_other_items(ordered: bool) -> None:
    """Every other item finishes while the head waits out its backoff, in either order."""
    clock = HeldBackoff()
    others = 300  # far more than the pool, or than twice the pool
    transport = HeadFailsOnce(clock, others)
    items = [req("head")] + [req(str(i)) for i in range(others)]
    with cometsync.Client(api_key=KEY, transport=transport, clock=clock, max_workers=4) as c:
        out = [content(r) for r in c.chat.completions.map(items, ordered=ordered)]
    assert clock.released == [True]  # the backoff ended because all the others were done
    assert transport.head_sends == 2
    expected = ["head"] + [str(i) for i in range(others)]
    if ordered:
        assert out == expected
    else:
        assert out[-1] == "head" and sorted(out) == sorted(expected)


def test_unordered_map_yields_in_completion_order() -> None:
    """ordered=False yields each result as it finishes, whatever its input position."""
    gates = {str(i): threading.Event() for i in range(3)}
    with make(Echo(gates), max_workers=4) as client:
        results = client.chat.completions.map((req(str(i)) for i in range(3)), ordered=False)
        out = []
        for name in ("2", "0", "1"):
            gates[name].set()
            out.append(content(next(results)))
        assert out == ["2", "0", "1"]
        assert list(results) == []


def test_ordered_must_be_a_bool() -> None:
    """A non-bool ordered= is refused by name (a typo like ordered='no' would be truthy)."""
    with make(Echo()) as client, pytest.raises(TypeError, match="ordered must be True or False"):
        client.chat.completions.map([req("a")], ordered="no")  # type: ignore[arg-type]


def test_a_stuck_head_holds_at_most_the_window_then_reading_stops() -> None:
    """Behind a head that never finishes, reading stops at the window: memory stays bounded."""
    gate = threading.Event()
    consumed = [0]

    def endless() -> Iterator[int]:
        i = 0
        while True:
            consumed[0] += 1
            yield i
            i += 1

    def job(i: int) -> int:
        if i == 0:
            gate.wait(5)
        return i

    with ThreadPoolExecutor(2) as pool:
        results = bounded_map(lambda i: pool.submit(job, i), endless(), window=20, ahead=3)
        threading.Timer(0.2, gate.set).start()
        assert next(results) == 0
        assert consumed[0] <= 21  # the window plus the one read as the head was yielded
        assert consumed[0] >= 19  # the workers used the whole window while the head waited
        assert [next(results) for _ in range(100)] == list(range(1, 101))
        results.close()  # type: ignore[attr-defined]


def test_unordered_map_raises_the_first_failure_to_finish() -> None:
    """Without return_exceptions, ordered=False raises the first failure in finishing order."""
    gate = threading.Event()
    with make(Echo({"0": gate}), max_workers=2) as client:
        results = client.chat.completions.map([req("0"), req("fail")], ordered=False)
        with pytest.raises(cometsync.BadRequestError):
            next(results)
        gate.set()


def test_a_failure_behind_a_slow_head_stops_the_reading() -> None:
    """Once a later item has failed (to be raised in its turn), no further item is read."""
    gate = threading.Event()
    consumed = [0]

    def source() -> Iterator[int]:
        for i in range(1000):
            consumed[0] += 1
            yield i

    def job(i: int) -> int:
        if i == 0:
            gate.wait(5)
        if i == 3:
            raise ValueError("item 3 failed")
        return i

    with ThreadPoolExecutor(2) as pool:
        results = bounded_map(lambda i: pool.submit(job, i), source(), window=500, ahead=2)
        threading.Timer(0.2, gate.set).start()
        assert [next(results), next(results), next(results)] == [0, 1, 2]
        with pytest.raises(ValueError, match="item 3"):
            next(results)
    assert consumed[0] <= 3 + 1 + 2  # up to the failure, plus what was in the pool beside it
