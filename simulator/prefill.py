"""Requests that end with an assistant message (a prefill), and requests a model cannot take.

A client rescuing a stream broken mid-answer asks again with the partial text as a trailing
assistant message; a model that takes prefills continues it, one that does not answers 400.
A prompt over the model's context window gets OpenAI's ``context_length_exceeded``.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from . import replies, wire
from .replies import Reply
from .scenario_types import ModelSpec

__all__ = ["continuation", "prefill_refused_envelope", "prefill_text", "refusal"]


def prefill_text(message: Any) -> str:
    """The text of a trailing assistant message (a prefill): string content, or its text parts."""
    content = message.get("content") if isinstance(message, Mapping) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


_PIECE = re.compile(r"\s*\S+")


def continuation(
    seed: int, model: str, messages: Sequence[Any], max_tokens: Optional[int]
) -> Tuple[List[str], str]:
    """The chunk texts continuing a prefill (the trailing assistant message), and the finish.

    When the prefill is the start of the answer this model gives without it, the continuation
    is the rest of that answer, so a stream recovered by continuation spells exactly the text
    of the unbroken one. Any other prefill (another model's partial answer, a user's own
    prefill) is continued by a fresh deterministic answer to the whole conversation.
    """
    prefix = prefill_text(messages[-1])
    words, finish = wire.generate_words(seed, model, messages[:-1], max_tokens)
    full = "".join(wire.pieces(words))
    if full.startswith(prefix):
        rest = full[len(prefix) :]
    else:
        words, finish = wire.generate_words(seed, model, messages, max_tokens)
        rest = "".join(wire.pieces(words))
        if prefix and not prefix[-1].isspace():
            rest = " " + rest
    return _PIECE.findall(rest), finish


def prefill_refused_envelope(request_id: str) -> Dict[str, Any]:
    """The 400 of a model that does not take an assistant prefill (worded as Anthropic's)."""
    return {
        "error": {
            "message": (
                "This model does not support assistant message prefill. The conversation "
                f"must end with a user message. (request id: {request_id})"
            ),
            "type": "invalid_request_error",
            "param": "messages",
            "code": "invalid_request_error",
        }
    }


def refusal(
    seed: int, spec: ModelSpec, seq: int, prompt_tokens: int, prefill: bool
) -> Optional[Reply]:
    """The 400 of a model that cannot take this request: a prefill, or a prompt too long."""
    rid = replies.request_id(seed, seq)
    if prefill and not spec.prefill:
        return replies.error_reply(seed, 400, seq, prefill_refused_envelope(rid))
    window = spec.context_window
    if window is not None and prompt_tokens > window:
        body = wire.context_length_envelope(rid, prompt_tokens, window)
        return replies.error_reply(seed, 400, seq, body)
    return None
