"""Mid-stream recovery on test doubles (fake clock, scripted transport): what is sent again,
and the same retry policy, deadline and budget as before the first chunk."""

from __future__ import annotations

from typing import Any, List, Sequence

import pytest

import cometsync
from cometsync import APIConnectionError, APIStreamError, Attempt, Constant, RetryPolicy
from cometsync._recovery import StreamBreak, break_verdict, refuses_prefill, resume_body
from cometsync._stream_state import add_usage
from cometsync.testing import (
    DONE,
    FakeClock,
    ScriptedTransport,
    StreamedResponse,
    chunk_body,
    json_response,
)

MSGS = [{"role": "user", "content": "hi"}]
POLICY = RetryPolicy(max_retries=1, backoff=Constant(0.5))
REFUSAL = {
    "error": {
        "message": "This model does not support assistant message prefill.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
}


def make(
    script: Sequence[Any], **kwargs: Any
) -> tuple[cometsync.Client, ScriptedTransport, FakeClock]:
    clock = FakeClock()
    transport = ScriptedTransport(script, clock=clock)
    kwargs.setdefault("retry", POLICY)
    client = cometsync.Client(api_key="k", transport=transport, clock=clock, **kwargs)
    return client, transport, clock


def cut(*words: str, model: str = "m1") -> StreamedResponse:
    """A stream sending ``words`` and then a reset."""
    pieces = [
        chunk_body(w, role="assistant" if i == 0 else None, model=model)
        for i, w in enumerate(words)
    ]
    return StreamedResponse(pieces, error=APIConnectionError("reset by peer"))


def rest(*words: str, model: str = "m1", usage: Any = None) -> StreamedResponse:
    """A complete stream sending ``words``."""
    pieces: List[Any] = [chunk_body("", role="assistant", model=model)]
    pieces += [chunk_body(w, model=model) for w in words]
    pieces.append(chunk_body(finish_reason="stop", model=model))
    if usage is not None:
        pieces.append(chunk_body(usage=usage, model=model))
    return StreamedResponse([*pieces, DONE])


def test_the_continuation_repeats_the_request_with_the_partial_answer_as_prefill() -> None:
    """Same model, same parameters, the messages plus an assistant message with the text."""
    client, transport, clock = make([cut("Hel", "lo"), rest(" world")])
    stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True, temperature=0.3)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    first, second = transport.bodies
    assert text == "Hello world"
    assert second == {**first, "messages": [*MSGS, {"role": "assistant", "content": "Hello"}]}
    assert second["temperature"] == 0.3 and second["stream"] is True
    assert clock.sleeps == [0.5]  # the policy's backoff, as before the first chunk


def test_a_deadline_reached_by_the_break_raises_the_original_error() -> None:
    """No recovery attempt is sent past the call's deadline."""
    client, transport, clock = make([cut("Hel"), rest("lo")], deadline=1.0)
    stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
    next(stream)
    clock.advance(2.0)
    with pytest.raises(APIStreamError, match="reset by peer") as info:
        list(stream)
    assert len(transport.requests) == 1
    assert info.value.partial == "Hel"
    assert "deadline" in info.value.attempts[-1].reason


def test_an_exhausted_retry_budget_moves_to_the_next_model() -> None:
    """The retry budget applies to a recovery like to any retry."""
    off = cometsync.Protections(budget=cometsync.RetryBudget(ratio=0.0, min_retries=0))
    client, transport, _ = make(
        [cut("Hel", model="m1"), rest("lo", model="m2")],
        fallback_models=["m2"],
        protections=off,
    )
    stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
    assert stream.get_final_completion().choices[0].message.content == "Hello"
    assert [b["model"] for b in transport.bodies] == ["m1", "m2"]
    assert stream.attempts[0].reason == "retry budget exhausted"


def test_a_partial_tool_call_is_restarted_only_when_nothing_was_shown() -> None:
    """Tool-call deltas cannot be a prefill: the request is asked again as it was."""
    call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f"}}
    broken = StreamedResponse(
        [
            {
                **chunk_body(role="assistant"),
                "choices": [{"index": 0, "delta": {"tool_calls": [call]}}],
            }
        ],
        error=APIConnectionError("reset"),
    )
    client, transport, _ = make([broken, rest("ok")])
    stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
    assert stream.get_final_completion().choices[0].message.content == "ok"
    assert transport.bodies[1] == transport.bodies[0]
    assert stream.restarts == 1


