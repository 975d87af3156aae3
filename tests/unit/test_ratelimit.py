"""Client-side rate limits without Redis: configuration, GCRA pacing, token reservations."""

from __future__ import annotations

import pytest

import cometsync
from cometsync.guards import admission as model
from cometsync.guards.ratelimit import DEFAULT_COMPLETION_RESERVE, estimate_tokens
from cometsync.testing import FakeClock, ScriptedTransport, completion_body, json_response

MSG = [{"role": "user", "content": "hi"}]


def send(state: model.State, now: float, rpm: float = 0, tpm: float = 0, tokens: float = 0):
    return model.admit(state, model.admit_argv(now, model.SEND, rpm, tpm, tokens, 60, 0.1, 1, 60))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"rpm": 0}, "rpm"), ({"tpm": -1}, "tpm"), ({"rpm": True}, "rpm"), ({"rpm": "6"}, "rpm")],
)
def test_rate_limit_refuses_bad_values(kwargs, needle) -> None:
    """A zero, negative or non-numeric limit is a ConfigError naming the field."""
    with pytest.raises(cometsync.ConfigError, match=needle):
        cometsync.RateLimit(**kwargs)


def test_client_refuses_a_bad_rate_limit() -> None:
    """rate_limit= must be a RateLimit or a {model: RateLimit} dict."""
    with pytest.raises(cometsync.ConfigError, match="rate_limit"):
        cometsync.Client(api_key="k", rate_limit={"m": 5})
    with pytest.raises(cometsync.ConfigError, match="rate_limit"):
        cometsync.Client(api_key="k", rate_limit=600)


def test_burst_is_one_second_of_the_rate() -> None:
    """600 rpm admits 10 at once, then one every 100 ms."""
    state: model.State = {}
    now = 1000.0
    assert [send(state, now, rpm=600)[0] for _ in range(10)] == ["go"] * 10
    verdict, wait = send(state, now, rpm=600)
    assert verdict == "rate" and wait == pytest.approx(0.1, abs=1e-6)
    assert send(state, now + 0.1, rpm=600)[0] == "go"


def test_slow_rates_still_admit_one_request() -> None:
    """30 rpm admits one request, then the next after 2 s (the burst is never below one)."""
    state: model.State = {}
    assert send(state, 0.0, rpm=30)[0] == "go"
    verdict, wait = send(state, 0.0, rpm=30)
    assert verdict == "rate" and wait == pytest.approx(2.0)


def test_a_big_request_goes_alone_when_the_token_bucket_is_full() -> None:
    """A request costing more than a second of tokens waits for an idle bucket, then goes."""
    state: model.State = {}
    assert send(state, 0.0, tpm=6000, tokens=500)[0] == "go"  # 5 s worth at 100 tokens/s
    verdict, wait = send(state, 0.0, tpm=6000, tokens=500)
    assert verdict == "rate" and wait == pytest.approx(5.0)


def test_a_refused_admission_reserves_nothing() -> None:
    """When the token bucket refuses, the request bucket is not charged either."""
    state: model.State = {}
    send(state, 0.0, rpm=600, tpm=600, tokens=10)
    before = dict(state)
    assert send(state, 0.0, rpm=600, tpm=600, tokens=10)[0] == "rate"
    assert state == before


