"""The faults a failover client must rescue, over real sockets: prefill, continuation, slow
first token, context length, and a model down for a window then healthy."""

from __future__ import annotations

import json
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest
import requests

from simulator import PRESETS, Core, ScenarioError, Simulator, parse_scenario

from .sim_helpers import chat

pytestmark = pytest.mark.socket

KEY = "sk-failover-test-4321"
HEADERS = {"Authorization": f"Bearer {KEY}"}
QUESTION = [{"role": "user", "content": "tell me about retries"}]


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.trust_env = False
        yield s


def ask(
    sim: Simulator,
    s: requests.Session,
    messages: List[Dict[str, Any]],
    model: str = "m1",
    **extra: Any,
) -> requests.Response:
    body = {"model": model, "messages": messages, **extra}
    url = f"{sim.base_url}/chat/completions"
    return s.post(url, json=body, headers=HEADERS, timeout=2, stream=bool(extra.get("stream")))


def stream_pieces(response: requests.Response) -> List[str]:
    """The content of each chunk of a streamed response, until [DONE] or the break."""
    out: List[str] = []
    try:
        for line in response.iter_lines():
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            try:
                event = json.loads(line[6:])
            except ValueError:
                continue
            for choice in event.get("choices") or ():
                out.append(choice["delta"].get("content") or "")
    except requests.RequestException:
        pass
    return [p for p in out if p]


def with_prefill(text: str) -> List[Dict[str, Any]]:
    return [*QUESTION, {"role": "assistant", "content": text}]


def test_a_model_without_prefill_refuses_a_trailing_assistant_message(
    session: requests.Session,
) -> None:
    """prefill=false: a 400 invalid_request_error about prefill; a plain request still works."""
    with Simulator({"models": {"m1": {"prefill": False}, "m2": {}}}) as sim:
        refused = ask(sim, session, with_prefill("The quick"), stream=True)
        plain = ask(sim, session, QUESTION)
        accepted = ask(sim, session, with_prefill("The quick"), model="m2")
        journal = sim.journal()
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "messages"
    assert "does not support assistant message prefill" in error["message"]
    assert plain.status_code == 200 and accepted.status_code == 200
    assert [(r["status"], r["prefill"], r["cause"]) for r in journal] == [
        (400, True, "invalid"),
        (200, False, "ok"),
        (200, True, "ok"),
    ]


def test_a_prefill_is_continued_where_the_unbroken_answer_goes_on(
    session: requests.Session,
) -> None:
    """With the first k chunks as a prefill, the answer is exactly the rest of the whole one."""
    with Simulator({"models": {"m1": {}}}, seed=3) as sim:
        whole = stream_pieces(ask(sim, session, QUESTION, stream=True))
        plain = ask(sim, session, QUESTION).json()["choices"][0]["message"]["content"]
        assert "".join(whole) == plain and len(whole) > 4
        for k in (1, 3, len(whole) - 1, len(whole)):
            prefix = "".join(whole[:k])
            rest = stream_pieces(ask(sim, session, with_prefill(prefix), stream=True))
            assert rest == whole[k:]
            answer = ask(sim, session, with_prefill(prefix)).json()
            assert prefix + answer["choices"][0]["message"]["content"] == plain
            assert answer["usage"]["completion_tokens"] == len(whole) - k
            assert answer["choices"][0]["finish_reason"] == "stop"


def test_a_stream_broken_half_way_is_completed_by_a_continuation(
    session: requests.Session,
) -> None:
    """A truncated stream's partial text plus the continuation spells the unbroken answer."""
    script = [{"fault": "truncate"}]
    with Simulator({"models": {"m1": {"script": script}}}, seed=5) as sim:
        partial = "".join(stream_pieces(ask(sim, session, QUESTION, stream=True)))
        rest = "".join(stream_pieces(ask(sim, session, with_prefill(partial), stream=True)))
        whole = "".join(stream_pieces(ask(sim, session, QUESTION, stream=True)))
    assert partial and rest and whole.startswith(partial)
    assert partial + rest == whole


def test_a_prefill_the_model_would_not_write_gets_a_fresh_deterministic_continuation(
    session: requests.Session,
) -> None:
    """Another model's partial answer is continued after a space, the same way every time."""
    with Simulator({"models": {"m1": {}, "m2": {}}}, seed=1) as sim:
        partial = "".join(stream_pieces(ask(sim, session, QUESTION, stream=True))[:3])
        first = ask(sim, session, with_prefill(partial), model="m2", stream=True)
        second = ask(sim, session, with_prefill(partial), model="m2", stream=True)
        rest = "".join(stream_pieces(first))
        assert rest == "".join(stream_pieces(second))
    assert rest.startswith(" ") and len(rest.split()) >= 8