def test_usage_sums_what_the_server_reported_for_the_answer() -> None:
    """The continuation's usage, plus any usage the broken attempt had already reported."""
    usage = {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}
    client, _, _ = make([cut("Hel"), rest("lo", usage=usage)])
    stream = client.chat.completions.create(
        model="m1", messages=MSGS, stream=True, stream_options={"include_usage": True}
    )
    final = stream.get_final_completion()
    assert final.usage is not None and final.usage.total_tokens == 10
    a = cometsync.Usage.from_dict({"prompt_tokens": 1, "completion_tokens": 2})
    total = add_usage(a, final.usage)
    assert total is not None and (total.prompt_tokens, total.total_tokens) == (10, 13)
    assert add_usage(None, None) is None and add_usage(a, None) is a


def test_a_refused_prefill_is_recognised_only_on_a_400_about_it() -> None:
    """Anthropic's wording on a 400 counts; a 400 about anything else, or a 503, does not."""
    assert refuses_prefill(json_response(400, REFUSAL))
    other = {"error": {"message": "temperature must be <= 2", "code": "invalid_request_error"}}
    assert not refuses_prefill(json_response(400, other))
    assert not refuses_prefill(json_response(503, REFUSAL))
    assert not refuses_prefill(APIConnectionError("reset"))


def test_a_break_is_classified_by_its_cause() -> None:
    """A reset is a retryable transport error, an error event its status, a cut an invalid body."""
    error = APIStreamError("broke", partial="x")

    def verdict(cause: Any) -> Any:
        return break_verdict(StreamBreak(error, cause, None, True), POLICY, model="m1", now=0.0)

    assert verdict(APIConnectionError("reset")).retry
    assert verdict(None).retry and verdict(None).fallback
    refused = verdict(json_response(400, {"error": {"message": "content_filter"}}))
    assert not refused.retry and not refused.fallback and refused.error is error


def test_resume_body_continues_unless_the_model_refused() -> None:
    """The continuation goes to every model but those that refused one: a restart, if allowed."""
    brk = StreamBreak(APIStreamError("x"), None, {"messages": ["m", "a"]}, True)
    assert resume_body(brk, {"messages": ["m"]}, "m1", ()) == (
        {"messages": ["m", "a"], "model": "m1"},
        True,
    )
    assert resume_body(brk, {"messages": ["m"]}, "m1", ["m1"]) == (
        {"messages": ["m"], "model": "m1"},
        False,
    )
    assert resume_body(brk._replace(restart=False), {"messages": ["m"]}, "m1", ["m1"]) is None


def test_the_finishing_attempt_is_reported_once_with_its_duration() -> None:
    """on_attempt: the broken attempt (retry) then the finishing one (success), once each."""
    seen: List[Attempt] = []
    client, _, clock = make([cut("Hel"), rest("lo")], on_attempt=seen.append)
    stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
    next(stream)
    clock.advance(1.0)
    list(stream)
    assert [(a.attempt, a.decision) for a in seen] == [(1, "retry"), (2, "success")]
    assert seen[0].duration == pytest.approx(1.0)


def test_the_sans_io_flow_delivers_then_resumes_with_the_continuation() -> None:
    """call_flow yields Deliver, takes a StreamBreak, sleeps its backoff, sends the prefill."""
    from cometsync._flow import CallSpec, Deliver, Send, Sleep, call_flow

    spec: CallSpec[str] = CallSpec(
        method="POST",
        path="/chat/completions",
        route="/v1/chat/completions",
        parse=lambda response, model: f"stream from {model}",
        body={"messages": MSGS},
        stream=True,
        recover=True,
    )
    flow = call_flow(spec, ["m1"], POLICY, clock=FakeClock(), timeout=cometsync.Timeout())
    send = next(flow)
    assert isinstance(send, Send) and send.body == {"messages": MSGS, "model": "m1"}
    delivered = flow.send(json_response(200, {}))
    assert delivered == Deliver("stream from m1", False)
    prefill = {"messages": [*MSGS, {"role": "assistant", "content": "Hel"}]}
    error = APIStreamError("cut", partial="Hel")
    assert isinstance(flow.send(StreamBreak(error, None, prefill, False)), Sleep)
    again = flow.send(None)
    assert isinstance(again, Send) and again.body == {**prefill, "model": "m1"}
    assert again.attempt == 2
    assert flow.send(json_response(200, {})) == Deliver("stream from m1", True)
    flow.close()


def test_a_stall_after_chunks_is_recorded_as_a_mid_stream_stall() -> None:
    """A read timeout after chunks arrived is not 'no response': the reason says what happened."""
    pieces = [chunk_body("Hel", role="assistant"), chunk_body("lo")]
    stall = StreamedResponse(pieces, error=cometsync.APITimeoutError("read timed out"))
    client, transport, _ = make([stall, rest(" world", model="m2")], fallback_models=["m2"])
    stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
    assert stream.get_final_completion().choices[0].message.content == "Hello world"
    first = stream.attempts[0]
    assert (first.model, first.decision) == ("m1", "fallback")
    assert "no response" not in first.reason
    assert first.reason.startswith("stream stalled after 2 chunks")
