"""The stream faults of the fault model, planned with explicit times: no sockets, no sleeps."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest

from simulator import STREAM_FAULTS, Core, Reply, ScenarioError

KEY = "sk-test-0123456789abcd"
AUTH = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}


def chat(core: Core, stream: bool = True, **extra: Any) -> Reply:
    body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    reply = core.handle(
        "POST", "/v1/chat/completions", AUTH, json.dumps({**body, **extra}).encode(), 0.0
    )
    core.finish(reply, reply.latency)
    return reply


def scripted(step: Dict[str, Any], **top: Any) -> Core:
    return Core({"models": {"m1": {"script": [step]}}, **top})


def decoded(reply: Reply) -> List[Any]:
    """Each event's JSON, or its raw bytes when it is not JSON."""
    out: List[Any] = []
    for _, event in reply.events:
        data = event[len(b"data: ") :].strip()
        try:
            out.append(json.loads(data))
        except ValueError:
            out.append(data)
    return out


def test_a_healthy_stream_has_every_event() -> None:
    """Without a fault, the stream ends complete with a finish reason and [DONE]."""
    events = decoded(chat(Core({"models": {"m1": {}}})))
    assert events[-1] == b"[DONE]"
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("fault", "end"),
    [("truncate", "truncated"), ("reset", "reset"), ("stall", "stall")],
)
def test_breaking_faults_cut_the_stream_half_way_by_default(fault: str, end: str) -> None:
    """truncate, reset and stall send the first half of the events, then end their way."""
    full = decoded(chat(Core({"models": {"m1": {}}})))
    reply = chat(scripted({"fault": fault}, hang_s=7))
    events = decoded(reply)
    assert (reply.status, reply.end, reply.fault) == (200, end, fault)
    assert 1 < len(events) < len(full) - 2
    assert events == full[: len(events)]
    assert reply.hold == 7


def test_after_chunks_places_the_break() -> None:
    """after_chunks=0 breaks right after the headers; a large value stops before [DONE]."""
    assert decoded(chat(scripted({"fault": "reset", "after_chunks": 0}))) == []
    late = decoded(chat(scripted({"fault": "truncate", "after_chunks": 999})))
    assert late[-1] != b"[DONE]"
    assert late[-1]["choices"][0]["finish_reason"] == "stop"


def test_malformed_cuts_one_event_and_goes_on() -> None:
    """malformed sends one cut event in the middle and the rest of the stream after it."""
    full = decoded(chat(Core({"models": {"m1": {}}})))
    events = decoded(chat(scripted({"fault": "malformed", "after_chunks": 2})))
    assert isinstance(events[2], bytes) and events[2].startswith(b"{")
    assert events[:2] == full[:2] and events[3:] == full[3:]


def test_error_sends_an_error_event_and_no_done() -> None:
    """error ends the stream with an error event carrying the step's status, code and message."""
    step = {"fault": "error", "status": 429, "code": "rate_limit_exceeded", "message": "slow"}
    reply = chat(scripted({**step, "after_chunks": 1}))
    events = decoded(reply)
    assert reply.end == "complete" and len(events) == 2
    error = events[-1]["error"]
    assert (error["status"], error["code"]) == (429, "rate_limit_exceeded")
    assert error["message"].startswith("slow")
    plain = decoded(chat(scripted({"fault": "error"})))[-1]["error"]
    assert "status" not in plain and plain["code"] == "internal_error"


def test_error_and_stall_on_a_plain_request() -> None:
    """Without stream: error is a 200 carrying an error body; stall sends half a body, hangs."""
    error = chat(scripted({"fault": "error"}), stream=False)
    assert error.status == 200 and "error" in error.payload
    stall = chat(scripted({"fault": "stall"}), stream=False)
    assert stall.end == "stall" and stall.status == 200
    assert len(stall.body) < int(stall.headers["content-length"])


def test_stream_faults_drawn_by_rate_are_seeded() -> None:
    """A rate rule of stream faults plans the same replies for the same seed."""
    rules = [{"fault": f, "rate": 0.15} for f in STREAM_FAULTS]

    def plan(seed: int) -> List[Any]:
        core = Core(
            {
                "seed": seed,
                "models": {
                    "m1": {"faults": rules, "token_ms": {"dist": "uniform", "low": 1, "high": 9}}
                },
            }
        )
        return [(r.fault, r.end, r.events) for r in (chat(core) for _ in range(30))]

    first = plan(3)
    assert first == plan(3)
    assert {f for f, _, _ in first} > {None}
    assert first != plan(4)


def test_after_chunks_is_only_for_stream_faults() -> None:
    """after_chunks on another fault, or a negative one, is refused naming the field."""
    with pytest.raises(ScenarioError, match=r"models\.m1\.script\[0\]\.after_chunks"):
        Core({"models": {"m1": {"script": [{"fault": "html", "after_chunks": 1}]}}})
    with pytest.raises(ScenarioError, match="after_chunks"):
        Core({"models": {"m1": {"script": [{"fault": "reset", "after_chunks": -1}]}}})


def test_eof_ends_the_stream_cleanly_without_finish_or_done() -> None:
    """eof sends the first half of the events and a complete body: no finish reason, no [DONE]."""
    full = decoded(chat(Core({"models": {"m1": {}}})))
    reply = chat(scripted({"fault": "eof"}))
    events = decoded(reply)
    assert (reply.status, reply.end, reply.fault) == (200, "complete", "eof")
    assert 1 < len(events) < len(full) - 2 and events == full[: len(events)]
    assert all(e["choices"][0]["finish_reason"] is None for e in events)


def test_eof_on_a_plain_request_is_half_an_answer_without_finish_reason() -> None:
    """Without stream, eof answers a well-formed completion of half the words, finish null."""
    whole = chat(Core({"models": {"m1": {}}}), stream=False).payload
    cut = chat(scripted({"fault": "eof"}), stream=False)
    text = cut.payload["choices"][0]["message"]["content"]
    assert cut.status == 200 and cut.payload["choices"][0]["finish_reason"] is None
    assert 0 < len(text) < len(whole["choices"][0]["message"]["content"])
    assert whole["choices"][0]["message"]["content"].startswith(text)
