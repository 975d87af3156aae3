"""``POST /v1/embeddings``: request checks, deterministic vectors and the reply body.

A vector is a function of (seed, model, input item) only: the same text embeds to the same
unit vector on every run and every driver, different models give unrelated vectors (as real
ones are not comparable across models). Bodies follow OpenAI's, base64 included.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from .scenario_types import ModelSpec

__all__ = [
    "DEFAULT_DIMENSIONS",
    "MAX_INPUTS",
    "EmbeddingPlan",
    "EmbeddingRequestError",
    "embedding_payload",
    "estimate_input_tokens",
    "parse_embedding_request",
    "prepare",
    "unit_vector",
]

DEFAULT_DIMENSIONS = 1536
MAX_INPUTS = 2048  # OpenAI's limit on items per request
INVALID_INPUT = (
    "'$.input' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)


class EmbeddingRequestError(ValueError):
    """A request the gateway refuses: ``status`` (400, or 404 for an unknown model), ``param``
    naming the field, ``code``, and ``model`` to journal."""

    def __init__(
        self,
        message: str,
        param: Optional[str] = None,
        *,
        status: int = 400,
        code: Optional[str] = None,
        model: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.param = param
        self.status = status
        self.code = code
        self.model = model


class EmbeddingPlan(NamedTuple):
    """A valid request: its model, its input tokens, and its 200 body (built on demand)."""

    model: str
    tokens: int
    payload: Callable[[], Dict[str, Any]]


def prepare(request: Any, specs: Mapping[str, ModelSpec], seed: int) -> EmbeddingPlan:
    """Check a decoded request against the served models.

    Raises:
        EmbeddingRequestError: OpenAI's 400s; 404 for an unknown model; 400
            ``model_not_supported`` for a chat model.
    """
    dims = {m: s.dimensions for m, s in specs.items()}
    model, items, dimensions, encoding = parse_embedding_request(request, dims)
    spec = specs.get(model)
    if spec is None:
        raise EmbeddingRequestError(
            f"The model `{model[:100]}` does not exist or you do not have access to it",
            "model",
            status=404,
            code="model_not_found",
            model=model[:100],
        )
    if spec.model_type != "embedding":
        raise EmbeddingRequestError(
            f"The model `{model}` does not support embeddings (it is a chat model)",
            "model",
            code="model_not_supported",
            model=model,
        )
    tokens = estimate_input_tokens(items)
    size = dimensions or spec.dimensions

    def payload() -> Dict[str, Any]:
        return embedding_payload(seed, model, items, size, encoding, tokens)

    return EmbeddingPlan(model, tokens, payload)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _items(value: Any) -> List[Any]:
    """The input as a list of items: strings, or token arrays (lists of ints)."""
    if isinstance(value, str):
        if not value:
            raise EmbeddingRequestError(INVALID_INPUT)
        return [value]
    if not isinstance(value, list) or not value:
        raise EmbeddingRequestError(INVALID_INPUT)
    if all(_is_int(t) for t in value):
        return [value]  # one token array
    for item in value:
        ok = (isinstance(item, str) and item) or (
            isinstance(item, list) and item and all(_is_int(t) for t in item)
        )
        if not ok:
            raise EmbeddingRequestError(INVALID_INPUT)
    if len(value) > MAX_INPUTS:
        raise EmbeddingRequestError(
            f"Too many inputs: {len(value)} given, the maximum is {MAX_INPUTS} per request.",
            "input",
        )
    return list(value)


def parse_embedding_request(
    obj: Any, model_dimensions: Optional[Mapping[str, int]] = None
) -> Tuple[str, List[Any], Optional[int], str]:
    """``(model, items, dimensions, encoding_format)`` of a decoded request body.

    Raises:
        EmbeddingRequestError: what OpenAI refuses with a 400.
    """
    if not isinstance(obj, Mapping):
        raise EmbeddingRequestError("The request body must be a JSON object.")
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        raise EmbeddingRequestError("you must provide a model parameter", "model")
    if "input" not in obj:
        raise EmbeddingRequestError("Missing required parameter: 'input'.", "input")
    items = _items(obj.get("input"))
    encoding = obj.get("encoding_format", "float")
    if encoding is None:
        encoding = "float"
    if encoding not in ("float", "base64"):
        raise EmbeddingRequestError(
            f"Invalid value for 'encoding_format': {str(encoding)[:40]!r}. "
            "Supported values are: 'float' and 'base64'.",
            "encoding_format",
        )
    dimensions = obj.get("dimensions")
    if dimensions is not None:
        if not _is_int(dimensions) or dimensions < 1:
            raise EmbeddingRequestError(
                f"Invalid value for 'dimensions': {str(dimensions)[:40]}. Must be >= 1.",
                "dimensions",
            )
        native = (model_dimensions or {}).get(model)
        if native is not None and dimensions > native:
            raise EmbeddingRequestError(
                f"Invalid value for 'dimensions' = {dimensions}. "
                f"Must be less than or equal to {native}.",
                "dimensions",
            )
    return model, items, dimensions, str(encoding)


def estimate_input_tokens(items: Sequence[Any]) -> int:
    """Token arrays count as their length; text as about one token per four characters."""
    total = 0
    for item in items:
        if isinstance(item, list):
            total += len(item)
        else:
            total += max(1, (len(str(item)) + 3) // 4)
    return total


def unit_vector(seed: int, model: str, item: Any, dimensions: int) -> List[float]:
    """A unit-length vector that depends only on the seed, the model and the input item."""
    text = item if isinstance(item, str) else "\x00tokens:" + ",".join(str(t) for t in item)
    base = hashlib.blake2b(f"{seed}\x00{model}\x00".encode(), digest_size=32)
    base.update(text.encode("utf-8", "surrogatepass"))
    stream = bytearray()
    block = 0
    while len(stream) < 2 * dimensions:  # one signed 16-bit draw per component
        h = base.copy()
        h.update(block.to_bytes(4, "little"))
        stream += h.digest()
        block += 1
    raw = struct.unpack(f"<{dimensions}h", bytes(stream[: 2 * dimensions]))
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    # Rounded through float32, as a real vector is, so float and base64 bodies agree exactly.
    return list(
        struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(v / norm for v in raw)))
    )


def _encode(vector: List[float], encoding: str) -> Any:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def embedding_payload(
    seed: int,
    model: str,
    items: Sequence[Any],
    dimensions: int,
    encoding: str,
    prompt_tokens: int,
) -> Dict[str, Any]:
    """The ``200`` body of ``POST /v1/embeddings``, as OpenAI writes it."""
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": i,
                "embedding": _encode(unit_vector(seed, model, item, dimensions), encoding),
            }
            for i, item in enumerate(items)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
