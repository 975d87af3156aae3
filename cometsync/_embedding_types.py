"""Embedding responses shaped like openai-python's ``CreateEmbeddingResponse``, and list pages.

Vectors are always floats: a base64 body (``encoding_format="base64"``, little-endian
float32, as OpenAI sends it) is decoded on parsing, so code never depends on the encoding
that travelled.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, Iterable, List, Mapping, Optional, Tuple, TypeVar

from . import _schemas as schemas
from ._attempt import Attempt
from ._model import Schema, WireModel

__all__ = ["CreateEmbeddingResponse", "Embedding", "EmbeddingUsage", "SyncPage", "decode_vector"]

T = TypeVar("T")


def decode_vector(value: Any) -> List[float]:
    """A vector from the wire: a list of numbers, or base64 of little-endian float32s.

    Raises:
        ValueError: neither (names what arrived).
    """
    if isinstance(value, str):
        try:
            packed = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"the embedding is a string but not base64: {exc}") from None
        if len(packed) % 4:
            raise ValueError(f"a base64 embedding of {len(packed)} bytes is not float32s")
        return list(struct.unpack(f"<{len(packed) // 4}f", packed))
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                raise ValueError(f"an embedding holds a non-number: {str(item)[:40]}")
            out.append(float(item))
        return out
    raise ValueError(f"an embedding must be a list of floats or base64, got {type(value).__name__}")


def _count(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return 0


@dataclass(frozen=True, eq=False, repr=False)
class Embedding(WireModel):
    """One vector: ``embedding`` (floats) for the input at ``index``."""

    _schema: ClassVar[Schema] = schemas.EMBEDDING

    embedding: List[float]
    index: int = 0
    object: str = "embedding"
    _raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any, position: int) -> Embedding:
        """Parse one ``data`` entry, decoding a base64 vector.

        Raises:
            ValueError: not an object, or no usable ``embedding``.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"an embedding entry must be an object, got {type(data).__name__}")
        vector = decode_vector(data.get("embedding"))
        index = data.get("index")
        raw = dict(data)
        raw["embedding"] = vector
        return cls(
            embedding=vector,
            index=index if isinstance(index, int) and not isinstance(index, bool) else position,
            object=str(data.get("object") or "embedding"),
            _raw=raw,
        )


@dataclass(frozen=True, eq=False, repr=False)
class EmbeddingUsage(WireModel):
    """Tokens read by an embedding call (no completion tokens); zeros when not reported."""

    _schema: ClassVar[Schema] = schemas.EMBEDDING_USAGE

    prompt_tokens: int = 0
    total_tokens: int = 0
    _raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any) -> EmbeddingUsage:
        raw = dict(data) if isinstance(data, Mapping) else {}
        prompt = _count(raw.get("prompt_tokens"))
        total = _count(raw.get("total_tokens")) or prompt
        raw.update(prompt_tokens=prompt, total_tokens=total)
        return cls(prompt, total, raw)


@dataclass(frozen=True, eq=False, repr=False)
class CreateEmbeddingResponse(WireModel):
    """The answer of ``client.embeddings.create``, as openai-python shapes it.

    ``attempts`` is the call's history and ``cost`` its price in USD when the catalog's
    ``input`` price is known; neither is a wire field, so neither is dumped.
    """

    _schema: ClassVar[Schema] = schemas.EMBEDDING_RESPONSE

    data: List[Embedding]
    model: str
    usage: EmbeddingUsage
    object: str = "list"
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
    ) -> CreateEmbeddingResponse:
        """Normalise a decoded ``POST /embeddings`` body; entries sorted by ``index``.

        Raises:
            ValueError: not a JSON object, an error envelope, or no usable ``data`` list.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        if isinstance(data.get("error"), (Mapping, str)):
            raise ValueError(f"the body is an error envelope: {str(data['error'])[:200]}")
        entries = data.get("data")
        if not isinstance(entries, list):
            raise ValueError("the body has no 'data' list")
        vectors = sorted(
            (Embedding.from_dict(e, i) for i, e in enumerate(entries)), key=lambda e: e.index
        )
        usage = EmbeddingUsage.from_dict(data.get("usage"))
        model = data.get("model")
        raw = dict(data)
        raw["data"] = [v.to_dict() for v in vectors]
        raw["usage"] = usage.to_dict()
        return cls(
            data=vectors,
            model=model if isinstance(model, str) else requested_model,
            usage=usage,
            object=str(data.get("object") or "list"),
            attempts=attempts,
            _raw=raw,
            _request_id=request_id,
        )

    def _wire(self) -> Dict[str, Any]:
        """The JSON body (unknown fields kept), vectors as floats, usage normalised."""
        out = super()._wire()
        out["data"] = [v.to_dict() for v in self.data]
        out["usage"] = self.usage.to_dict()
        return out


class SyncPage(List[T]):
    """A list of results that also reads as openai-python's ``SyncPage`` (``.data``, ``.object``).

    It is a plain list, so code written for cometsync's lists keeps working, and code written
    for openai's pages (``page.data``, iterating the page) works unchanged.
    """

    object: str = "list"

    def __init__(self, items: Iterable[T] = (), *, object: str = "list") -> None:
        super().__init__(items)
        self.object = object

    @property
    def data(self) -> List[T]:
        """The page's items (this list itself)."""
        return self

    def has_next_page(self) -> bool:
        """False: CometAPI's lists are not paginated."""
        return False

    def model_dump(self, **options: Any) -> Dict[str, Any]:
        """``{"object": "list", "data": [...]}`` with each item dumped as openai does."""
        return {
            "object": self.object,
            "data": [
                item.model_dump(**options) if isinstance(item, WireModel) else item for item in self
            ],
        }
