"""Simulated tool calls: a request with tools gets a deterministic function call back."""

from __future__ import annotations

import json
from typing import Any, Dict, List

from simulator import Core

from .sim_helpers import chat

TOOLS: List[Dict[str, Any]] = [
    {"type": "function", "function": {"name": "first", "parameters": {}}},
    {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer"},
                    "unit": {"enum": ["c", "f"]},
                    "ignored": {"type": "string"},
                },
                "required": ["city", "days", "unit"],
            },
        },
    },
]


def test_a_request_with_tools_gets_a_tool_call() -> None:
    """The first tool is called, content null, finish_reason tool_calls, valid JSON arguments."""
    reply = chat(Core({"models": {"m1": {}}, "seed": 1}), tools=TOOLS)
    choice = reply.payload["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "first"
    assert json.loads(call["function"]["arguments"]) == {}


def test_tool_choice_names_the_tool_and_required_arguments_are_filled() -> None:
    """A named tool_choice picks that tool; required properties get values of their type."""
    choice = {"type": "function", "function": {"name": "weather"}}
    reply = chat(Core({"models": {"m1": {}}, "seed": 1}), tools=TOOLS, tool_choice=choice)
    call = reply.payload["choices"][0]["message"]["tool_calls"][0]
    args = json.loads(call["function"]["arguments"])
    assert sorted(args) == ["city", "days", "unit"]
    assert isinstance(args["city"], str) and isinstance(args["days"], int) and args["unit"] in "cf"


def test_after_a_tool_result_or_with_tool_choice_none_the_answer_is_text() -> None:
    """The model answers in text once the tool result is in, or when tools are switched off."""
    core = Core({"models": {"m1": {}}})
    assert chat(core, tools=TOOLS, tool_choice="none").payload["choices"][0]["message"]["content"]
    messages = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "first", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "42"},
    ]
    import json as _json

    from .sim_helpers import AUTH

    body = _json.dumps({"model": "m1", "messages": messages, "tools": TOOLS}).encode()
    reply = core.handle("POST", "/v1/chat/completions", AUTH, body, 0)
    assert reply.payload["choices"][0]["finish_reason"] == "stop"


def test_a_streamed_tool_call_arrives_as_deltas_that_accumulate_to_the_plain_call() -> None:
    """Streamed: an opening delta (id, name) then argument pieces; cometsync folds them back."""
    import cometsync
    from simulator import Simulator

    choice = {"type": "function", "function": {"name": "weather"}}
    scenario = {"models": {"m1": {}}, "seed": 4}
    with Simulator(scenario) as sim, cometsync.Client(api_key="k", base_url=sim.base_url) as c:
        plain = c.chat.completions.create(
            model="m1",
            messages=[{"role": "user", "content": "hi"}],
            tools=TOOLS,
            tool_choice=choice,
        )
        stream = c.chat.completions.create(
            model="m1",
            messages=[{"role": "user", "content": "hi"}],
            tools=TOOLS,
            tool_choice=choice,
            stream=True,
        )
        chunks = list(stream)
        final = stream.get_final_completion()
    opening = chunks[0].choices[0].delta.tool_calls[0]
    assert opening.function.name == "weather" and opening.function.arguments == ""
    assert len(chunks) > 3 and chunks[-1].choices[0].finish_reason == "tool_calls"
    (call,) = final.choices[0].message.tool_calls or []
    expected = (plain.choices[0].message.tool_calls or [])[0]
    assert call.function.arguments == expected.function.arguments
    assert call.function.name == "weather" and final.choices[0].finish_reason == "tool_calls"