def test_estimate_tokens_counts_prompt_and_completion() -> None:
    """Prompt chars / 4 + 4 per message, plus max_tokens (or the default reserve)."""
    body = {"messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 50}
    assert estimate_tokens(body) == 10 + 4 + 50
    assert estimate_tokens({"messages": MSG}) == 4 + DEFAULT_COMPLETION_RESERVE
    assert estimate_tokens({"input": ["abcd" * 10]}) == 10
    assert estimate_tokens(None) == 0


def ok() -> cometsync.Response:
    return json_response(200, completion_body("hi"))


def test_client_paces_to_its_rate_limit_without_redis() -> None:
    """A 60 rpm client sends one call, then sleeps a second before the next (per process)."""
    clock = FakeClock()
    transport = ScriptedTransport([ok(), ok(), ok()], clock=clock)
    client = cometsync.Client(
        api_key="k", transport=transport, clock=clock, rate_limit=cometsync.RateLimit(rpm=60)
    )
    for _ in range(3):
        client.chat.completions.create(model="m", messages=MSG)
    assert clock.sleeps == pytest.approx([1.0, 1.0], abs=1e-5)


def test_per_model_limits_apply_to_their_model_only() -> None:
    """A {model: RateLimit} dict paces the named model and leaves the others free."""
    clock = FakeClock()
    transport = ScriptedTransport([ok()] * 4, clock=clock)
    client = cometsync.Client(
        api_key="k",
        transport=transport,
        clock=clock,
        rate_limit={"slow": cometsync.RateLimit(rpm=30)},
    )
    for name in ("fast", "fast", "slow", "slow"):
        client.chat.completions.create(model=name, messages=MSG)
    assert clock.sleeps == pytest.approx([2.0], abs=1e-5)


def test_client_learns_the_servers_announced_limit() -> None:
    """x-ratelimit-limit-requests: 60 paces a client whose own limit is looser."""
    clock = FakeClock()
    headers = {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
    }
    replies = [json_response(200, completion_body("hi"), headers) for _ in range(3)]
    client = cometsync.Client(
        api_key="k",
        transport=ScriptedTransport(replies, clock=clock),
        clock=clock,
        rate_limit=cometsync.RateLimit(rpm=6000),
    )
    for _ in range(3):
        client.chat.completions.create(model="m", messages=MSG)
    # The first call reserved 1/6000 min (10 ms) before the 60 rpm limit was known.
    assert clock.sleeps == pytest.approx([0.01, 1.0], abs=1e-5)


def test_token_reservation_is_settled_to_usage() -> None:
    """A 404-token reservation is corrected to the 5 used: the next call waits 50 ms, not 4 s."""
    clock = FakeClock()
    transport = ScriptedTransport([ok(), ok()], clock=clock)  # usage: a few tokens
    client = cometsync.Client(
        api_key="k",
        transport=transport,
        clock=clock,
        rate_limit=cometsync.RateLimit(tpm=6000),  # 100 tokens per second
    )
    for _ in range(2):
        client.chat.completions.create(model="m", messages=MSG, max_tokens=400)
    assert clock.sleeps == pytest.approx([0.05], abs=1e-5)
    assert client.stats()["shared"]["store"] == {"backend": "memory"}


def test_clients_sharing_a_fleet_memory_store_act_as_one() -> None:
    """A MemoryStore(fleet=True), the model of Redis, shares limits and breakers like Redis."""
    from cometsync.guards.store import MemoryStore

    store = MemoryStore(fleet=True)
    protections = cometsync.Protections(cooldown=cometsync.Cooldowns(failures=1))
    limit = cometsync.RateLimit(rpm=60)
    fail = json_response(500, {"error": {"message": "down", "type": "x", "code": None}})
    a = cometsync.Client(
        api_key="k",
        transport=ScriptedTransport([fail, ok()]),
        clock=FakeClock(),
        rate_limit=limit,
        shared_state=store,
        protections=protections,
        fallback_models=["f"],
        max_retries=0,
    )
    b_transport = ScriptedTransport([ok()])
    b_clock = FakeClock()
    b = cometsync.Client(
        api_key="k",
        transport=b_transport,
        clock=b_clock,
        rate_limit=limit,
        shared_state=store,
        protections=protections,
        fallback_models=["f"],
    )
    a.chat.completions.create(model="m", messages=MSG)  # m fails (trips), f answers
    b.chat.completions.create(model="m", messages=MSG)
    assert b_transport.models == ["f"]  # the breaker a tripped
    assert b_clock.sleeps == pytest.approx([1.0], abs=1e-5)  # f's 60 rpm a spent


def test_rate_limit_with_neither_rpm_nor_tpm_paces_only_to_the_server() -> None:
    """RateLimit() sets no limit of its own: calls go at once until the server announces one."""
    assert cometsync.RateLimit() == cometsync.RateLimit(rpm=None, tpm=None)
    transport = ScriptedTransport([ok() for _ in range(3)])
    clock = FakeClock()
    client = cometsync.Client(
        api_key="k", transport=transport, clock=clock, rate_limit=cometsync.RateLimit()
    )
    for _ in range(3):
        client.chat.completions.create(model="m", messages=MSG)
    assert clock.sleeps == []  # nothing of its own to pace to
    assert client.stats()["shared"]["rate_limits"]["*"] == {"rpm": None, "tpm": None}


def test_stats_name_the_every_model_limit_star_and_never_show_none() -> None:
    """stats() keys: "*" for the every-model limit; model-less calls leave no entry at all."""
    headers = {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1s",
    }
    script = [
        json_response(429, {"error": {"message": "slow"}}, headers),
        json_response(200, completion_body("hi"), headers),
    ]
    client = cometsync.Client(
        api_key="k",
        transport=ScriptedTransport(script),
        clock=FakeClock(),
        rate_limit=cometsync.RateLimit(rpm=600),
        max_retries=0,
    )
    with pytest.raises(cometsync.RateLimitError):
        client.models.list()
    client.chat.completions.create(model="m1", messages=MSG)
    stats = client.stats()
    assert stats["shared"]["rate_limits"] == {"*": {"rpm": 600, "tpm": None}}
    assert list(stats["limiter"]) == ["m1"]  # issue 13: model-less calls are no model's
    assert "(no model)" not in stats["shared"]["learned"]
    assert "'None'" not in repr(stats)
