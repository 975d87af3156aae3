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


# -- through the core: the same limits, faults and journal as chat ----------------------------
def _embed(core: Any, now: float = 0.0, **body: Any) -> Any:
    import json

    from tests.simulator.sim_helpers import AUTH

    body.setdefault("model", "e1")
    body.setdefault("input", "hello")
    reply = core.handle("POST", "/v1/embeddings", AUTH, json.dumps(body).encode(), now)
    core.finish(reply, now + reply.latency)
    return reply


def _core(**e1: Any) -> Any:
    from simulator import Core

    return Core(
        {
            "models": {"e1": {"model_type": "embedding", "dimensions": 64, **e1}, "chat": {}},
            "seed": 3,
        }
    )


def test_core_serves_embeddings_with_per_model_dimensions_and_usage() -> None:
    """A 200 list body with the model's dimensions, the asked ones, and estimated usage."""
    core = _core()
    reply = _embed(core, input=["abcd", "efgh"])
    assert reply.status == 200 and reply.headers["x-request-id"]
    assert [len(d["embedding"]) for d in reply.payload["data"]] == [64, 64]
    assert reply.payload["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    assert len(_embed(core, dimensions=8).payload["data"][0]["embedding"]) == 8
    assert _embed(core, dimensions=65).status == 400
    assert _embed(core).payload["data"] == _embed(core).payload["data"]  # same input, same vector


def test_core_applies_scripted_faults_and_journals_embeddings() -> None:
    """A scripted 503 and a reset hit embeddings as they hit chat; the journal records them."""
    core = _core(script=[{"status": 503}, {"fault": "reset"}, {"fault": "malformed"}])
    replies = [_embed(core) for _ in range(4)]
    assert [r.status for r in replies] == [503, None, 200, 200]
    assert replies[2].payload is None and replies[3].payload["object"] == "list"
    journal = core.journal()
    assert [j["route"] for j in journal] == ["/v1/embeddings"] * 4
    assert [j["cause"] for j in journal] == ["script", "script", "script", "ok"]


def test_core_rate_limits_embeddings_by_their_tokens() -> None:
    """Embedding tokens count against the key's tokens-per-minute like chat tokens."""
    from simulator import Core

    core = Core({"models": {"e1": {"model_type": "embedding"}}, "rate_limits": {"tpm": 10}})
    assert _embed(core, input="x" * 32).status == 200  # 8 tokens
    limited = _embed(core, input="x" * 32)
    assert limited.status == 429 and "tokens per minute" in limited.payload["error"]["message"]


def test_core_refuses_embedding_requests_as_openai_does() -> None:
    """Empty input, a chat model, an unknown model and a GET each get their own error."""
    core = _core()
    empty = _embed(core, input="")
    assert empty.status == 400 and "'$.input' is invalid" in empty.payload["error"]["message"]
    chat_model = _embed(core, model="chat")
    assert chat_model.status == 400 and chat_model.payload["error"]["param"] == "model"
    assert _embed(core, model="nope").status == 404
    from tests.simulator.sim_helpers import AUTH

    assert core.handle("GET", "/v1/embeddings", AUTH, b"", 0).status == 405


def test_scenario_model_type_and_dimensions_are_validated() -> None:
    """model_type must be text or embedding; dimensions a positive integer; ids imply a type."""
    from simulator import ScenarioError, load_scenario

    scenario = load_scenario({"models": {"text-embedding-x": {}, "m": {"model_type": "embedding"}}})
    assert {s.model_type for s in scenario.models.values()} == {"embedding"}
    with pytest.raises(ScenarioError, match="model_type"):
        load_scenario({"models": {"m": {"model_type": "image"}}})
    with pytest.raises(ScenarioError, match="dimensions"):
        load_scenario({"models": {"m": {"dimensions": 0}}})
