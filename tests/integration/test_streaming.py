"""Streams over real sockets: chunk timing, stalls, resets, and connections given back."""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest
import requests

import cometsync
from cometsync import APIStreamError, Constant, RetryPolicy
from cometsync.testing import DONE, chunk_body
from simulator import Simulator, SimulatorAdapter

from .sse_server import SSEServer, StreamReply, event

pytestmark = pytest.mark.socket

MSGS = [{"role": "user", "content": "hi"}]
FAST = RetryPolicy(max_retries=1, backoff=Constant(0.01))


def reply(*words: str, end: str = "complete", delay: float = 0.0, done: bool = True) -> StreamReply:
    pieces = [
        (delay, event(chunk_body(w, role="assistant" if i == 0 else None)))
        for i, w in enumerate(words)
    ]
    if end == "complete":
        pieces.append((0.0, event(chunk_body(finish_reason="stop"))))
        if done:
            pieces.append((0.0, DONE))
    return StreamReply(pieces, end=end)


@pytest.fixture
def sse() -> Iterator[SSEServer]:
    with SSEServer() as server:
        yield server


def client_for(server: SSEServer, **kwargs: Any) -> cometsync.Client:
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("timeout", (1.0, 0.2))
    return cometsync.Client(api_key="k", base_url=server.base_url, **kwargs)


def open_stream(client: cometsync.Client) -> cometsync.Stream:
    return client.chat.completions.create(model="m1", messages=MSGS, stream=True)


def test_the_first_chunk_arrives_before_the_rest_and_the_connection_is_reused(
    sse: SSEServer,
) -> None:
    """create() returns at the first chunk while the server holds the rest; then it is reused."""
    gate = threading.Event()
    held = reply("a", "b")
    held.gate = gate
    sse.script = [held, reply("c")]
    with client_for(sse) as client:
        stream = open_stream(client)
        assert held.sent == 1  # create() did not wait for the rest
        time.sleep(0.05)
        gate.set()
        texts = [c.choices[0].delta.content for c in stream]
        assert stream.closed
        again = open_stream(client).get_final_completion()
    assert texts == ["a", "b", None]
    last = stream.attempts[-1]
    assert last.duration is not None and last.duration >= last.latency + 0.05
    assert again.choices[0].message.content == "c"
    assert sse.connections == 1
    assert sse.bodies[0]["stream"] is True


def test_a_stall_before_the_first_chunk_is_retried(sse: SSEServer) -> None:
    """A server silent for longer than the read timeout before any chunk is retried."""
    sse.script = [StreamReply([], end="stall"), reply("ok")]
    with client_for(sse) as client:
        stream = open_stream(client)
        assert stream.get_final_completion().choices[0].message.content == "ok"
    assert [a.decision for a in stream.attempts] == ["retry", "success"]
    assert stream.attempts[0].error is not None and "APITimeoutError" in stream.attempts[0].error


@pytest.mark.parametrize(
    ("end", "problem"),
    [("stall", "timed out"), ("reset", "connection failed"), ("eof", "connection failed")],
)
def test_a_break_after_the_first_chunk_raises_with_the_partial_text(
    sse: SSEServer, end: str, problem: str
) -> None:
    """Without recovery, a stall, reset or early close mid-stream raises, never ends quietly."""
    sse.script = [reply("Hel", "lo", end=end)]
    with client_for(sse, stream_recovery=False) as client:
        stream = open_stream(client)
        start = time.monotonic()
        with pytest.raises(APIStreamError, match=problem) as info:
            for _ in stream:
                pass
        assert time.monotonic() - start < 0.8
    assert info.value.partial == "Hello"
    assert len(sse.bodies) == 1


def test_a_thousand_abandoned_streams_do_not_exhaust_the_pool(
    sse: SSEServer, caplog: pytest.LogCaptureFixture
) -> None:
    """1,000 streams left half-way (break, close, dropped) on max_workers=4 leak nothing."""
    sse.default = reply("a", "b", "c", "d")
    caplog.set_level(logging.WARNING)
    errors: List[BaseException] = []
    with client_for(sse, max_workers=4) as client:

        def worker(offset: int) -> None:
            try:
                for i in range(offset, 1000, 4):
                    stream = open_stream(client)
                    if i % 3 == 0:
                        with stream:
                            for _ in stream:
                                break
                    elif i % 3 == 1:
                        next(stream)
                        stream.close()
                    else:
                        next(stream)
                        next(stream)
                        del stream  # dropped: the garbage collector gives it back
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        gc.collect()
        assert errors == []
        assert open_stream(client).get_final_completion().choices[0].message.content == "abcd"
        pool = client._shared.transport.manager.connection_from_url(sse.base_url)  # type: ignore[attr-defined]
    assert len(sse.bodies) == 1001
    assert pool.num_connections <= 4
    assert sse.peak <= 4 + 4  # the server notices closes a little late
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


# -- against the simulator -------------------------------------------------------------------
STREAM_FAULTS = [
    ("truncate", "ended prematurely|InvalidChunkLength"),  # urllib3 2.x | 1.26 wording
    ("reset", "connection failed"),
    ("malformed", "not JSON"),
    ("error", "error event"),
    ("stall", "timed out"),
]


def sim_client(sim: Simulator, **kwargs: Any) -> cometsync.Client:
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("timeout", (1.0, 0.2))
    return cometsync.Client(api_key="sk-test", base_url=sim.base_url, **kwargs)


def scenario(script: List[Any], **m1: Any) -> Dict[str, Any]:
    return {"models": {"m1": {"script": script, "token_ms": 1, **m1}, "m2": {"token_ms": 1}}}


