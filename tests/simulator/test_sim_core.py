"""The fault model driven directly with explicit times: no sockets, no sleeps."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import pytest

from simulator import Core, Reply, redact
from simulator.wire import format_duration

KEY = "sk-test-0123456789abcd"
AUTH = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}


def chat(
    core: Core,
    now: float = 0.0,
    model: str = "m1",
    content: str = "hi",
    finish: bool = True,
    headers: Optional[Dict[str, str]] = None,
    **extra: Any,
) -> Reply:
    body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
    reply = core.handle(
        "POST", "/v1/chat/completions", headers or AUTH, json.dumps(body).encode(), now
    )
    if finish:
        core.finish(reply, now + reply.latency)
    return reply


def error_code(reply: Reply) -> str:
    return str(reply.payload["error"]["code"])


def test_script_steps_are_served_in_order_then_normal_behaviour() -> None:
    """A script's steps answer the first requests in order, then the model answers 200."""
    core = Core({"models": {"m1": {"script": [{"status": 429, "retry_after": 1}, 503, 200]}}})
    replies = [chat(core, now=float(i)) for i in range(5)]
    assert [r.status for r in replies] == [429, 503, 200, 200, 200]
    assert replies[0].headers["retry-after"] == "1"
    assert [r.cause for r in replies] == ["script", "script", "script", "ok", "ok"]


def test_scripted_error_uses_its_code_message_and_retry_after_ms() -> None:
    """A scripted step's code, message and retry_after_ms reach the envelope and headers."""
    step = {"status": 429, "code": "insufficient_quota", "message": "quota", "retry_after_ms": 250}
    reply = chat(Core({"models": {"m1": {"script": [step]}}}))
    err = reply.payload["error"]
    assert err["code"] == "insufficient_quota" and err["type"] == "comet_api_error"
    assert err["message"].startswith("quota (request id: ")
    assert reply.headers["x-request-id"] in err["message"]
    assert reply.headers["retry-after-ms"] == "250" and "retry-after" not in reply.headers


def test_outage_answers_its_status_only_inside_its_window() -> None:
    """An outage window [2, 8) answers 503 inside and 200 outside, by the time passed in."""
    core = Core({"models": {"m1": {"outages": [{"start": 2, "end": 8}]}}})
    core.set_origin(100.0)
    statuses = [chat(core, now=100.0 + t).status for t in (0, 1.99, 2, 5, 7.99, 8, 20)]
    assert statuses == [200, 200, 503, 503, 503, 200, 200]


def test_reset_restarts_the_time_origin_of_outages() -> None:
    """After a reset at t, the outage window counts from t again."""
    core = Core({"models": {"m1": {"outages": [{"start": 2, "end": 8}]}}})
    core.set_origin(0.0)
    assert chat(core, now=10.0).status == 200
    core.reset(10.0)
    assert chat(core, now=13.0).status == 503


def test_same_seed_same_requests_give_same_statuses_bodies_and_delays() -> None:
    """Two fresh cores with one seed answer one request sequence identically."""

    def run(seed: int) -> List[Any]:
        core = Core("flaky", seed=seed)
        out = []
        for i in range(300):
            r = chat(core, now=i * 0.01, model="gpt-4o-mini", content=f"q{i % 7}")
            out.append((r.status, r.fault, r.body, r.latency))
        return out

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_reset_restores_the_random_state_and_script_positions() -> None:
    """After reset, the same requests get the same answers as from fresh."""
    core = Core(
        {
            "seed": 3,
            "models": {
                "m1": {
                    "script": [500],
                    "faults": [{"status": 503, "rate": 0.3}],
                    "latency_ms": {"dist": "uniform", "low": 1, "high": 9},
                }
            },
        }
    )
    first = [(r.status, r.latency) for r in (chat(core, now=i) for i in range(50))]
    core.reset(100.0)
    again = [(r.status, r.latency) for r in (chat(core, now=100 + i) for i in range(50))]
    assert first == again
    assert first[0][0] == 500 and any(s == 503 for s, _ in first)


