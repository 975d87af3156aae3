"""Reply and stream building: bodies, streams, transport faults, model lists; no sockets."""

from __future__ import annotations

import json
from typing import Optional

import pytest

from simulator import Core
from simulator.wire import format_duration

from .sim_helpers import AUTH, chat


def test_stream_text_equals_non_stream_text_and_usage_adds_up() -> None:
    """Streamed deltas join to the non-streamed content; total = prompt + completion tokens."""
    core = Core(seed=9)
    plain = chat(core, model="gpt-4o-mini", content="tell me")
    stream = chat(
        core,
        model="gpt-4o-mini",
        content="tell me",
        stream=True,
        stream_options={"include_usage": True},
    )
    text = plain.payload["choices"][0]["message"]["content"]
    chunks = [obj for _, obj in stream.chunks or []]
    assert chunks[-1] == "[DONE]"
    deltas = "".join(
        c["choices"][0]["delta"].get("content", "") for c in chunks[:-1] if c["choices"]
    )
    assert deltas == text and text
    usage = plain.payload["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert chunks[-2]["usage"] == usage and chunks[-2]["choices"] == []
    assert [e for _, e in stream.events][-1] == b"data: [DONE]\n\n"


def test_content_depends_on_seed_and_request_only() -> None:
    """The same request gets the same text whatever came before; another seed changes it."""
    a, b, c = Core(seed=1), Core(seed=1), Core(seed=2)
    for i in range(5):
        chat(b, content=f"noise {i}", model="gpt-4o")
    texts = [chat(x, model="gpt-4o").payload["choices"][0]["message"]["content"] for x in (a, b, c)]
    assert texts[0] == texts[1] != texts[2]


def test_max_tokens_caps_the_reply_with_finish_reason_length() -> None:
    """max_tokens=3 gives three completion tokens and finish_reason length."""
    reply = chat(Core(), model="gpt-4o", max_tokens=3)
    assert reply.payload["usage"]["completion_tokens"] == 3
    assert reply.payload["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("fault", "status", "end"),
    [
        ("reset", None, "reset"),
        ("hang", None, "stall"),
        ("malformed", 200, "complete"),
        ("empty", 200, "complete"),
        ("html", 502, "complete"),
        ("truncate", 200, "truncated"),
    ],
)
def test_transport_faults_plan_their_answer(fault: str, status: Optional[int], end: str) -> None:
    """Each transport fault plans its status (None: no response) and how the reply ends."""
    core = Core({"models": {"m1": {"script": [{"fault": fault}]}}, "hang_s": 7})
    reply = chat(core)
    assert (reply.status, reply.end, reply.fault) == (status, end, fault)
    if fault == "malformed":
        with pytest.raises(json.JSONDecodeError):
            json.loads(reply.body)
    if fault == "empty":
        assert reply.body == b""
    if fault == "html":
        assert reply.headers["content-type"] == "text/html" and b"502 Bad Gateway" in reply.body
    if fault == "truncate":
        assert int(reply.headers["content-length"]) > len(reply.body) > 0
    if fault == "hang":
        assert reply.hold == 7


def test_truncated_stream_stops_before_done() -> None:
    """A truncated stream has events but neither a finish reason nor [DONE]."""
    core = Core({"models": {"m1": {"script": [{"fault": "truncate"}]}}})
    reply = chat(core, stream=True)
    objs = [obj for _, obj in reply.chunks or []]
    assert reply.end == "truncated" and len(objs) > 1
    assert "[DONE]" not in objs
    assert all(o["choices"][0]["finish_reason"] is None for o in objs)


def test_reply_body_is_encoded_lazily_from_payload() -> None:
    """Drivers that read ``payload`` never pay for encoding; ``body`` encodes on demand."""
    reply = chat(Core())
    assert reply._body is None
    assert json.loads(reply.body) == reply.payload


def test_format_duration_matches_openai_style() -> None:
    """Reset durations read like 120ms, 1s, 1.5s and 6m0s."""
    assert [format_duration(x) for x in (0.12, 1, 1.5, 360, 61.25)] == [
        "120ms",
        "1s",
        "1.5s",
        "6m0s",
        "1m1.25s",
    ]


def test_models_list_and_catalog_cover_every_model() -> None:
    """/v1/models lists the scenario's models; /api/models prices each, with paging."""
    core = Core("healthy")
    listed = core.handle("GET", "/v1/models", AUTH, b"", 0).payload
    ids = [m["id"] for m in listed["data"]]
    assert listed["object"] == "list" and "gpt-4o-mini" in ids
    catalog = core.handle("GET", "/api/models", {}, b"", 0).payload
    assert catalog["success"] is True and catalog["total"] == len(ids)
    assert {m["id"] for m in catalog["data"]} == set(ids)
    pricing = catalog["data"][0]["pricing"]
    assert set(pricing) == {"currency", "input", "output", "per_request", "per_second"}
    page = core.handle("GET", "/api/models?page=2&page_size=2", {}, b"", 0).payload
    assert page["page"] == 2 and [m["id"] for m in page["data"]] == ids[2:4]
    one = core.handle("GET", "/v1/models/gpt-4o", AUTH, b"", 0)
    assert one.payload["id"] == "gpt-4o"
    assert core.handle("GET", "/v1/models/nope", AUTH, b"", 0).status == 404


def test_catalog_lists_chat_and_embedding_models_as_cometapi_does() -> None:
    """Chat models are model_type "text" ("text-to-text"); embedding models "embedding"."""
    entries = Core("healthy").handle("GET", "/api/models", {}, b"", 0).payload["data"]
    chat = [m for m in entries if "embedding" not in m["id"]]
    embedding = [m for m in entries if "embedding" in m["id"]]
    assert chat and all(m["model_type"] == "text" for m in chat)
    assert all(m["features"] == ["text-to-text"] for m in chat)
    assert {m["id"] for m in embedding} == {"text-embedding-3-small", "text-embedding-3-large"}
    assert all(m["model_type"] == "embedding" for m in embedding)
    assert all(m["features"] == ["embedding"] for m in embedding)
    assert all(m["pricing"]["output"] is None for m in embedding)


def test_prices_the_scenario_does_not_give_are_null_never_zero() -> None:
    """A model without pricing, or a missing field, is listed with null prices, not 0.0."""
    core = Core({"models": {"free?": {}, "half": {"pricing": {"input": 0.5}}}})
    prices = {
        m["id"]: m["pricing"] for m in core.handle("GET", "/api/models", {}, b"", 0).payload["data"]
    }
    unset = {"input": None, "output": None, "per_request": None, "per_second": None}
    assert {k: v for k, v in prices["free?"].items() if k != "currency"} == unset
    assert {k: v for k, v in prices["half"].items() if k != "currency"} == {**unset, "input": 0.5}
    preset = Core("healthy").handle("GET", "/api/models", {}, b"", 0).payload["data"]
    chat = [m for m in preset if m["model_type"] == "text"]
    assert all(m["pricing"]["input"] > 0 and m["pricing"]["output"] > 0 for m in chat)


@pytest.mark.parametrize(("method", "path"), [("POST", "/chat/completions"), ("GET", "/v1/nope")])
def test_an_unknown_url_gets_openais_invalid_url_404(method: str, path: str) -> None:
    """An unknown route answers OpenAI's 404 body, which never says "model not found"."""
    reply = Core({"models": {"m1": {}}}).handle(method, path + "?x=1", AUTH, b"{}", 0)
    assert reply.status == 404
    assert reply.payload == {
        "error": {
            "message": f"Invalid URL ({method} {path})",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def test_catalog_without_paging_lists_every_model_as_cometapi_does() -> None:
    """No page parameters: every model at once, page 0 and page_size 0, even past 100 models."""
    models = {f"m{i:03d}": {"pricing": {"input": 1, "output": 2}} for i in range(150)}
    core = Core({"models": models})
    catalog = core.handle("GET", "/api/models", {}, b"", 0).payload
    assert (catalog["page"], catalog["page_size"], catalog["total"]) == (0, 0, 150)
    assert len(catalog["data"]) == 150
