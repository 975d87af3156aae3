"""Normalised response objects and small value types.

Responses are frozen and keep every field the server sent: known fields become attributes
with sane defaults (missing ``usage`` becomes zeros, ``content: null`` stays None), unknown
fields stay reachable as attributes and in ``to_dict()``, so a new provider field never
crashes parsing. They dump as openai-python's models do (``model_dump``, ``model_dump_json``;
see ``_model.py``); cometsync's own attributes (``attempts``, ``cost``) are not wire fields.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping  # not typing's: isinstance on it is several times slower
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Union

from . import _schemas as schemas
from ._attempt import Attempt
from ._errors import ConfigError
from ._model import Schema, WireModel, WireObject, wrap

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
    """Per-attempt timeouts in seconds: ``connect``, ``read`` between bytes, ``first_token``.

    ``first_token`` bounds a stream's wait from sending the request to its first content
    chunk (headers and role-only chunks do not count); None leaves that wait to ``read``.
    A plain (non-streamed) call is not bounded by it: its response comes when the whole
    answer is generated, so a first-token limit would cut long healthy answers.
    """

    connect: float = 5.0
    read: float = 120.0
    first_token: Optional[float] = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "first_token"):
            value = getattr(self, name)
            if value is None and name == "first_token":
                continue
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
        """This timeout, with no part longer than ``seconds`` (the deadline's remainder)."""
        if seconds is None or (
            seconds >= self.connect
            and seconds >= self.read
            and (self.first_token is None or seconds >= self.first_token)
        ):
            return self
        limit = max(seconds, 1e-3)
        return Timeout(
            connect=min(self.connect, limit),
            read=min(self.read, limit),
            first_token=None if self.first_token is None else min(self.first_token, limit),
        )

    def until_first_token(self) -> Timeout:
        """The timeout for a stream's exchange up to its first chunk: ``read`` capped to
        ``first_token``, so a socket silent for longer than the budget fails at once."""
        if self.first_token is None or self.first_token >= self.read:
            return self
        return Timeout(connect=self.connect, read=self.first_token, first_token=self.first_token)


TimeoutLike = Union[None, float, int, Tuple[float, float], Timeout]


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return 0


def _objects(schema: Schema, value: Any) -> Optional[List[WireObject]]:
    """A list of wire objects (tool calls) as attribute-readable objects; None if not a list."""
    if not isinstance(value, list):
        return None
    return [wrap(schema, item) if isinstance(item, Mapping) else item for item in value]


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


@dataclass(frozen=True, eq=False, repr=False)
class Usage(WireModel):
    """Token counts; zeros when the model did not report them."""

    _schema: ClassVar[Schema] = schemas.COMPLETION_USAGE

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


@dataclass(frozen=True, eq=False, repr=False)
class ChatCompletionMessage(WireModel):
    """The assistant's message; ``content`` is None when the model sent null (tool calls)."""

    _schema: ClassVar[Schema] = schemas.MESSAGE

    role: str = "assistant"
    content: Optional[str] = None
    tool_calls: Optional[List[WireObject]] = None
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
            tool_calls=_objects(schemas.TOOL_CALL, tool_calls),
            _raw=raw,
        )


@dataclass(frozen=True, eq=False, repr=False)
class Choice(WireModel):
    """One choice of a completion."""

    _schema: ClassVar[Schema] = schemas.CHOICE

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


@dataclass(frozen=True, eq=False, repr=False)
class ChatCompletion(WireModel):
    """A chat completion, normalised whichever model answered.

    ``attempts`` is the call's history (retries and fallbacks included); ``cost`` is the price
    in USD when the catalog's prices are known, else None.
    """

    _schema: ClassVar[Schema] = schemas.CHAT_COMPLETION

    id: str
    model: str
    choices: List[Choice]
    usage: Usage
    created: int = 0
    object: str = "chat.completion"
    system_fingerprint: Optional[str] = None
    attempts: Tuple[Attempt, ...] = ()
    cost: Optional[float] = None
    _raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _request_id: Optional[str] = field(default=None, repr=False, compare=False)

    @classmethod
    def from_dict(
        cls,
        data: Any,
        *,
        requested_model: str = "",
        attempts: Tuple[Attempt, ...] = (),
        request_id: Optional[str] = None,
    ) -> ChatCompletion:
        """Normalise a decoded ``chat.completion`` body.

        ``request_id`` is the response's ``x-request-id`` header, read as ``_request_id``.

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
        choices = [Choice.from_dict(c, i) for i, c in enumerate(choices_raw)]
        usage = Usage.from_dict(raw.get("usage"))
        raw["usage"] = usage._raw  # shared, not copied: neither is ever changed, to_dict copies
        return cls(
            **_head(raw, requested_model, "chat.completion"),
            choices=choices,
            usage=usage,
            attempts=attempts,
            _raw=raw,
            _request_id=request_id,
        )

    def _wire(self) -> Dict[str, Any]:
        """The JSON body as received (unknown fields kept), usage normalised."""
        out = copy.deepcopy(self._raw)
        out["usage"] = self.usage.to_dict()
        return out


@dataclass(frozen=True, eq=False, repr=False)
class Model(WireModel):
    """One entry of ``GET /v1/models``."""

    _schema: ClassVar[Schema] = schemas.MODEL

    id: str
    object: str = "model"
    owned_by: Optional[str] = None
    created: int = 0
    _raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _request_id: Optional[str] = field(default=None, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any, *, request_id: Optional[str] = None) -> Model:
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise ValueError(f"a model entry needs a string 'id', got {str(data)[:100]}")
        owned = data.get("owned_by")
        return cls(
            id=data["id"],
            object=str(data.get("object") or "model"),
            owned_by=owned if isinstance(owned, str) else None,
            created=_int(data.get("created")),
            _raw=dict(data),
            _request_id=request_id,
        )


@dataclass(frozen=True, eq=False, repr=False)
class ChoiceDelta(WireModel):
    """What one chunk adds to a choice's message; every field is None when not sent."""

    _schema: ClassVar[Schema] = schemas.DELTA

    role: Optional[str] = None
    content: Optional[str] = None
    tool_calls: Optional[List[WireObject]] = None
    _raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any) -> ChoiceDelta:
        raw = dict(data) if isinstance(data, Mapping) else {}
        role, content, tool_calls = raw.get("role"), raw.get("content"), raw.get("tool_calls")
        return cls(
            role=role if isinstance(role, str) else None,
            content=content if isinstance(content, str) else None,
            tool_calls=_objects(schemas.DELTA_TOOL_CALL, tool_calls),
            _raw=raw,
        )


@dataclass(frozen=True, eq=False, repr=False)
class ChunkChoice(WireModel):
    """One choice of a chunk: its ``delta`` and, on its last chunk, its ``finish_reason``."""

    _schema: ClassVar[Schema] = schemas.CHUNK_CHOICE

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


@dataclass(frozen=True, eq=False, repr=False)
class ChatCompletionChunk(WireModel):
    """One event of a streamed chat completion (``object: chat.completion.chunk``).

    ``usage`` is set only on the final usage chunk that ``stream_options={"include_usage":
    True}`` asks for (its ``choices`` is empty); otherwise None.
    """

    _schema: ClassVar[Schema] = schemas.CHAT_COMPLETION_CHUNK

    id: str
    model: str
    choices: List[ChunkChoice]
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
            choices=[ChunkChoice.from_dict(c, i) for i, c in enumerate(choices_raw)],
            usage=usage,
            _raw=raw,
        )
