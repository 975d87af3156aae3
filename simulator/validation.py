"""Request validation: a chat request is checked before it costs a token or a random draw.

Errors name the parameter (``messages[2].role``), as the real API does in ``error.param``.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Tuple

__all__ = ["BadRequest", "validate_chat"]

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer", "function"})


class BadRequest(Exception):
    """A request the simulator rejects with a 400, naming the parameter."""

    def __init__(self, message: str, param: Optional[str] = None) -> None:
        super().__init__(message)
        self.param = param


def _check_int(obj: Mapping[str, Any], name: str, lo: int) -> Optional[int]:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise BadRequest(f"{name} must be an integer >= {lo}, got {value!r}", name)
    return value


def _check_number(obj: Mapping[str, Any], name: str, lo: float, hi: float) -> None:
    value = obj.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{name} must be a number, got {type(value).__name__}", name)
    if not (lo <= value <= hi):  # also false for NaN
        raise BadRequest(f"{name} must be between {lo:g} and {hi:g}, got {value!r}", name)


def validate_chat(obj: Any) -> Tuple[str, List[Any], bool, bool, Optional[int]]:
    """Check a chat request; return (model, messages, stream, include_usage, max_tokens)."""
    if not isinstance(obj, dict):
        raise BadRequest(f"request body must be a JSON object, got {type(obj).__name__}")
    model = obj.get("model")
    if model is None:
        raise BadRequest("model is required", "model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model must be a non-empty string", "model")
    messages = obj.get("messages")
    if messages is None:
        raise BadRequest("messages is required", "messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty array", "messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise BadRequest(f"{where} must be an object", where)
        role = message.get("role")
        if not isinstance(role, str) or role not in _ROLES:  # a list or object is unhashable
            raise BadRequest(
                f"{where}.role must be one of {', '.join(sorted(_ROLES))}, got {role!r}",
                f"{where}.role",
            )
        content = message.get("content")
        if content is None and role != "assistant":
            raise BadRequest(f"{where}.content is required", f"{where}.content")
        if content is not None and not isinstance(content, (str, list)):
            raise BadRequest(
                f"{where}.content must be a string or an array of parts", f"{where}.content"
            )
        if isinstance(content, list) and not all(
            isinstance(part, dict) and isinstance(part.get("type"), str) for part in content
        ):
            raise BadRequest(
                f"{where}.content parts must be objects with a type", f"{where}.content"
            )
    stream = obj.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("stream must be a boolean", "stream")
    options = obj.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise BadRequest("stream_options must be an object", "stream_options")
        usage = options.get("include_usage")
        if usage is not None and not isinstance(usage, bool):
            raise BadRequest("stream_options.include_usage must be a boolean", "stream_options")
        include_usage = bool(usage)
    max_tokens = _check_int(obj, "max_tokens", 1)
    max_completion = _check_int(obj, "max_completion_tokens", 1)
    n = _check_int(obj, "n", 1)
    if n is not None and n != 1:
        raise BadRequest("n must be 1: the simulator answers one choice", "n")
    _check_number(obj, "temperature", 0.0, 2.0)
    _check_number(obj, "top_p", 0.0, 1.0)
    return model, messages, bool(stream), include_usage, max_completion or max_tokens