def test_fault_rates_are_respected_statistically() -> None:
    """A 20% fault fires on roughly a fifth of 5,000 requests."""
    core = Core({"models": {"m1": {"faults": [{"status": 503, "rate": 0.2}]}}}, seed=5)
    n = sum(chat(core, now=i).status == 503 for i in range(5000))
    assert 850 < n < 1150


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


def test_stream_token_delays_and_time_to_first_token() -> None:
    """Streams wait ttft_ms before the head and token_ms before each content chunk."""
    core = Core({"models": {"m1": {"latency_ms": 500, "ttft_ms": 30, "token_ms": 5}}})
    reply = chat(core, stream=True)
    delays = [d for d, _ in reply.chunks or []]
    assert reply.latency == pytest.approx(0.030)
    assert delays[0] == 0.0 and delays[-1] == 0.0
    assert set(delays[1:-2]) == {0.005}
    assert chat(core).latency == pytest.approx(0.5)


def test_rate_limit_headers_count_down_and_429_waits_the_real_time() -> None:
    """With rpm=60 the 61st request in one instant gets 429 with retry-after 1 s, truthfully."""
    core = Core({"models": {"m1": {}}, "rate_limits": {"rpm": 60}})
    first = chat(core, now=0.0)
    assert first.headers["x-ratelimit-limit-requests"] == "60"
    assert first.headers["x-ratelimit-remaining-requests"] == "59"
    assert first.headers["x-ratelimit-reset-requests"] == "1s"
    for _ in range(59):
        assert chat(core, now=0.0).status == 200
    limited = chat(core, now=0.0)
    assert limited.status == 429 and error_code(limited) == "rate_limit_exceeded"
    assert limited.headers["retry-after"] == "1" and limited.headers["retry-after-ms"] == "1000"
    assert limited.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert chat(core, now=0.999).status == 429
    assert chat(core, now=1.0).status == 200


def test_token_limit_counts_prompt_and_max_tokens() -> None:
    """tpm buckets charge the prompt estimate plus max_tokens, and say how long to wait."""
    core = Core({"models": {"m1": {}}, "rate_limits": {"tpm": 600}})
    ok = chat(core, max_tokens=290)
    cost = 600 - int(ok.headers["x-ratelimit-remaining-tokens"])
    assert 290 < cost < 310
    chat(core, max_tokens=290)
    limited = chat(core, max_tokens=290)
    assert limited.status == 429
    wait = float(limited.headers["retry-after"])
    assert chat(core, now=wait - 0.01, max_tokens=290).status == 429
    assert chat(core, now=wait, max_tokens=290).status == 200


def test_rate_limits_are_per_api_key() -> None:
    """One key exhausting its bucket does not limit another key."""
    core = Core({"models": {"m1": {}}, "rate_limits": {"rpm": 1}})
    assert chat(core).status == 200
    assert chat(core).status == 429
    other = {"authorization": "Bearer sk-other-key-000000"}
    assert chat(core, headers=other).status == 200


def test_concurrency_cap_counts_requests_until_finish() -> None:
    """With concurrency 2, a third request in flight gets 429 until one finishes."""
    core = Core({"models": {"m1": {"latency_ms": 100}}, "rate_limits": {"concurrency": 2}})
    a = chat(core, now=0.0, finish=False)
    chat(core, now=0.0, finish=False)
    limited = chat(core, now=0.05, finish=False)
    assert limited.status == 429
    assert limited.headers["retry-after-ms"] == "50"  # a planned to end at 0.1
    core.finish(a, 0.1)
    core.finish(a, 0.1)  # idempotent
    assert chat(core, now=0.1, finish=False).status == 200
    assert core.in_flight("m1") == 2  # b and the new one; the 429 never counted


