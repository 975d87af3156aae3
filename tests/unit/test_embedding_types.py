"""Embedding responses read like openai-python's, whatever encoding travelled."""

from __future__ import annotations

import base64
import struct
from typing import Any, Dict

import pytest

from cometsync._embedding_types import CreateEmbeddingResponse, SyncPage, decode_vector
from cometsync._types import Attempt, Model


def _b64(*values: float) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def _body(first: Any, second: Any) -> Dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 1, "embedding": second},
            {"object": "embedding", "index": 0, "embedding": first},
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }


def test_base64_and_float_bodies_give_the_same_floats_in_index_order() -> None:
    """A base64 vector is decoded to floats; entries come back sorted by index."""
    as_floats = CreateEmbeddingResponse.from_dict(_body([1.0, -2.0], [0.5, 0.25]))
    as_b64 = CreateEmbeddingResponse.from_dict(_body(_b64(1.0, -2.0), _b64(0.5, 0.25)))
    assert as_b64.data[0].embedding == [1.0, -2.0] and as_b64.data[1].index == 1
    assert as_b64 == as_floats and as_b64.model_dump() == as_floats.model_dump()
    assert as_b64.usage.prompt_tokens == 3 and as_b64.model == "text-embedding-3-small"


def test_embedding_dump_equals_openai() -> None:
    """The dump is openai's CreateEmbeddingResponse dump; attempts and cost stay out of it."""
    openai_types = pytest.importorskip("openai.types")
    body = _body([1.0, -2.0], [0.5, 0.25])
    ordered = dict(body, data=[body["data"][1], body["data"][0]])
    theirs = openai_types.CreateEmbeddingResponse.model_validate(ordered)
    ours = CreateEmbeddingResponse.from_dict(
        body, attempts=(Attempt("m", "/v1/embeddings", 200, 0.1, 1),), request_id="req_9"
    )
    assert ours.model_dump() == theirs.model_dump()
    assert ours.model_dump_json() == theirs.model_dump_json()
    assert ours._request_id == "req_9" and "attempts" not in ours.model_dump()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("@@", "not base64"),
        (_b64(1.0)[:-4] + "AAA=", "not float32s"),
        ([1, "x"], "non-number"),
        (None, "list of floats or base64"),
    ],
)
def test_a_vector_that_is_neither_floats_nor_base64_is_named(value: Any, problem: str) -> None:
    """A bad vector fails parsing with the reason, never as a wrong vector."""
    with pytest.raises(ValueError, match=problem):
        decode_vector(value)


def test_an_error_envelope_or_missing_data_is_not_a_response() -> None:
    """A 200 carrying an error or no data list is refused (the flow retries it as malformed)."""
    with pytest.raises(ValueError, match="error envelope"):
        CreateEmbeddingResponse.from_dict({"error": {"message": "x"}})
    with pytest.raises(ValueError, match="no 'data' list"):
        CreateEmbeddingResponse.from_dict({"object": "list"})


def test_sync_page_is_a_list_and_an_openai_page() -> None:
    """A models page iterates, indexes and compares as a list, and has openai's .data/.object."""
    page = SyncPage([Model.from_dict({"id": "a"}), Model.from_dict({"id": "b"})])
    assert [m.id for m in page] == ["a", "b"] and [m.id for m in page.data] == ["a", "b"]
    assert page.object == "list" and not page.has_next_page() and isinstance(page, list)
    assert page.model_dump(exclude_none=True)["data"][1] == {"id": "b"}
