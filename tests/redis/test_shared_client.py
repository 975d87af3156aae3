"""Clients sharing one Redis act as one: limits, server holds, cooldowns, budget; and without it."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, Iterator, List

import pytest

import cometsync
from cometsync.testing import FakeClock, ScriptedTransport, completion_body, json_response

KEY = "sk-shared-secret-0123456789"
MSG = [{"role": "user", "content": "hi"}]


def ok() -> cometsync.Response:
    return json_response(200, completion_body("hi"))


def failure(status: int, retry_after: str = "") -> cometsync.Response:
    headers = {"retry-after": retry_after} if retry_after else {}
    return json_response(status, {"error": {"message": "no", "type": "x", "code": None}}, headers)


def client(url: Any, script: List[Any], clock: FakeClock, **kwargs: Any) -> cometsync.Client:
    """A client on ``url``'s Redis answering from ``script`` (its transport is ``.transport``)."""
    transport = ScriptedTransport(script, clock=clock)
    made = cometsync.Client(
        api_key=KEY, transport=transport, clock=clock, shared_state=url, **kwargs
    )
    made.transport = transport  # type: ignore[attr-defined]
    return made


def call(c: cometsync.Client, model: str = "m", **kwargs: Any) -> Any:
    return c.chat.completions.create(model=model, messages=MSG, **kwargs)


def test_two_clients_share_one_limit(redis_db: Any, patient_url: str) -> None:
    """At 60 rpm, a second client (another process) waits the second the first one used."""
    limit = cometsync.RateLimit(rpm=60)
    a = client(patient_url, [ok()], FakeClock(), rate_limit=limit)
    b = client(patient_url, [ok()], FakeClock(), rate_limit=limit)
    alone = cometsync.Client(
        api_key=KEY, transport=ScriptedTransport([ok()]), clock=FakeClock(), rate_limit=limit
    )
    with a, b, alone:
        call(a)
        call(b)
        call(alone)
        assert b._shared.clock.sleeps == pytest.approx([1.0], abs=1e-5)
        assert alone._shared.clock.sleeps == []  # per process: it knows nothing of a and b


def test_a_429_hold_is_honoured_by_the_other_client(redis_db: Any, patient_url: str) -> None:
    """A Retry-After of 3 s seen by one client sends the other straight to its fallback."""
    a = client(patient_url, [failure(429, "3"), ok()], FakeClock())
    b = client(patient_url, [ok()], FakeClock(), fallback_models=["f"])
    with a, b:
        call(a)
        call(b)
        assert b.transport.models == ["f"]


def test_a_429_hold_makes_a_single_model_client_wait(redis_db: Any, patient_url: str) -> None:
    """Without a fallback, the other client waits the hold out instead of spending a 429."""
    a = client(patient_url, [failure(429, "3"), ok()], FakeClock())
    b = client(patient_url, [ok()], FakeClock())
    with a, b:
        call(a)
        call(b)
        assert sum(b._shared.clock.sleeps) == pytest.approx(3.0, abs=0.02)
        assert b.transport.models == ["m"]


def test_a_breaker_tripped_by_one_client_is_honoured_by_the_other(
    redis_db: Any, patient_url: str
) -> None:
    """Two failures trip the shared breaker; the other client's next request goes to fallback."""
    protections = cometsync.Protections(cooldown=cometsync.Cooldowns(failures=2))
    a = client(
        patient_url,
        [failure(500), failure(500), ok()],
        FakeClock(),
        fallback_models=["f"],
        protections=protections,
        max_retries=1,
    )
    b = client(patient_url, [ok()], FakeClock(), fallback_models=["f"], protections=protections)
    with a, b:
        call(a)
        assert a.transport.models == ["m", "m", "f"]
        call(b)
        assert b.transport.models == ["f"]
        assert b.stats()["cooldowns"] == {}  # b never failed: its local breaker knows nothing


def test_one_probe_at_a_time_across_clients(redis_db: Any, patient_url: str) -> None:
    """After the cooldown, one client probes the model; the other keeps to the fallback."""
    protections = cometsync.Protections(
        cooldown=cometsync.Cooldowns(failures=1, cooldown=5.0), limiter=None
    )
    clock_a, clock_b = FakeClock(), FakeClock()
    a = client(
        patient_url,
        [failure(500), ok(), ok()],
        clock_a,
        fallback_models=["f"],
        protections=protections,
        max_retries=0,
    )
    b = client(patient_url, [ok()], clock_b, fallback_models=["f"], protections=protections)
    with a, b:
        call(a)  # m fails (trips), f answers
        clock_a.advance(5.0)
        clock_b.advance(5.0)
        gate = a._shared.guards.admit("m", clock_a.monotonic())  # a takes the probe
        assert gate is None
        call(b)
        assert b.transport.models == ["f"]


def test_the_retry_budget_is_counted_fleet_wide(redis_db: Any, patient_url: str) -> None:
    """With a floor of 1 retry, the second client's retry is refused: the first spent it."""
    protections = cometsync.Protections(
        budget=cometsync.RetryBudget(ratio=0.0, min_retries=1), cooldown=None
    )
    a = client(patient_url, [failure(500), ok()], FakeClock(), protections=protections)
    b = client(patient_url, [failure(500), ok()], FakeClock(), protections=protections)
    with a, b:
        call(a)
        with pytest.raises(cometsync.InternalServerError):
            call(b)
        assert b.transport.models == ["m"]


