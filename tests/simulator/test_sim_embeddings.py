"""The simulator's embedding vectors, bodies and OpenAI 400s, without sockets."""

from __future__ import annotations

import math
from typing import Any

import pytest

from simulator.embeddings import (
    MAX_INPUTS,
    EmbeddingRequestError,
    embedding_payload,
    estimate_input_tokens,
    parse_embedding_request,
    unit_vector,
)


def test_vectors_are_unit_length_and_a_function_of_seed_model_and_input() -> None:
    """Same (seed, model, input), same vector; change any of them, another vector."""
    v = unit_vector(7, "text-embedding-3-small", "hello", 1536)
    assert len(v) == 1536 and math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5)
    assert v == unit_vector(7, "text-embedding-3-small", "hello", 1536)
    for other in (
        unit_vector(8, "text-embedding-3-small", "hello", 1536),
        unit_vector(7, "text-embedding-3-large", "hello", 1536),
        unit_vector(7, "text-embedding-3-small", "hello!", 1536),
        unit_vector(7, "text-embedding-3-small", [15339], 1536),
    ):
        assert other != v


def test_base64_body_carries_the_same_float32_vector() -> None:
    """encoding_format=base64 sends the float body's vector as little-endian float32."""
    from cometsync._embedding_types import decode_vector

    floats = embedding_payload(1, "m", ["a", "b"], 8, "float", 2)
    b64 = embedding_payload(1, "m", ["a", "b"], 8, "base64", 2)
    assert isinstance(b64["data"][0]["embedding"], str)
    assert decode_vector(b64["data"][1]["embedding"]) == floats["data"][1]["embedding"]
    assert [d["index"] for d in floats["data"]] == [0, 1]
    assert floats["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"model": "m", "input": ""}, None, "'\\$.input' is invalid"),
        ({"model": "m", "input": []}, None, "'\\$.input' is invalid"),
        ({"model": "m", "input": ["a", ""]}, None, "'\\$.input' is invalid"),
        ({"model": "m", "input": ["x"] * (MAX_INPUTS + 1)}, "input", "maximum is 2048"),
        ({"model": "m"}, "input", "Missing required parameter"),
        ({"input": "x"}, "model", "model parameter"),
        ({"model": "m", "input": "x", "encoding_format": "hex"}, "encoding_format", "'float'"),
        ({"model": "m", "input": "x", "dimensions": 0}, "dimensions", "Must be >= 1"),
        ({"model": "m", "input": "x", "dimensions": 4000}, "dimensions", "less than or equal"),
    ],
)
def test_openai_400s(body: Any, param: Any, message: str) -> None:
    """Empty input, too many items and bad options are refused as OpenAI refuses them."""
    with pytest.raises(EmbeddingRequestError, match=message) as info:
        parse_embedding_request(body, {"m": 3072})
    assert info.value.param == param


def test_inputs_of_every_openai_shape_are_accepted_and_counted() -> None:
    """A string, strings, a token array and token arrays each become items; tokens estimated."""
    shapes = {"abcdefgh": 1, ("a", "bb"): 2, (1, 2, 3): 1, ((1, 2), (3,)): 2}
    for shape, count in shapes.items():
        value = (
            shape
            if isinstance(shape, str)
            else [list(s) if isinstance(s, tuple) else s for s in shape]
        )
        model, items, dims, enc = parse_embedding_request({"model": "m", "input": value})
        assert (model, len(items), dims, enc) == ("m", count, None, "float")
    assert estimate_input_tokens(["abcdefgh", [1, 2, 3]]) == 2 + 3
