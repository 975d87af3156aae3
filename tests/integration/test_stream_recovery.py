"""Mid-stream recovery over real sockets against the simulator: a stream broken after its
first chunk is asked again through the same call flow, continued or cleanly restarted."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Any, Dict, List, Tuple

import pytest

import cometsync
from cometsync import APIStreamError, Constant, RetryPolicy
from simulator import Simulator

pytestmark = pytest.mark.socket

MSGS = [{"role": "user", "content": "tell me how retries work"}]
FAST = RetryPolicy(max_retries=1, backoff=Constant(0.01))
#: Every way a stream breaks after its first chunk (a stall waits out a 0.2 s read timeout).
FAULTS = ["truncate", "reset", "stall", "error", "malformed"]


def client_for(sim: Simulator, **kwargs: Any) -> cometsync.Client:
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("timeout", (1.0, 0.2))
    return cometsync.Client(api_key="sk-recovery-test", base_url=sim.base_url, **kwargs)


def models(m1: Dict[str, Any], **others: Dict[str, Any]) -> Dict[str, Any]:
    return {"seed": 4, "models": {"m1": {"token_ms": 1, **m1}, **others}}


def unbroken(model: str = "m1") -> str:
    """The answer a model gives to MSGS when nothing breaks (asked of a fresh simulator)."""
    with Simulator({"seed": 4, "models": {model: {}}}) as fresh, client_for(fresh) as client:
        text = client.chat.completions.create(model=model, messages=MSGS).choices[0]
    return str(text.message.content)


def read_all(stream: cometsync.Stream) -> Tuple[str, List[str]]:
    """What a reader printing the chunks shows, and the chunk texts in order."""
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    return "".join(pieces), pieces


def show(stream: cometsync.Stream, shown: List[str]) -> None:
    """Read a stream as a printing reader does, keeping what it showed."""
    for chunk in stream:
        shown.append(chunk.choices[0].delta.content or "")


def journal(sim: Simulator) -> List[Tuple[Any, ...]]:
    """(model, status, prefill) of each request; the broken stream's status shows as 200
    (the simulator journals a reply the client left before its end as unanswered)."""
    return [(r["model"], r["status"] or 200, r["prefill"]) for r in sim.journal()]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_broken_stream_is_continued_to_the_complete_answer(fault: str) -> None:
    """A cut, reset, stall, error or malformed event mid-answer: the reader's text is whole."""
    with Simulator(models({"script": [{"fault": fault}]})) as sim, client_for(sim) as client:
        stream = client.chat.completions.create(
            model="m1", messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
        shown, _ = read_all(stream)
        final = stream.get_final_completion()
        sent = journal(sim)
    whole = unbroken()
    assert shown == whole and final.choices[0].message.content == whole
    assert final.choices[0].finish_reason == "stop" and final.model == "m1"
    assert (stream.recoveries, stream.restarts) == (1, 0)
    assert sent == [("m1", 200, False), ("m1", 200, True)]
    broken, finished = stream.attempts
    assert broken.decision == "retry" and broken.error is not None
    assert broken.error.startswith("APIStreamError")
    assert (finished.attempt, finished.decision, finished.error) == (2, "success", None)
    assert finished.reason == "recovery: continued"
    assert final.usage is not None and final.usage.completion_tokens < len(whole.split())


@pytest.mark.parametrize("fault", FAULTS)
def test_a_model_refusing_the_prefill_restarts_cleanly_when_the_reader_opted_in(
    fault: str,
) -> None:
    """The prefill's 400 is followed by the plain request; the restart is signalled first."""
    spec = {"prefill": False, "script": [{"fault": fault}]}
    events: List[Tuple[str, int]] = []
    with Simulator(models(spec)) as sim, client_for(sim) as client:
        stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
        stream.on_restart(lambda text: events.append((text, stream.restarts)))
        before: List[str] = []
        after: List[str] = []
        for chunk in stream:
            (after if stream.restarts else before).append(chunk.choices[0].delta.content or "")
        final = stream.get_final_completion()
        sent = journal(sim)
    whole = unbroken()
    partial = "".join(before)
    assert partial and whole.startswith(partial) and partial != whole
    assert events == [(partial, 1)]
    assert "".join(after) == whole and final.choices[0].message.content == whole
    assert sent == [("m1", 200, False), ("m1", 400, True), ("m1", 200, False)]
    decisions = [(a.status, a.decision) for a in stream.attempts]
    assert decisions == [(200, "retry"), (400, "retry"), (200, "success")]
    assert "refused the prefill" in stream.attempts[1].reason
    assert stream.attempts[2].reason == "recovery: restarted"


def test_a_restart_is_silent_when_the_reader_saw_nothing() -> None:
    """get_final_completion() alone shows no chunk, so a restart needs no opt-in."""
    spec = {"prefill": False, "script": [{"fault": "truncate"}]}
    with Simulator(models(spec)) as sim, client_for(sim) as client:
        stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
        final = stream.get_final_completion()
    assert final.choices[0].message.content == unbroken()
    assert stream.restarts == 1


def test_no_restart_without_opt_in_after_text_was_shown() -> None:
    """A reader that printed text and did not opt in gets the original error, never a repeat."""
    spec = {"prefill": False, "script": [{"fault": "reset"}]}
    with Simulator(models(spec)) as sim, client_for(sim) as client:
        stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
        shown: List[str] = []
        with pytest.raises(APIStreamError) as info:
            show(stream, shown)
        sent = journal(sim)
    assert info.value.partial == "".join(shown) and shown
    assert "reset" in str(info.value)
    assert sent == [("m1", 200, False), ("m1", 400, True)]
    assert [a.decision for a in info.value.attempts] == ["retry", "raise"]


def test_a_fallback_refusing_the_prefill_does_not_mask_the_original_error() -> None:
    """The fallback's 400 "prefill not supported" is recorded; the stream's own break is raised."""
    scenario = models({"script": [{"fault": "truncate"}]}, m2={"prefill": False})
    with (
        Simulator(scenario) as sim,
        client_for(sim, retry=RetryPolicy(max_retries=0), fallback_models=["m2"]) as client,
    ):
        stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
        shown: List[str] = []
        with pytest.raises(APIStreamError) as info:
            show(stream, shown)
        sent = journal(sim)
    error = info.value
    assert type(error) is APIStreamError and error.model == "m1"
    assert "prefill" not in str(error) and error.partial == "".join(shown)
    assert sent == [("m1", 200, False), ("m2", 400, True)]
    assert [(a.model, a.status, a.decision) for a in error.attempts] == [
        ("m1", 200, "fallback"),
        ("m2", 400, "raise"),
    ]
    assert "BadRequestError" in str(error.attempts[1].error)


def test_a_failing_restart_still_raises_the_original_break() -> None:
    """Prefill refused, then the restart fails too: the raised error is still the first break."""
    scenario = models(
        {"script": [{"fault": "malformed"}]},
        m2={"prefill": False, "script": [503]},
    )
    with (
        Simulator(scenario) as sim,
        client_for(sim, retry=RetryPolicy(max_retries=0), fallback_models=["m2"]) as client,
    ):
        stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
        stream.on_restart(lambda text: None)
        with pytest.raises(APIStreamError, match="not JSON") as info:
            list(stream)
        sent = journal(sim)
    assert sent == [("m1", 200, False), ("m2", 400, True), ("m2", 503, False)]
    assert info.value.attempts[-1].status == 503


def test_the_next_model_continues_when_the_primary_has_no_retry_left() -> None:
    """Down the chain: the fallback continues the partial answer; model is the one finishing."""
    scenario = models({"script": [{"fault": "stall"}]}, m2={})
    with (
        Simulator(scenario) as sim,
        client_for(sim, retry=RetryPolicy(max_retries=0), fallback_models=["m2"]) as client,
    ):
        stream = client.chat.completions.create(
            model="m1", messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
        by_model: Dict[str, str] = {}
        for chunk in stream:
            text = chunk.choices[0].delta.content or "" if chunk.choices else ""
            by_model[chunk.model] = by_model.get(chunk.model, "") + text
        final = stream.get_final_completion()
        sent = journal(sim)
    partial, rest = by_model["m1"], by_model["m2"]
    assert partial and unbroken().startswith(partial) and rest.startswith(" ")
    assert final.choices[0].message.content == partial + rest
    assert final.model == "m2" and stream.model == "m2"
    assert sent == [("m1", 200, False), ("m2", 200, True)]
    assert final.usage is not None and final.usage.prompt_tokens > 10


def test_recovery_keeps_to_the_retry_policy() -> None:
    """Breaks are retries like any other: max_retries=1 means two streams, then the error."""
    script = [{"fault": "truncate"}, {"fault": "truncate"}, 200]
    with Simulator(models({"script": script})) as sim, client_for(sim) as client:
        stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
        with pytest.raises(APIStreamError) as info:
            list(stream)
        sent = journal(sim)
    assert sent == [("m1", 200, False), ("m1", 200, True)]
    assert [a.decision for a in info.value.attempts] == ["retry", "raise"]
    assert "retries exhausted" in info.value.attempts[-1].reason


def test_a_content_filter_error_event_mid_answer_is_not_asked_again() -> None:
    """An error event naming a 400 is not retried: the break is raised at once."""
    step = {"fault": "error", "status": 400, "code": "content_filter"}
    with (
        Simulator(models({"script": [step]}, m2={})) as sim,
        client_for(sim, fallback_models=["m2"]) as client,
    ):
        stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
        with pytest.raises(APIStreamError, match="content_filter"):
            list(stream)
        assert len(sim.journal()) == 1


def test_stream_recovery_false_keeps_todays_behaviour() -> None:
    """stream_recovery=False (client or with_options): one request, APIStreamError at once."""
    with (
        Simulator(models({"script": [{"fault": "truncate"}] * 2})) as sim,
        client_for(sim, stream_recovery=False) as off,
    ):
        on = off.with_options(stream_recovery=True)
        assert (off.stream_recovery, on.stream_recovery) == (False, True)
        for client in (off, on.with_options(stream_recovery=False)):
            stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
            with pytest.raises(APIStreamError) as info:
                list(stream)
            assert [a.decision for a in info.value.attempts] == ["raise"]
        assert len(sim.journal()) == 2
    with pytest.raises(cometsync.ConfigError, match="stream_recovery"):
        client_for(sim, stream_recovery="yes")


def test_recoveries_are_logged_and_reported_once_each(caplog: pytest.LogCaptureFixture) -> None:
    """on_attempt sees the broken attempt (decision retry) and the finishing one, once each."""
    seen: List[cometsync.Attempt] = []
    caplog.set_level(logging.INFO, logger="cometsync")
    with (
        Simulator(models({"script": [{"fault": "reset"}]})) as sim,
        client_for(sim, on_attempt=seen.append) as client,
    ):
        stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
        list(stream)
    assert [(a.attempt, a.decision) for a in seen] == [(1, "retry"), (2, "success")]
    assert seen == list(stream.attempts)
    assert seen[0].duration is not None and seen[1].duration is not None
    assert any("recovering" in r.getMessage() for r in caplog.records)


def run_cli(sim: Simulator, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMETAPI_")}
    env.update(COMETAPI_BASE_URL=sim.base_url, COMETAPI_KEY="sk-cli-recovery")
    return subprocess.run(
        [sys.executable, "-m", "cometsync", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_cli_chat_stream_prints_the_complete_answer_and_shows_the_recovery() -> None:
    """`chat --stream -v`: stdout is the whole answer once; stderr tells of the recovery."""
    with Simulator(models({"script": [{"fault": "reset"}]})) as sim:
        proc = run_cli(sim, "chat", "x", "-m", "m1", "--stream", "-v")
        plain = run_cli(sim, "chat", "x", "-m", "m1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == plain.stdout and plain.stdout.strip()
    assert "recovered 1 time(s) (0 restart(s)); finished by m1" in proc.stderr
    assert "decision=retry" in proc.stderr and "APIStreamError" in proc.stderr


def test_cli_chat_stream_announces_a_restart_before_the_new_answer() -> None:
    """A model refusing the prefill: the cut line ends, stderr says so, the answer follows."""
    with Simulator(models({"prefill": False, "script": [{"fault": "truncate"}]})) as sim:
        proc = run_cli(sim, "chat", "x", "-m", "m1", "--stream")
        plain = run_cli(sim, "chat", "x", "-m", "m1")
    assert proc.returncode == 0, proc.stderr
    partial, answer = proc.stdout.split("\n", 1)
    assert answer == plain.stdout and plain.stdout.startswith(partial)
    assert "it starts over below" in proc.stderr


def test_a_break_after_the_last_word_is_finished_by_an_empty_continuation() -> None:
    """Cut after every word but before the finish reason: the continuation adds nothing."""
    words = len(unbroken().split())
    step = {"fault": "truncate", "after_chunks": 1 + words}
    with Simulator(models({"script": [step]})) as sim, client_for(sim) as client:
        stream = client.chat.completions.create(model="m1", messages=MSGS, stream=True)
        shown, _ = read_all(stream)
        final = stream.get_final_completion()
        sent = journal(sim)
    assert shown == unbroken() == final.choices[0].message.content
    assert final.choices[0].finish_reason == "stop" and stream.recoveries == 1
    assert sent == [("m1", 200, False), ("m1", 200, True)]