def test_keys_are_bounded_hashed_tagged_and_expire(redis_db: Any, patient_url: str) -> None:
    """A long run over 3 models leaves one hash per model plus the budget, all with an expiry."""
    clock = FakeClock()
    script = []
    for i in range(600):
        script.append(failure(500) if i % 7 == 0 else (failure(429, "1") if i % 11 == 0 else ok()))
    script += [ok()] * 600
    c = client(
        patient_url,
        script,
        clock,
        fallback_models=["f2", "f3"],
        rate_limit=cometsync.RateLimit(rpm=600, tpm=100_000),
    )
    with c:
        for i in range(300):
            clock.advance(7.0)  # 35 minutes in all
            call(c, model=["m", "f2", "f3"][i % 3])
    keys = sorted(k.decode() for k in redis_db.keys("*"))
    assert len(keys) == 4, keys
    tags = {k[k.index("{") : k.index("}") + 1] for k in keys}
    assert len(tags) == 1  # one hash tag: one Redis Cluster slot for the key's state
    for k in keys:
        assert 0 < redis_db.pttl(k) <= 200_000
        assert KEY not in k and KEY[-8:] not in k
        dump = repr(redis_db.hgetall(k))
        assert KEY[-8:] not in dump


def test_namespaces_separate_applications(redis_db: Any, patient_url: str) -> None:
    """Two namespaces on one Redis do not share a limit."""
    limit = cometsync.RateLimit(rpm=60)
    a = client(patient_url, [ok()], FakeClock(), rate_limit=limit, shared_namespace="app1")
    b = client(patient_url, [ok()], FakeClock(), rate_limit=limit, shared_namespace="app2")
    with a, b:
        call(a)
        call(b)
        assert b._shared.clock.sleeps == []


def test_a_caller_owned_redis_instance_is_used_and_left_open(
    redis_db: Any, patient_url: str
) -> None:
    """shared_state=redis.Redis(...) works, and close() leaves the caller's connection alone."""
    import redis

    own = redis.Redis.from_url(patient_url, socket_timeout=2, decode_responses=True)
    limit = cometsync.RateLimit(rpm=60)
    a = client(own, [ok()], FakeClock(), rate_limit=limit)
    b = client(own, [ok()], FakeClock(), rate_limit=limit)
    with a, b:
        call(a)
        call(b)
        assert b._shared.clock.sleeps == pytest.approx([1.0], abs=1e-5)
    assert own.ping()
    own.close()


def test_bad_shared_state_is_refused() -> None:
    """A non-URL shared_state and a namespace with braces are ConfigErrors naming them."""
    with pytest.raises(cometsync.ConfigError, match="shared_state"):
        cometsync.Client(api_key=KEY, shared_state="http://x")
    with pytest.raises(cometsync.ConfigError, match="shared_namespace"):
        cometsync.Client(api_key=KEY, shared_state="redis://127.0.0.1:1/0", shared_namespace="{x}")


def test_redis_stopped_mid_run_loses_no_call(
    restartable_redis: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Calls go on through a Redis outage; one WARNING names Redis, one INFO says it is back."""
    url = f"redis://{restartable_redis.host}:{restartable_redis.port}/0"
    clock = FakeClock()
    c = client(url, [ok()] * 30, clock, rate_limit=cometsync.RateLimit(rpm=6000))
    caplog.set_level(logging.INFO, logger="cometsync")
    done = 0
    with c:
        for _ in range(5):
            call(c)
            done += 1
        restartable_redis.stop()
        for _ in range(10):
            clock.advance(0.5)
            call(c)
            done += 1
        assert c.stats()["shared"]["store"]["reachable"] is False
        restartable_redis.start()
        clock.advance(3.0)
        for _ in range(5):
            call(c)
            done += 1
        assert c.stats()["shared"]["store"]["reachable"] is True
    assert done == 20
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Redis" in warnings[0].getMessage()
    assert any("Redis" in r.getMessage() and "back" in r.getMessage() for r in caplog.records)
    assert KEY not in caplog.text and KEY[-6:] not in caplog.text
    failures = c.stats()["shared"]["store"]["failures"]
    assert failures <= 3  # tried again every 3 s of the 5 s outage, not on every call


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A TCP port that accepts connections and never answers (a hung Redis)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: List[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for s in held:
        s.close()
    listener.close()


def test_a_hung_redis_costs_one_short_timeout(
    silent_redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis that never answers costs ~50 ms once, then the circuit skips it for 3 s."""
    c = client(silent_redis, [ok()] * 5, FakeClock(), rate_limit=cometsync.RateLimit(rpm=6000))
    caplog.set_level(logging.WARNING, logger="cometsync")
    with c:
        start = time.perf_counter()
        for _ in range(5):
            call(c)
        elapsed = time.perf_counter() - start
    assert elapsed < 0.5
    assert c.stats()["shared"]["store"]["failures"] == 1
    assert len([r for r in caplog.records if "Redis" in r.getMessage()]) == 1


def _evals(redis_db: Any) -> int:
    stats = redis_db.info("commandstats")
    return sum(stats.get(name, {}).get("calls", 0) for name in ("cmdstat_evalsha", "cmdstat_eval"))


def test_a_successful_call_costs_one_round_trip(redis_db: Any, patient_url: str) -> None:
    """Budget count, breaker, hold, both rates and the last call's settlement: one script."""
    clock = FakeClock()
    c = client(patient_url, [ok()] * 21, clock, rate_limit=cometsync.RateLimit(rpm=6000, tpm=10**6))
    with c:
        call(c)  # loads the script
        before = _evals(redis_db)
        for _ in range(20):
            clock.advance(0.05)
            call(c, max_tokens=50)
        assert _evals(redis_db) - before == 20
