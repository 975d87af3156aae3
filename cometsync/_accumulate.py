"""Folding the chunks of a stream into the ``ChatCompletion`` they amount to.

Kept apart from the ``Stream`` so the merge rules (strings join, dicts merge, indexed lists
merge by index, identity fields replaced) are read and tested on their own.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ._attempt import Attempt
from ._types import ChatCompletion, ChatCompletionChunk, Usage

__all__ = ["Accumulator"]

_REPLACED = frozenset({"index", "type", "id", "role", "name"})


def _merge(acc: Dict[str, Any], delta: Mapping[str, Any]) -> None:
    """Fold one delta into ``acc``: strings join, dicts merge, indexed lists merge by index.

    Identity fields (role, id, type, name, index) are replaced rather than joined: some
    providers repeat them in every chunk.
    """
    for key, value in delta.items():
        old = acc.get(key)
        if value is None:
            acc.setdefault(key, None)
        elif old is None or key in _REPLACED:
            acc[key] = copy.deepcopy(value)
        elif isinstance(old, str) and isinstance(value, str):
            acc[key] = old + value
        elif isinstance(old, dict) and isinstance(value, Mapping):
            _merge(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            _merge_list(old, value)
        else:
            acc[key] = copy.deepcopy(value)


def _merge_list(acc: List[Any], items: List[Any]) -> None:
    for item in items:
        index = item.get("index") if isinstance(item, Mapping) else None
        target = next((a for a in acc if isinstance(a, dict) and a.get("index") == index), None)
        if isinstance(index, int) and target is not None:
            _merge(target, item)
        else:
            acc.append(copy.deepcopy(item))


class Accumulator:
    """Builds the ``ChatCompletion`` a stream amounts to, chunk by chunk."""

    def __init__(self, requested_model: str) -> None:
        self.requested_model = requested_model
        self.head: Dict[str, Any] = {}
        self.messages: Dict[int, Dict[str, Any]] = {}
        self.finish: Dict[int, Optional[str]] = {}
        self.usage: Optional[Usage] = None
        self.count = 0

    def add(self, chunk: ChatCompletionChunk) -> None:
        self.count += 1
        for key in ("id", "created", "model", "system_fingerprint"):
            value = getattr(chunk, key)
            if value and not self.head.get(key):
                self.head[key] = value
        for choice in chunk.choices:
            _merge(self.messages.setdefault(choice.index, {}), choice.delta.to_dict())
            self.finish.setdefault(choice.index, None)
            if choice.finish_reason is not None:
                self.finish[choice.index] = choice.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage

    @property
    def text(self) -> str:
        content = self.messages.get(0, {}).get("content")
        return content if isinstance(content, str) else ""

    @property
    def finished(self) -> bool:
        """Whether every choice seen has its finish_reason."""
        return bool(self.finish) and all(r is not None for r in self.finish.values())

    def completion(self, attempts: Tuple[Attempt, ...]) -> ChatCompletion:
        choices = []
        for index in sorted(self.messages):
            message = copy.deepcopy(self.messages[index])
            message.setdefault("role", "assistant")
            message.setdefault("content", None)
            if isinstance(message.get("tool_calls"), list):
                for call in message["tool_calls"]:
                    if isinstance(call, dict):
                        call.pop("index", None)
            choices.append(
                {"index": index, "message": message, "finish_reason": self.finish.get(index)}
            )
        body: Dict[str, Any] = {
            "id": self.head.get("id", ""),
            "object": "chat.completion",
            "created": self.head.get("created", 0),
            "model": self.head.get("model", self.requested_model),
            "choices": choices,
        }
        if self.head.get("system_fingerprint"):
            body["system_fingerprint"] = self.head["system_fingerprint"]
        if self.usage is not None:
            body["usage"] = self.usage.to_dict()
        return ChatCompletion.from_dict(
            body, requested_model=self.requested_model, attempts=attempts
        )
