"""Normalised response objects and small value types.

Responses are frozen and keep every field the server sent: known fields become attributes
with sane defaults (missing ``usage`` becomes zeros, ``content: null`` stays None), unknown
fields stay reachable as attributes and in ``to_dict()``, so a new provider field never
crashes parsing.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from ._attempt import Attempt
from ._errors import ConfigError

__all__ = [
    "Attempt",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "Choice",
    "ChoiceDelta",
    "ChunkChoice",
    "Model",
    "Timeout",
    "TimeoutLike",
    "Usage",
]


@dataclass(frozen=True)
class Timeout:
    """Per-attempt timeouts in seconds: ``connect`` to open a connection, ``read`` between bytes."""

    connect: float = 5.0
    read: float = 120.0

    def __post_init__(self) -> None:
        for name in ("connect", "read"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"Timeout.{name} must be a number of seconds, got {value!r}")
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"Timeout.{name} must be a positive number, got {value!r}")

    @classmethod
    def coerce(cls, value: TimeoutLike) -> Timeout:
        """Accept None (the defaults), seconds for both, a ``(connect, read)`` pair or a Timeout."""
        if value is None:
            return cls()
        if isinstance(value, Timeout):
            return value
        if isinstance(value, tuple) and len(value) == 2:
            return cls(connect=value[0], read=value[1])
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(connect=float(value), read=float(value))
        raise ConfigError(
            f"timeout must be seconds, a (connect, read) pair or cometsync.Timeout, got {value!r}"
        )

    def capped(self, seconds: Optional[float]) -> Timeout:
        """This timeout, with neither part longer than ``seconds`` (the deadline's remainder)."""
        if seconds is None or (seconds >= self.connect and seconds >= self.read):
            return self
        limit = max(seconds, 1e-3)
        return Timeout(connect=min(self.connect, limit), read=min(self.read, limit))


TimeoutLike = Union[None, float, int, Tuple[float, float], Timeout]


class _Extras:
    """Unknown server fields stay readable as attributes (``msg.reasoning_content``)."""

    _raw: Dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raw = self.__dict__.get("_raw") or {}
        if name in raw:
            return raw[name]
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def to_dict(self) -> Dict[str, Any]:
        """The server's JSON, unknown fields included, with the normalised known ones."""
        return copy.deepcopy(self._raw)


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return 0


def _head(raw: Mapping[str, Any], requested_model: str, kind: str) -> Dict[str, Any]:
    """The fields a completion and a chunk share: id, model, created, object, fingerprint."""
    model = raw.get("model")
    fingerprint = raw.get("system_fingerprint")
    return {
        "id": str(raw.get("id") or ""),
        "model": model if isinstance(model, str) else requested_model,
        "created": _int(raw.get("created")),
        "object": str(raw.get("object") or kind),
        "system_fingerprint": fingerprint if isinstance(fingerprint, str) else None,
    }


@dataclass(frozen=True)
class Usage(_Extras):
    """Token counts; zeros when the model did not report them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    _raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any) -> Usage:
        raw = dict(data) if isinstance(data, Mapping) else {}
        prompt = _int(raw.get("prompt_tokens"))
        completion = _int(raw.get("completion_tokens"))
        total = _int(raw.get("total_tokens")) or prompt + completion
        raw.update(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)
        return cls(prompt, completion, total, raw)


@dataclass(frozen=True)
class ChatCompletionMessage(_Extras):
    """The assistant's message; ``content`` is None when the model sent null (tool calls)."""

    role: str = "assistant"
    content: Optional[str] = None
    tool_calls: Optional[List[Dict[str, Any]]] = None
    _raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any) -> ChatCompletionMessage:
        raw = dict(data) if isinstance(data, Mapping) else {}
        content = raw.get("content")
        if isinstance(content, list):  # some providers send content parts; join their text
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
        elif content is not None and not isinstance(content, str):
            content = str(content)
        tool_calls = raw.get("tool_calls")
        role = raw.get("role") if isinstance(raw.get("role"), str) else "assistant"
        return cls(
            role=str(role),
            content=content,
            tool_calls=list(tool_calls) if isinstance(tool_calls, list) else None,
            _raw=raw,
        )


@dataclass(frozen=True)
class Choice(_Extras):
    """One choice of a completion."""

    index: int = 0
    message: ChatCompletionMessage = field(default_factory=ChatCompletionMessage)
    finish_reason: Optional[str] = None
    _raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any, position: int) -> Choice:
        raw = dict(data) if isinstance(data, Mapping) else {}
        index = raw.get("index")
        finish = raw.get("finish_reason")
        return cls(
            index=index if isinstance(index, int) else position,
            message=ChatCompletionMessage.from_dict(raw.get("message")),
            finish_reason=finish if isinstance(finish, str) else None,
            _raw=raw,
        )


