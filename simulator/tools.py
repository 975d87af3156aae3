"""Tool calls in simulated chat answers: a request with ``tools`` gets a function call back.

Deterministic, as every answer: the tool is the one ``tool_choice`` names, else the first;
its arguments fill the schema's required properties with values derived from the seed. Once
the conversation ends with a ``tool`` result, the model answers in text. Streams carry the
call as tool-call deltas.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, Mapping, Optional

__all__ = ["tool_call"]

_VALUES = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


def _pick(tools: Any, choice: Any) -> Optional[Mapping[str, Any]]:
    functions = [
        t["function"]
        for t in tools
        if isinstance(t, Mapping)
        and isinstance(t.get("function"), Mapping)
        and isinstance(t["function"].get("name"), str)
    ]
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        wanted = choice["function"].get("name")
        return next((f for f in functions if f["name"] == wanted), None)
    return functions[0] if functions else None


def _arguments(seed: int, name: str, parameters: Any) -> Dict[str, Any]:
    props = parameters.get("properties") if isinstance(parameters, Mapping) else None
    required = parameters.get("required") if isinstance(parameters, Mapping) else None
    if not isinstance(props, Mapping) or not isinstance(required, list):
        return {}
    digest = hashlib.blake2b(f"{seed}\x00{name}".encode(), digest_size=16).digest()
    out: Dict[str, Any] = {}
    for i, prop in enumerate(p for p in required if isinstance(p, str)):
        found = props.get(prop)
        schema: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        kind = schema.get("type")
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            out[prop] = enum[digest[i % 16] % len(enum)]
        elif kind in ("integer", "number"):
            out[prop] = digest[i % 16] % 10 + 1
        elif kind == "boolean":
            out[prop] = bool(digest[i % 16] & 1)
        else:
            out[prop] = _VALUES[digest[i % 16] % len(_VALUES)]
    return out


def tool_call(request: Mapping[str, Any], seed: int, seq: int) -> Optional[Dict[str, Any]]:
    """The function call a request with ``tools`` gets, or None for a text answer."""
    tools, choice = request.get("tools"), request.get("tool_choice", "auto")
    if not isinstance(tools, list) or not tools or choice == "none":
        return None
    messages = request.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    if isinstance(last, Mapping) and last.get("role") in ("tool", "function"):
        return None
    function = _pick(tools, choice)
    if function is None:
        return None
    arguments = _arguments(seed, function["name"], function.get("parameters"))
    return {
        "id": f"call_sim{seed % 1000:03d}{seq:09d}",
        "type": "function",
        "function": {"name": function["name"], "arguments": json.dumps(arguments)},
    }