def test_load_above_capacity_slows_and_fails_requests() -> None:
    """Beyond capacity, latency grows with requests in flight and failures appear."""
    core = Core(
        {"models": {"m1": {"latency_ms": 10, "load": {"capacity": 2, "failure_slope": 0.5}}}},
        seed=1,
    )
    calm = chat(core)
    assert calm.latency == pytest.approx(0.010)
    held = [chat(core, finish=False) for _ in range(40)]
    assert held[-1].latency > 5 * calm.latency
    assert sum(r.status == 503 for r in held) > 10
    assert {r.cause for r in held if r.status == 503} == {"load"}
    for r in held:
        core.finish(r, 1.0)
    assert core.in_flight("m1") == 0
    assert chat(core).latency == pytest.approx(0.010)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b"[" * 100000, 400, "invalid_json"),
        (b"[]", 400, "invalid_request"),
        (b"{}", 400, "invalid_request"),
        (b'{"model": "m1"}', 400, "invalid_request"),
        (b'{"model": 3, "messages": []}', 400, "invalid_request"),
        (b'{"model": "m1", "messages": []}', 400, "invalid_request"),
        (
            b'{"model": "m1", "messages": [{"role": "wizard", "content": "x"}]}',
            400,
            "invalid_request",
        ),
        (b'{"model": "m1", "messages": [{"role": "user", "content": 3}]}', 400, "invalid_request"),
        (
            b'{"model": "m1", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            400,
            "invalid_request",
        ),
        (
            b'{"model": "m1", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
            400,
            "invalid_request",
        ),
        (
            b'{"model": "m1", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
            400,
            "invalid_request",
        ),
        (
            b'{"model": "m1", "messages": [{"role": "user", "content": "x"}], "n": 2}',
            400,
            "invalid_request",
        ),
        (
            b'{"model": "zz", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "model_not_found",
        ),
    ],
)
def test_bad_chat_requests_get_deliberate_4xx(body: bytes, status: int, code: str) -> None:
    """Every class of malformed chat request gets its 4xx envelope, never a 500."""
    core = Core({"models": {"m1": {}}})
    reply = core.handle("POST", "/v1/chat/completions", AUTH, body, 0.0)
    assert reply.status == status and error_code(reply) == code
    assert reply.payload["error"]["type"] == "comet_api_error"


def test_validation_message_names_the_problem_and_param() -> None:
    """A bad role names the field in the message and in ``param``."""
    body = b'{"model": "m1", "messages": [{"role": "user", "content": "x"}, {"role": "bot"}]}'
    reply = Core({"models": {"m1": {}}}).handle("POST", "/v1/chat/completions", AUTH, body, 0.0)
    assert reply.payload["error"]["param"] == "messages[1].role"
    assert "messages[1].role must be one of" in reply.payload["error"]["message"]


def test_routes_auth_and_limits() -> None:
    """Unknown paths 404, wrong methods 405, missing or wrong keys 401, big bodies 413."""
    core = Core({"models": {"m1": {}}}, api_key=KEY)
    assert core.handle("GET", "/nope", AUTH, b"", 0).status == 404
    assert core.handle("GET", "/v1/nope", AUTH, b"", 0).status == 404
    assert core.handle("GET", "/v1/chat/completions", AUTH, b"", 0).status == 405
    missing = core.handle("POST", "/v1/chat/completions", {}, b"{}", 0)
    assert missing.status == 401 and error_code(missing) == "invalid_api_key"
    wrong = core.handle("GET", "/v1/models", {"authorization": "Bearer sk-wrong-key-99"}, b"", 0)
    assert wrong.status == 401
    big = core.handle("POST", "/v1/chat/completions", AUTH, b"", 0, body_length=10**9)
    assert big.status == 413 and error_code(big) == "request_too_large"


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


def test_journal_records_every_request_with_redacted_key() -> None:
    """The journal has one record per request, the key shown by at most its last 4 chars."""
    core = Core({"models": {"m1": {"script": [{"fault": "reset"}]}}})
    chat(core, now=0.0)
    chat(core, now=1.0)
    core.handle("GET", "/nope", AUTH, b"", 2.0)
    records = core.journal()
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert records[0]["status"] is None and records[0]["fault"] == "reset"
    assert records[1]["status"] == 200 and records[1]["t"] == 1.0
    assert all(r["key"] == "...abcd" for r in records)
    assert KEY not in json.dumps(records) and KEY not in json.dumps(core.stats())
    assert set(records[0]) >= {
        "seq",
        "t",
        "key",
        "model",
        "route",
        "status",
        "fault",
        "latency_ms",
        "stream",
    }


