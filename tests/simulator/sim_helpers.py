"""Shared helpers of the fault-model tests: a chat request planned at an explicit time."""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from simulator import Core, Reply

KEY = "sk-test-0123456789abcd"
AUTH = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}


def chat(
    core: Core,
    now: float = 0.0,
    model: str = "m1",
    content: str = "hi",
    finish: bool = True,
    headers: Optional[Dict[str, str]] = None,
    **extra: Any,
) -> Reply:
    """A chat request planned at ``now`` (and finished when its reply is delivered)."""
    body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
    reply = core.handle(
        "POST", "/v1/chat/completions", headers or AUTH, json.dumps(body).encode(), now
    )
    if finish:
        core.finish(reply, now + reply.latency)
    return reply


def error_code(reply: Reply) -> str:
    """The ``error.code`` of an error reply."""
    return str(reply.payload["error"]["code"])
