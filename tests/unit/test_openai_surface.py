"""The openai-python surface on the client: embeddings, models.retrieve, with_raw_response."""

from __future__ import annotations

import base64
import struct
from typing import Any, Dict, List

import pytest

import cometsync
from cometsync import (
    BadRequestError,
    CreateEmbeddingResponse,
    InternalServerError,
    NotFoundError,
    RawResponse,
    RequestTypeError,
    RequestValidationError,
)
from cometsync.testing import json_response

from .helpers import MSGS, err, make, ok


def emb_body(model: str = "e1", vectors: Any = ([0.5, -0.5],)) -> Dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }


def emb(model: str = "e1", headers: Any = None, **kw: Any) -> Any:
    return json_response(200, emb_body(model, **kw), headers=headers)


def catalog(entries: List[Dict[str, Any]]) -> Any:
    return json_response(200, {"success": True, "data": entries})


def test_embeddings_retry_like_chat_and_record_attempts() -> None:
    """A 503 then a 200: one retry after backoff, both attempts recorded, floats returned."""
    client, transport, clock = make([json_response(503, err()), emb()])
    result = client.embeddings.create(model="e1", input="hello")
    assert isinstance(result, CreateEmbeddingResponse)
    assert result.data[0].embedding == [0.5, -0.5] and result.data[0].index == 0
    assert [a.decision for a in result.attempts] == ["retry", "success"]
    assert [a.route for a in result.attempts] == ["/v1/embeddings"] * 2
    assert transport.requests[0].url.endswith("/v1/embeddings")
    assert transport.bodies[0] == {"model": "e1", "input": "hello"}
    assert clock.monotonic() > 0  # the backoff slept on the injected clock


def test_embeddings_never_use_the_clients_chat_fallbacks() -> None:
    """The client-wide fallback_models are chat models: an embedding call does not use them."""
    client, transport, _ = make([json_response(500, err())] * 3, fallback_models=["chat-1"])
    with pytest.raises(InternalServerError) as info:
        client.embeddings.create(model="e1", input="x")
    assert set(transport.models) == {"e1"}
    assert info.value.attempts[-1].decision == "raise"


def test_embeddings_fall_back_to_the_embedding_models_the_call_lists() -> None:
    """fallback_models given to the call are tried after the primary fails."""
    client, transport, _ = make([json_response(404, err("model_not_found")), emb("e2")])
    result = client.embeddings.create(model="e1", input=["a"], fallback_models=["e2"])
    assert transport.models == ["e1", "e2"] and result.model == "e2"
    assert [a.decision for a in result.attempts] == ["fallback", "success"]


def test_base64_on_the_wire_is_floats_for_the_caller() -> None:
    """encoding_format=base64 is sent as asked; the vectors come back as floats."""
    packed = base64.b64encode(struct.pack("<2f", 0.25, 1.0)).decode()
    client, transport, _ = make([emb(vectors=(packed,))])
    result = client.embeddings.create(
        model="e1", input=[[1, 2, 3]], encoding_format="base64", dimensions=2, user="u"
    )
    assert result.data[0].embedding == [0.25, 1.0]
    assert transport.bodies[0] == {
        "model": "e1",
        "input": [[1, 2, 3]],
        "encoding_format": "base64",
        "dimensions": 2,
        "user": "u",
    }


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"input": ""}, RequestValidationError, "empty string"),
        ({"input": []}, RequestValidationError, "empty list"),
        ({"input": ["a", ""]}, RequestValidationError, r"input\[1\]"),
        ({"input": ["x"] * 2049}, RequestValidationError, "at most 2048"),
        ({"input": {"text": "x"}}, RequestTypeError, "got dict"),
        ({"input": [1.5]}, RequestTypeError, r"input\[0\]"),
        ({"input": "x", "dimensions": 0}, RequestValidationError, "dimensions"),
        ({"input": "x", "encoding_format": "hex"}, RequestValidationError, "encoding_format"),
        ({"input": "x", "max_retries": 1}, RequestTypeError, "with_options"),
    ],
)
def test_impossible_embedding_requests_are_refused_before_sending(
    kwargs: Dict[str, Any], error: type, message: str
) -> None:
    """An input no server accepts fails at once, naming the problem; nothing is sent."""
    client, transport, _ = make([])
    with pytest.raises(error, match=message):
        client.embeddings.create(model="e1", **kwargs)
    assert transport.requests == []


def test_embedding_cost_comes_from_the_catalog_input_price() -> None:
    """Cost = prompt tokens x the catalog's input price; output price is not needed."""
    entry = {
        "id": "e1",
        "provider": "openai",
        "model_type": "embedding",
        "pricing": {"input": 0.02, "output": None},
    }
    client, _, _ = make([emb(), catalog([entry])], price_calls=True)
    result = client.embeddings.create(model="e1", input="x")
    assert result.cost == pytest.approx(4 * 0.02 / 1_000_000)
    assert "cost" not in result.model_dump()