def test_unfinished_delivery_is_journaled_as_no_response() -> None:
    """finish(delivered=False) turns the record's status to null and moves the stat."""
    core = Core({"models": {"m1": {}}})
    reply = chat(core, finish=False)
    core.finish(reply, 1.0, delivered=False)
    assert core.journal()[0]["status"] is None
    assert core.stats()["by_model"]["m1"] == {"200": 0, "none": 1}


@pytest.mark.parametrize(
    ("key", "shown"),
    [("sk-1234567890abcd", "...abcd"), ("sk-demo", "...mo"), ("ab", "..."), (None, None)],
)
def test_redact_never_shows_more_than_four_chars(key: Optional[str], shown: Optional[str]) -> None:
    """Keys show at most their last 4 characters, fewer when short."""
    assert redact(key) == shown


def test_admin_routes_through_handle() -> None:
    """Admin GET/POST routes answer without touching the journal; bad scenarios name the field."""
    core = Core({"models": {"m1": {}}})
    chat(core)
    assert core.handle("GET", "/_sim/health", {}, b"", 1).payload["status"] == "ok"
    assert len(core.handle("GET", "/_sim/journal", {}, b"", 1).payload) == 1
    assert core.handle("GET", "/_sim/journal?since=1", {}, b"", 1).payload == []
    assert core.handle("GET", "/_sim/stats", {}, b"", 1).payload["total"] == 1
    bad = core.handle("POST", "/_sim/scenario", {}, b'{"models": {"m2": {"latency_ms": -1}}}', 1)
    assert bad.status == 400 and bad.payload["error"]["param"] == "models.m2.latency_ms"
    assert "models.m2.latency_ms" in bad.payload["error"]["message"]
    good = core.handle("POST", "/_sim/scenario", {}, b'{"models": {"m2": {}}}', 1)
    assert good.status == 200 and core.scenario.models.keys() == {"m2"}
    assert core.journal() == []  # a new scenario starts a new run
    chat(core, model="m2")
    assert core.handle("POST", "/_sim/reset", {}, b"", 2).status == 200
    assert core.journal() == [] and core.stats()["total"] == 0
    assert core.handle("GET", "/_sim/reset", {}, b"", 2).status == 405
    assert core.handle("GET", "/_sim/nope", {}, b"", 2).status == 404
    assert core.handle("POST", "/_sim/scenario", {}, b"{", 2).status == 400


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


def test_catalog_lists_chat_models_as_cometapi_does() -> None:
    """Chat models are model_type "text" with the "text-to-text" feature, as in CometAPI's list."""
    entries = Core("healthy").handle("GET", "/api/models", {}, b"", 0).payload["data"]
    assert entries and all(m["model_type"] == "text" for m in entries)
    assert all(m["features"] == ["text-to-text"] for m in entries)


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
    assert all(m["pricing"]["input"] > 0 and m["pricing"]["output"] > 0 for m in preset)


@pytest.mark.parametrize("scenario_seed", [None, 5])
@pytest.mark.parametrize("override", [None, 9])
def test_scenario_and_health_report_the_same_effective_seed(
    scenario_seed: Optional[int], override: Optional[int]
) -> None:
    """/_sim/scenario, its POST answer and /_sim/health all show the seed in force."""
    core = Core({"seed": scenario_seed, "models": {"m1": {}}}, override)
    health = core.handle("GET", "/_sim/health", {}, b"", 0).payload["seed"]
    assert health == core.seed
    assert core.handle("GET", "/_sim/scenario", {}, b"", 0).payload["seed"] == health
    posted = json.dumps({"seed": scenario_seed, "models": {"m2": {}}}).encode()
    answer = core.handle("POST", "/_sim/scenario", {}, posted, 0).payload
    assert answer["seed"] == core.handle("GET", "/_sim/health", {}, b"", 0).payload["seed"]


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