@pytest.mark.parametrize(("fault", "problem"), STREAM_FAULTS)
def test_each_simulated_fault_mid_stream_raises_with_the_partial_text(
    fault: str, problem: str
) -> None:
    """Without recovery, every simulator stream fault mid-stream raises; nothing is retried."""
    with (
        Simulator(scenario([{"fault": fault}]), seed=5) as sim,
        sim_client(sim, stream_recovery=False) as client,
    ):
        stream = open_stream(client)
        with pytest.raises(APIStreamError, match=problem) as info:
            for _ in stream:
                pass
        plain = client.chat.completions.create(model="m1", messages=MSGS)
        journal = sim.journal()
    text = plain.choices[0].message.content
    assert text and info.value.partial and text.startswith(info.value.partial)
    assert info.value.partial != text
    assert [r["stream"] for r in journal] == [True, False]  # the stream was not retried
    assert info.value.attempts[-1].decision == "raise"


@pytest.mark.parametrize(("fault", "problem"), STREAM_FAULTS)
def test_each_simulated_fault_before_the_first_chunk_is_retried(fault: str, problem: str) -> None:
    """Before the first chunk every stream fault is retried, and the answer equals the plain one."""
    step = {"fault": fault, "after_chunks": 0}
    with Simulator(scenario([step]), seed=5) as sim, sim_client(sim) as client:
        stream = client.chat.completions.create(
            model="m1", messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
        final = stream.get_final_completion()
        plain = client.chat.completions.create(model="m1", messages=MSGS)
    assert [a.decision for a in stream.attempts] == ["retry", "success"]
    assert final.choices == plain.choices
    assert final.usage == plain.usage
    assert final.model == plain.model


def test_streaming_falls_back_to_the_next_model_before_the_first_chunk() -> None:
    """When m1 fails before any chunk on every attempt, m2 streams the answer."""
    resets = [{"fault": "reset", "after_chunks": 0}] * 2
    with Simulator(scenario(resets), seed=1) as sim, sim_client(sim) as client:
        stream = client.chat.completions.create(
            model="m1", messages=MSGS, stream=True, fallback_models=["m2"]
        )
        text = stream.get_final_completion().choices[0].message.content
    assert stream.model == "m2" and text
    assert [(a.model, a.decision) for a in stream.attempts] == [
        ("m1", "retry"),
        ("m1", "fallback"),
        ("m2", "success"),
    ]


def test_an_error_event_is_classified_by_the_status_it_names() -> None:
    """An error event naming 400 raises BadRequestError at once; one naming 429 is retried."""
    bad = {"fault": "error", "after_chunks": 0, "status": 400, "code": "invalid_request"}
    with Simulator(scenario([bad]), seed=1) as sim, sim_client(sim) as client:
        with pytest.raises(cometsync.BadRequestError):
            open_stream(client)
        assert len(sim.journal()) == 1
    limited = {"fault": "error", "after_chunks": 0, "status": 429}
    with Simulator(scenario([limited]), seed=1) as sim, sim_client(sim) as client:
        stream = open_stream(client)
    assert stream.attempts[0].status == 429
    assert stream.attempts[0].error is not None
    assert stream.attempts[0].error.startswith("RateLimitError")


def test_time_to_first_chunk_and_duration_follow_the_simulated_delays() -> None:
    """ttft_ms shows in the attempt's latency, and token delays in its duration."""
    recorder = cometsync.MetricsRecorder()
    models = {"m1": {"ttft_ms": 60, "token_ms": 15}}
    with Simulator({"models": models}) as sim, sim_client(sim, on_attempt=recorder) as client:
        stream = open_stream(client)
        chunks = list(stream)
    attempt = stream.attempts[-1]
    assert attempt.latency >= 0.06
    assert attempt.duration is not None
    assert attempt.duration >= attempt.latency + 0.015 * (len(chunks) - 3)
    assert recorder.duration_snapshot()[0]["p50"] == attempt.duration
    assert recorder.snapshot()[0]["p50"] == attempt.latency


def test_the_in_process_adapter_streams_event_by_event() -> None:
    """Through the in-process adapter the first chunk comes before the token delays are slept."""
    slept: List[float] = []
    adapter = SimulatorAdapter(
        {"models": {"m1": {"ttft_ms": 5, "token_ms": 7}}}, sleep=slept.append
    )
    session = requests.Session()
    session.mount("http://sim.local/", adapter)
    client = cometsync.Client(api_key="k", base_url="http://sim.local/v1", session=session)
    stream = open_stream(client)
    assert slept == [0.005]
    text = stream.get_final_completion().choices[0].message.content
    assert text and slept.count(0.007) >= 1


def test_a_server_holding_the_body_open_after_done_does_not_hold_the_caller(
    sse: SSEServer,
) -> None:
    """Keep-alive comments after [DONE] never reset a wait: the loop ends at once."""
    held = reply("a")
    held.pieces += [(0.1, b": keep-alive\n\n")] * 10  # a second of comments, then the end
    sse.script = [held]
    with client_for(sse) as client:
        began = time.monotonic()
        texts = [c.choices[0].delta.content for c in open_stream(client) if c.choices]
        elapsed = time.monotonic() - began
    assert texts == ["a", None]
    assert elapsed < 0.5


def test_close_from_another_thread_ends_the_stream_quietly(sse: SSEServer) -> None:
    """close() while the reader waits makes the reader's loop end, not raise a stray error."""
    slow = reply("a", "b")
    slow.pieces[1] = (0.4, slow.pieces[1][1])
    sse.script = [slow]
    with client_for(sse, timeout=(1.0, 2.0)) as client:
        stream = open_stream(client)
        threading.Timer(0.1, stream.close).start()
        texts = [c.choices[0].delta.content for c in stream if c.choices]
    assert texts == ["a"]
    assert stream.closed
