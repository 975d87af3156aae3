"""The per-key rate limiter (requests, tokens, concurrency), through Core with explicit times."""

from __future__ import annotations

from simulator import Core

from .sim_helpers import chat, error_code


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