@dataclass(frozen=True)
class ChatCompletion(_Extras):
    """A chat completion, normalised whichever model answered.

    ``attempts`` is the call's history (retries and fallbacks included); ``cost`` is the price
    in USD when the catalog's prices are known, else None.
    """

    id: str
    model: str
    choices: Tuple[Choice, ...]
    usage: Usage
    created: int = 0
    object: str = "chat.completion"
    system_fingerprint: Optional[str] = None
    attempts: Tuple[Attempt, ...] = ()
    cost: Optional[float] = None
    _raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(
        cls, data: Any, *, requested_model: str = "", attempts: Tuple[Attempt, ...] = ()
    ) -> ChatCompletion:
        """Normalise a decoded ``chat.completion`` body.

        Raises:
            ValueError: the body is not a JSON object, or has no usable ``choices``.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        raw = dict(data)
        if isinstance(raw.get("error"), (Mapping, str)):
            raise ValueError(f"the body is an error envelope: {str(raw['error'])[:200]}")
        choices_raw = raw.get("choices")
        if not isinstance(choices_raw, list):
            raise ValueError("the body has no 'choices' list")
        choices = tuple(Choice.from_dict(c, i) for i, c in enumerate(choices_raw))
        usage = Usage.from_dict(raw.get("usage"))
        raw["usage"] = usage._raw  # shared, not copied: neither is ever changed, to_dict copies
        return cls(
            **_head(raw, requested_model, "chat.completion"),
            choices=choices,
            usage=usage,
            attempts=attempts,
            _raw=raw,
        )

    def to_dict(self) -> Dict[str, Any]:
        """The JSON body as received (unknown fields kept), usage normalised."""
        out = copy.deepcopy(self._raw)
        out["usage"] = self.usage.to_dict()
        return out


@dataclass(frozen=True)
class Model(_Extras):
    """One entry of ``GET /v1/models``."""

    id: str
    object: str = "model"
    owned_by: Optional[str] = None
    created: int = 0
    _raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any) -> Model:
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise ValueError(f"a model entry needs a string 'id', got {str(data)[:100]}")
        owned = data.get("owned_by")
        return cls(
            id=data["id"],
            object=str(data.get("object") or "model"),
            owned_by=owned if isinstance(owned, str) else None,
            created=_int(data.get("created")),
            _raw=dict(data),
        )


@dataclass(frozen=True)
class ChoiceDelta(_Extras):
    """What one chunk adds to a choice's message; every field is None when not sent."""

    role: Optional[str] = None
    content: Optional[str] = None
    tool_calls: Optional[List[Dict[str, Any]]] = None
    _raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any) -> ChoiceDelta:
        raw = dict(data) if isinstance(data, Mapping) else {}
        role, content, tool_calls = raw.get("role"), raw.get("content"), raw.get("tool_calls")
        return cls(
            role=role if isinstance(role, str) else None,
            content=content if isinstance(content, str) else None,
            tool_calls=list(tool_calls) if isinstance(tool_calls, list) else None,
            _raw=raw,
        )


@dataclass(frozen=True)
class ChunkChoice(_Extras):
    """One choice of a chunk: its ``delta`` and, on its last chunk, its ``finish_reason``."""

    index: int = 0
    delta: ChoiceDelta = field(default_factory=ChoiceDelta)
    finish_reason: Optional[str] = None
    _raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any, position: int) -> ChunkChoice:
        raw = dict(data) if isinstance(data, Mapping) else {}
        index, finish = raw.get("index"), raw.get("finish_reason")
        return cls(
            index=index if isinstance(index, int) else position,
            delta=ChoiceDelta.from_dict(raw.get("delta")),
            finish_reason=finish if isinstance(finish, str) else None,
            _raw=raw,
        )


@dataclass(frozen=True)
class ChatCompletionChunk(_Extras):
    """One event of a streamed chat completion (``object: chat.completion.chunk``).

    ``usage`` is set only on the final usage chunk that ``stream_options={"include_usage":
    True}`` asks for (its ``choices`` is empty); otherwise None.
    """

    id: str
    model: str
    choices: Tuple[ChunkChoice, ...]
    created: int = 0
    object: str = "chat.completion.chunk"
    system_fingerprint: Optional[str] = None
    usage: Optional[Usage] = None
    _raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any, *, requested_model: str = "") -> ChatCompletionChunk:
        """Normalise a decoded chunk.

        Raises:
            ValueError: not a JSON object, or neither a ``choices`` list nor a ``usage``.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        raw = dict(data)
        choices_raw = raw.get("choices", [])
        usage_raw = raw.get("usage")
        if not isinstance(choices_raw, list) or ("choices" not in raw and usage_raw is None):
            raise ValueError("the event is not a chat.completion.chunk: no 'choices' list")
        usage = Usage.from_dict(usage_raw) if isinstance(usage_raw, Mapping) else None
        return cls(
            **_head(raw, requested_model, "chat.completion.chunk"),
            choices=tuple(ChunkChoice.from_dict(c, i) for i, c in enumerate(choices_raw)),
            usage=usage,
            _raw=raw,
        )
