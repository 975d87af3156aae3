"""The routes on their own: a request answered or accepted without any of the core's state."""

from __future__ import annotations

import json
from typing import Any, Optional, Union

from simulator import load_scenario
from simulator.routes import Accepted, Answer, route

from .sim_helpers import KEY, error_code

SCENARIO = load_scenario({"models": {"m1": {}}})


def _route(
    method: str, path: str, body: Any = None, key: Optional[str] = KEY, seq: int = 1
) -> Union[Answer, Accepted]:
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    return route(method, path, "", raw, None, len(raw), key, KEY, SCENARIO, SCENARIO.models, 7, seq)


def test_refusals_are_answers_with_their_journal_cause() -> None:
    """Bad JSON, an unknown model and a missing key are answered at once, each with its cause."""
    bad = _route("POST", "/v1/chat/completions", b"{not json")
    assert isinstance(bad, Answer) and bad.cause == "invalid"
    assert error_code(bad.reply) == "invalid_json"
    body = {"model": "nope", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    unknown = _route("POST", "/v1/chat/completions", body)
    assert isinstance(unknown, Answer) and unknown.reply.status == 404
    assert (unknown.cause, unknown.model, unknown.stream) == ("not_found", "nope", True)
    anonymous = _route("GET", "/v1/models", key=None)
    assert isinstance(anonymous, Answer) and (anonymous.reply.status, anonymous.cause) == (
        401,
        "auth",
    )


def test_valid_chat_is_accepted_with_its_cost_and_builds_the_same_reply() -> None:
    """A valid chat request is accepted with its token cost; its builder is deterministic."""
    body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
    first, second = (
        _route("POST", "/v1/chat/completions", body),
        _route("POST", "/v1/chat/completions", body),
    )
    assert isinstance(first, Accepted) and isinstance(second, Accepted)
    assert first.spec.id == "m1" and not first.stream and first.cost > 10
    assert first.build(None).payload == second.build(None).payload