def test_time_to_first_token_delays_the_first_chunk_not_the_head(
    session: requests.Session,
) -> None:
    """ttft_ms: the status line and headers come at once, the first chunk 0.3 s later."""
    with Simulator({"models": {"m1": {"ttft_ms": 300, "latency_ms": 2000}}}) as sim:
        started = time.monotonic()
        body = {"model": "m1", "messages": QUESTION, "stream": True}
        with session.post(
            f"{sim.base_url}/chat/completions", json=body, headers=HEADERS, stream=True
        ) as response:
            head_at = time.monotonic() - started
            assert response.status_code == 200
            pieces = response.iter_lines()
            first = next(line for line in pieces if line)
            first_at = time.monotonic() - started
            assert b'"role":"assistant"' in first
            second = next(line for line in pieces if line)
            second_at = time.monotonic() - started
    assert head_at < 0.15
    assert 0.3 <= first_at < 0.6
    assert b'"content"' in second and second_at - first_at < 0.1


def test_context_length_exceeded_is_openais_400(session: requests.Session) -> None:
    """A scripted context_length_exceeded, or a prompt over context_window: OpenAI's 400."""
    models = {
        "m1": {"script": [{"code": "context_length_exceeded"}]},
        "small": {"context_window": 20},
        "large": {"context_window": 100000},
    }
    long_prompt = [{"role": "user", "content": "word " * 100}]
    with Simulator({"models": models}) as sim:
        scripted = ask(sim, session, QUESTION, stream=True)
        too_long = ask(sim, session, long_prompt, model="small")
        fits = ask(sim, session, long_prompt, model="large")
        short = ask(sim, session, QUESTION, model="small")
        statuses = [(r["model"], r["status"], r["cause"]) for r in sim.journal()]
    for response, window in ((scripted, 8192), (too_long, 20)):
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "context_length_exceeded"
        assert error["type"] == "invalid_request_error" and error["param"] == "messages"
        assert error["message"].startswith(f"This model's maximum context length is {window} ")
    assert "resulted in 13" in too_long.json()["error"]["message"]
    assert fits.status_code == 200 and short.status_code == 200
    assert statuses[:2] == [("m1", 400, "script"), ("small", 400, "invalid")]


def test_a_model_down_for_a_window_answers_again_after_it(session: requests.Session) -> None:
    """An outage window from the start (the flap shape, scaled down) ends in healthy answers."""
    models = {"m1": {"outages": [{"start": 0, "end": 0.3, "status": 503}]}}
    with Simulator({"models": models}) as sim:
        sim.reset()
        down = ask(sim, session, QUESTION)
        time.sleep(0.35)
        up = ask(sim, session, QUESTION)
    assert down.status_code == 503 and "retry-after" not in down.headers
    assert up.status_code == 200


def test_the_flap_preset_is_down_six_seconds_then_healthy() -> None:
    """flap: the primary answers 503 without Retry-After for 6 s, then 200; fallbacks stay up."""
    core = Core("flap")
    assert chat(core, now=0.0, model="gpt-4o-mini").status == 503
    assert chat(core, now=5.9, model="gpt-4o-mini").status == 503
    assert chat(core, now=5.9, model="claude-3-5-haiku-latest").status == 200
    assert chat(core, now=6.0, model="gpt-4o-mini").status == 200
    assert "gpt-4o-mini" in PRESETS["flap"].models


@pytest.mark.parametrize(
    ("spec", "path", "problem"),
    [
        ({"prefill": "no"}, "models.m1.prefill", "must be true or false"),
        ({"context_window": 0}, "models.m1.context_window", "between 1"),
        ({"script": [{"code": "other"}]}, "models.m1.script[0]", "needs a status or a fault"),
    ],
)
def test_bad_failover_keys_are_named(spec: Dict[str, Any], path: str, problem: str) -> None:
    """A wrong prefill, context_window or status-less step is rejected naming the field."""
    with pytest.raises(ScenarioError) as info:
        parse_scenario({"models": {"m1": spec}})
    assert info.value.path == path and problem in info.value.problem


def test_a_code_alone_makes_a_context_length_step_a_400() -> None:
    """{"code": "context_length_exceeded"} needs no status: it is a 400."""
    step: Optional[Any] = (
        parse_scenario({"models": {"m1": {"script": [{"code": "context_length_exceeded"}]}}})
        .models["m1"]
        .script[0]
    )
    assert step is not None and (step.status, step.code) == (400, "context_length_exceeded")
