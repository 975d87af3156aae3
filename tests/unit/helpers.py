"""Shared helpers of the client tests: a client over a scripted transport and a fake clock."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import cometsync
from cometsync import Exponential, RetryPolicy
from cometsync.testing import FakeClock, ScriptedTransport, completion_body, json_response

KEY = "sk-test-SECRET-0123456789"
MSGS = [{"role": "user", "content": "hi"}]


def err(code: Optional[str] = None, message: str = "boom") -> Dict[str, Any]:
    return {"error": {"message": message, "type": "comet_api_error", "param": None, "code": code}}


def ok(content: Optional[str] = "fine", model: str = "m1", headers: Any = None) -> Any:
    return json_response(200, completion_body(content, model=model), headers=headers)


def make(script: List[Any], **kwargs: Any) -> tuple[cometsync.Client, ScriptedTransport, FakeClock]:
    clock = FakeClock()
    transport = ScriptedTransport(script)
    kwargs.setdefault("retry", RetryPolicy(backoff=Exponential(base=0.5, cap=8.0)))
    client = cometsync.Client(api_key=KEY, transport=transport, clock=clock, **kwargs)
    return client, transport, clock


def create(client: cometsync.Client, **kwargs: Any) -> cometsync.ChatCompletion:
    kwargs.setdefault("model", "m1")
    kwargs.setdefault("messages", MSGS)
    return client.chat.completions.create(**kwargs)