def test_embeddings_map_and_submit_run_on_the_pool_in_order() -> None:
    """map yields results in input order; submit returns a future of the response."""
    client, _, _ = make([emb("e1"), emb("e1"), emb("e1")], max_workers=1)
    results = list(
        client.embeddings.map(
            [{"model": "e1", "input": "a"}, "bad", {"model": "e1", "input": "b"}],
            return_exceptions=True,
        )
    )
    assert isinstance(results[0], CreateEmbeddingResponse) and isinstance(results[1], TypeError)
    assert client.embeddings.submit(model="e1", input="c").result().model == "e1"
    client.close()


def test_raw_response_has_headers_request_and_the_parsed_result_after_retries() -> None:
    """with_raw_response: the answering response's headers, method/URL, parse() and attempts."""
    client, _, _ = make(
        [
            json_response(503, err()),
            ok(headers={"X-Request-ID": "req_7", "x-ratelimit-remaining-requests": "9"}),
        ]
    )
    raw = client.chat.completions.with_raw_response.create(model="m1", messages=MSGS)
    assert isinstance(raw, RawResponse) and raw.status_code == 200
    assert (
        raw.headers["x-request-id"] == "req_7"
        and raw.headers.get("X-RateLimit-Remaining-Requests") == "9"
    )
    assert raw.http_request.method == "POST" and raw.http_request.url.endswith(
        "/v1/chat/completions"
    )
    assert raw.http_request.headers == {}  # the key is never exposed here
    completion = raw.parse()
    assert completion.choices[0].message.content == "fine" and completion._request_id == "req_7"
    assert (
        [a.decision for a in raw.attempts]
        == ["retry", "success"]
        == [a.decision for a in completion.attempts]
    )
    assert raw.retries_taken == 1 and raw.request_id == "req_7"
    assert raw.json()["id"] == "chatcmpl-test"


def test_raw_response_of_a_failed_call_raises_like_create() -> None:
    """with_raw_response does not swallow errors: a 400 raises BadRequestError."""
    client, _, _ = make([json_response(400, err())])
    with pytest.raises(BadRequestError):
        client.embeddings.with_raw_response.create(model="e1", input="x")


def test_models_retrieve_list_and_raw() -> None:
    """retrieve GETs /models/{id} (one path segment); list is a list and an openai page."""
    model = {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "openai"}
    client, transport, _ = make(
        [
            json_response(200, model, headers={"x-request-id": "r1"}),
            json_response(200, {"object": "list", "data": [model]}),
            json_response(404, err("model_not_found")),
            json_response(200, model),
        ]
    )
    got = client.models.retrieve("gpt-4o-mini")
    assert got.id == "gpt-4o-mini" and got.owned_by == "openai" and got._request_id == "r1"
    page = client.models.list()
    assert [m.id for m in page] == ["gpt-4o-mini"] == [m.id for m in page.data]
    with pytest.raises(NotFoundError):
        client.models.retrieve("a/b?c")
    assert transport.requests[2].url.endswith("/v1/models/a%2Fb%3Fc")
    raw = client.models.with_raw_response.retrieve("gpt-4o-mini")
    assert raw.parse() == got and raw.http_request.method == "GET"
    with pytest.raises(RequestValidationError):
        client.models.retrieve(" ")


def test_completion_request_id_comes_from_the_header() -> None:
    """completion._request_id is the x-request-id of the response that answered."""
    client, _, _ = make([ok(headers={"x-request-id": "req_42"})])
    assert client.chat.completions.create(model="m1", messages=MSGS)._request_id == "req_42"
    assert cometsync.ChatCompletion.from_dict(ok().json())._request_id is None


def test_raw_response_of_a_stream_parses_to_the_stream_with_its_headers() -> None:
    """with_raw_response.create(stream=True): the stream's response headers; parse() streams."""
    from cometsync import Stream
    from cometsync.testing import DONE, StreamedResponse, chunk_body

    pieces = [chunk_body("He", role="assistant"), chunk_body("llo", finish_reason="stop"), DONE]
    client, _, _ = make([StreamedResponse(pieces, headers={"x-request-id": "req_s"})])
    raw = client.chat.completions.with_raw_response.create(model="m1", messages=MSGS, stream=True)
    assert raw.headers["x-request-id"] == "req_s" and raw.http_request.method == "POST"
    stream = raw.parse()
    assert isinstance(stream, Stream)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "Hello"
    final = stream.get_final_completion()
    assert final._request_id == "req_s" and final.choices[0].message.content == "Hello"
