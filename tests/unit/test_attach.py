"""The per-call shortcut that attaches a call's attempts to its completion."""

from __future__ import annotations

import dataclasses

from cometsync import Attempt, ChatCompletion
from cometsync.resources.chat import _attach
from cometsync.testing import completion_body


def test_attach_equals_dataclasses_replace() -> None:
    """The copy with attempts has every field replace() would give, and leaves the original."""
    parsed = ChatCompletion.from_dict(completion_body("hi"), requested_model="m1")
    attempts = [
        Attempt._record("m1", "/v1/chat/completions", 200, 0.01, 1, None, None, "success", None)
    ]
    attached = _attach(parsed, attempts)
    expected = dataclasses.replace(parsed, attempts=tuple(attempts))
    for f in dataclasses.fields(ChatCompletion):
        assert getattr(attached, f.name) == getattr(expected, f.name), f.name
    assert attached.to_dict() == expected.to_dict()
    assert parsed.attempts == ()


def test_chat_completion_has_no_post_init() -> None:
    """_attach skips __init__, which is only sound while ChatCompletion has no __post_init__."""
    assert not hasattr(ChatCompletion, "__post_init__")
