"""The protections: retry budget, adaptive limiter and pacing, model cooldowns (fake clock)."""

from __future__ import annotations

import logging
import threading
from typing import Any, Dict, List, Optional

import pytest

import cometsync
from cometsync import (
    AdaptiveLimiter,
    APITimeoutError,
    ConfigError,
    Cooldowns,
    Exponential,
    ModelCooldownError,
    Protections,
    RetryBudget,
    RetryPolicy,
)
from cometsync._headers import RateLimitInfo
from cometsync._policy import Classification
from cometsync.testing import FakeClock, ScriptedTransport, completion_body, json_response

KEY = "sk-test-SECRET-guards"
MSGS = [{"role": "user", "content": "hi"}]
POLICY = RetryPolicy(backoff=Exponential(base=0.5, cap=8.0))
OK = Classification(ok=True)
OVERLOAD = Classification(ok=False, retry=True, fallback=True, overloaded=True)


def err_body(code: str = "boom") -> Dict[str, Any]:
    return {"error": {"message": code, "type": "comet_api_error", "code": code}}


def ok(model: str = "m1") -> Any:
    return json_response(200, completion_body("fine", model=model))


def fail(status: int = 503, headers: Optional[Dict[str, str]] = None) -> Any:
    return json_response(status, err_body(), headers)


def failure(status: int = 503, retry_after: Optional[float] = None) -> Classification:
    error = (
        cometsync.InternalServerError(f"{status}", status_code=status) if status >= 500 else None
    )
    if status == 429:
        error = cometsync.RateLimitError("429", status_code=429)
    return Classification(
        ok=False,
        retry=True,
        fallback=True,
        error=error,
        retry_after=retry_after,
        overloaded=status in (429, 503),
    )


def guards(protections: Protections, ceiling: int = 4, clock: Optional[FakeClock] = None) -> Any:
    return protections.build(ceiling=ceiling, clock=clock or FakeClock())


def client(script: List[Any], clock: FakeClock, **kwargs: Any) -> cometsync.Client:
    kwargs.setdefault("retry", POLICY)
    return cometsync.Client(api_key=KEY, transport=ScriptedTransport(script), clock=clock, **kwargs)


def create(c: cometsync.Client, **kwargs: Any) -> cometsync.ChatCompletion:
    kwargs.setdefault("model", "m1")
    return c.chat.completions.create(messages=MSGS, **kwargs)


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: RetryBudget(ratio=-0.1),
        lambda: RetryBudget(window=0),
        lambda: AdaptiveLimiter(ceiling=0),
        lambda: AdaptiveLimiter(decrease=1.5),
        lambda: AdaptiveLimiter(min_limit=0),
        lambda: Cooldowns(failures=0),
        lambda: Cooldowns(cooldown=10, max_cooldown=5),
        lambda: Protections(budget=0.1),  # type: ignore[arg-type]
    ],
)
def test_bad_settings_are_refused_with_a_config_error(make: Any) -> None:
    """Every protection setting that cannot work raises ConfigError naming it."""
    with pytest.raises(ConfigError, match=r"RetryBudget|AdaptiveLimiter|Cooldowns|Protections"):
        make()


def test_client_refuses_both_protections_and_guards() -> None:
    """protections= and the low-level guards= exclude each other."""
    with pytest.raises(ConfigError, match="protections= or guards="):
        cometsync.Client(api_key=KEY, protections=Protections(), guards=cometsync.Guards())


def test_protections_off_has_nothing_and_default_has_all_three() -> None:
    """Protections() turns every protection on; Protections.off() none."""
    assert None not in (Protections().budget, Protections().limiter, Protections().cooldown)
    off = Protections.off()
    assert (off.budget, off.limiter, off.cooldown) == (None, None, None)
    c = cometsync.Client(api_key=KEY, transport=ScriptedTransport([]), protections=off)
    assert c.stats() == {"budget": None, "limiter": None, "cooldowns": None}


# -- retry budget -----------------------------------------------------------------------


def test_a_lone_call_on_a_fresh_client_keeps_every_retry_of_its_chain() -> None:
    """With default protections, one failing call gets max_retries on each of three models."""
    clock = FakeClock()
    c = client([fail()] * 9, clock, fallback_models=["m2", "m3"])
    with pytest.raises(cometsync.InternalServerError) as info:
        create(c)
    assert [(a.model, a.attempt) for a in info.value.attempts] == [
        (m, n) for m in ("m1", "m2", "m3") for n in (1, 2, 3)
    ]
    assert c.stats()["budget"]["refused"] == 0


def test_budget_caps_retries_to_a_fraction_of_calls_plus_the_floor() -> None:
    """When many calls fail together, retries stop at ratio * calls + min_retries."""
    clock = FakeClock()
    budget = RetryBudget(ratio=0.1, min_retries=2, window=10.0)
    c = client([fail()] * 200, clock, protections=Protections(budget=budget, cooldown=None))
    reasons: List[str] = []
    for _ in range(30):
        with pytest.raises(cometsync.InternalServerError) as info:
            create(c)
        reasons += [a.reason for a in info.value.attempts]
    retries = sum(1 for r in reasons if r == "")  # a retry decision records no reason
    assert retries <= 0.1 * 30 + 2
    assert "retry budget exhausted" in reasons
    assert c.stats()["budget"]["refused"] > 0


def test_budget_refusal_falls_back_to_the_next_model() -> None:
    """A retry refused by the budget moves the call to the next model, saying why."""
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, min_retries=0)
    c = client([fail(), ok("m2")], clock, protections=Protections(budget=budget, cooldown=None))
    r = create(c, fallback_models=["m2"])
    first = r.attempts[0]
    assert (first.decision, first.reason) == ("fallback", "retry budget exhausted")
    assert r.attempts[1].model == "m2"


def test_budget_forgets_retries_older_than_its_window() -> None:
    """Once the window has passed, the floor is available again."""
    clock = FakeClock()
    g = guards(Protections(budget=RetryBudget(ratio=0.0, min_retries=2, window=10.0)), clock=clock)
    now = clock.monotonic()
    assert [g.allow_retry("m", now) for _ in range(3)] == [True, True, False]
    assert g.allow_retry("m", now + 10.5)


# -- adaptive limiter --------------------------------------------------------------------


def test_limiter_cuts_only_when_overload_repeats_and_grows_back() -> None:
    """One 429 changes nothing; two in a row cut the limit; successes restore the ceiling."""
    g = guards(Protections(limiter=AdaptiveLimiter(decrease=0.5, decrease_every=0.0)), ceiling=8)
    g.observe("m", OVERLOAD, 1.0)
    assert g.stats()["limiter"]["m"]["limit"] == 8
    g.observe("m", OVERLOAD, 1.1)
    assert g.stats()["limiter"]["m"]["limit"] == 4
    g.observe("m", OVERLOAD, 1.2)
    g.observe("m", OVERLOAD, 1.3)
    g.observe("m", OVERLOAD, 1.4)
    assert g.stats()["limiter"]["m"]["limit"] == 1  # never below min_limit
    for i in range(200):
        g.observe("m", OK, 2.0 + i)
    assert g.stats()["limiter"]["m"]["limit"] == 8  # never above the ceiling


def test_limiter_cuts_once_per_congestion_event() -> None:
    """Overload answers within decrease_every of a cut do not cut again."""
    g = guards(Protections(limiter=AdaptiveLimiter(decrease=0.5, decrease_every=1.0)), ceiling=8)
    for t in (1.0, 1.1, 1.2, 1.3, 1.4):
        g.observe("m", OVERLOAD, t)
    assert g.stats()["limiter"]["m"]["limit"] == 4


def test_limiter_logs_its_changes(caplog: pytest.LogCaptureFixture) -> None:
    """A cut is logged at INFO on the cometsync logger with the old and new limit."""
    g = guards(Protections(limiter=AdaptiveLimiter(decrease=0.5)), ceiling=8)
    with caplog.at_level(logging.INFO, logger="cometsync"):
        g.observe("m", OVERLOAD, 1.0)
        g.observe("m", OVERLOAD, 1.1)
    assert any("adaptive limit model=m 8 -> 4" in r.getMessage() for r in caplog.records)


def test_try_acquire_bounds_in_flight_per_model() -> None:
    """try_acquire grants up to the limit per model, then refuses until a release."""
    g = guards(Protections(limiter=AdaptiveLimiter()), ceiling=2)
    assert [g.try_acquire("a", 0.0) for _ in range(3)] == [True, True, False]
    assert g.acquire_in("a", 0.0) is None  # waiting on a release, not on time
    assert g.try_acquire("b", 0.0)  # per model
    g.release("a", 0.0)
    assert g.try_acquire("a", 0.0)


def test_threads_never_exceed_the_limit() -> None:
    """Under many threads, slot() never lets more than the limit through at once."""
    clock = FakeClock()
    g = guards(Protections(limiter=AdaptiveLimiter()), ceiling=3, clock=clock)
    lock = threading.Lock()
    inside = [0, 0]  # now, peak

    def work() -> None:
        for _ in range(50):
            with g.slot("m", None):
                with lock:
                    inside[0] += 1
                    inside[1] = max(inside[1], inside[0])
                with lock:
                    inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inside[0] == 0 and 1 <= inside[1] <= 3
    assert g.stats()["limiter"]["m"]["in_flight"] == 0


def test_slot_gives_up_after_its_timeout_without_sending() -> None:
    """A slot that cannot be had within the timeout raises APITimeoutError naming the model."""
    clock = FakeClock()
    g = guards(Protections(limiter=AdaptiveLimiter()), ceiling=1, clock=clock)
    assert g.try_acquire("m", clock.monotonic())
    with pytest.raises(APITimeoutError, match="no request slot for model m"), g.slot("m", 0.0):
        pytest.fail("the body must not run")


def test_retry_after_holds_every_thread_of_the_model() -> None:
    """After a 429 with Retry-After, no request for that model leaves before it has passed."""
    clock = FakeClock()
    g = guards(Protections(limiter=AdaptiveLimiter()), clock=clock)
    now = clock.monotonic()
    g.observe("m", failure(429, retry_after=0.5), now)
    assert not g.try_acquire("m", now + 0.4)
    assert g.acquire_in("m", now + 0.4) == pytest.approx(0.1)
    with g.slot("m", 5.0):  # waits on the injected clock, not for real
        assert clock.monotonic() >= now + 0.5
    assert g.try_acquire("other", now)


def test_rate_headers_pace_requests_once_the_quota_is_spent() -> None:
    """When remaining requests fall to what is in flight, departures are spaced per refill."""
    g = guards(Protections(limiter=AdaptiveLimiter()), ceiling=8)
    spent = Classification(ok=True, rate_limit=RateLimitInfo(limit=300, remaining=0, reset=60.0))
    g.observe("m", spent, 10.0)
    assert g.try_acquire("m", 10.0)
    assert not g.try_acquire("m", 10.1)
    assert g.try_acquire("m", 10.2)
    roomy = Classification(ok=True, rate_limit=RateLimitInfo(limit=300, remaining=200, reset=20.0))
    g.observe("m", roomy, 10.3)
    assert g.try_acquire("m", 10.4)
    assert g.try_acquire("m", 10.4)  # no pacing while the quota covers what is in flight


def test_a_long_server_hold_skips_the_model() -> None:
    """A model held by a Retry-After longer than skip_after sends calls to the next model."""
    clock = FakeClock()
    script = [fail(429, {"retry-after": "30"}), ok("m2"), ok("m2")]
    c = client(script, clock, fallback_models=["m2"], retry=RetryPolicy(max_retries=0))
    create(c)  # m1 answers 429 "come back in 30 s"; this call falls back to m2
    r = create(c)
    assert [a.model for a in r.attempts] == ["m2"]


# -- cooldowns ---------------------------------------------------------------------------


def test_cooldown_trips_after_repeated_failures_and_calls_go_to_the_next_model() -> None:
    """After five failures in a row the model is skipped: nothing is sent to it."""
    clock = FakeClock()
    protections = Protections(budget=None, limiter=None, cooldown=Cooldowns(failures=5))
    script = [fail()] * 5 + [ok("m2")] * 3
    c = client(script, clock, protections=protections, retry=RetryPolicy(max_retries=4))
    r = create(c, fallback_models=["m2"])
    assert [a.model for a in r.attempts] == ["m1"] * 5 + ["m2"]
    r = create(c, fallback_models=["m2"])
    assert [a.model for a in r.attempts] == ["m2"]
    assert c.stats()["cooldowns"]["m1"]["state"] == "open"


def test_rate_limits_do_not_trip_the_breaker() -> None:
    """429s are the limiter's business: they never open a cooldown."""
    g = guards(Protections(cooldown=Cooldowns(failures=2)))
    for t in range(5):
        g.observe("m", failure(429), float(t))
    assert g.admit("m", 10.0) is None


def test_cooldown_lasts_at_least_the_longest_retry_after() -> None:
    """A cooldown never ends before the longest Retry-After of the failure streak."""
    g = guards(Protections(limiter=None, cooldown=Cooldowns(failures=2, cooldown=5.0)))
    g.observe("m", failure(503, retry_after=42.0), 100.0)
    g.observe("m", failure(503), 101.0)
    assert g.admit("m", 141.9) is not None
    assert g.admit("m", 142.1) is None


def test_cooldown_probes_with_one_call_then_trusts_or_backs_off() -> None:
    """With max_cooldown set, a failed probe doubles the cooldown; a success closes."""
    cooldown = Cooldowns(failures=1, cooldown=5.0, max_cooldown=60.0)
    g = guards(Protections(limiter=None, cooldown=cooldown))
    g.observe("m", failure(503), 0.0)
    assert g.admit("m", 4.0) is not None
    assert g.admit("m", 5.0) is None  # the probe
    assert g.admit("m", 5.0) == "cooled down; another call is probing it"
    g.observe("m", failure(503), 6.0)  # the probe failed
    assert g.admit("m", 15.9) is not None
    assert g.admit("m", 16.0) is None  # 10 s later: doubled
    g.observe("m", OK, 16.5)
    assert g.admit("m", 16.5) is None and g.admit("m", 16.5) is None
    assert g.stats()["cooldowns"] == {}


def test_a_lost_probe_is_replaced_after_probe_timeout() -> None:
    """A probe that never reports does not keep the model out forever."""
    g = guards(Protections(cooldown=Cooldowns(failures=1, cooldown=1.0, probe_timeout=3.0)))
    g.observe("m", failure(503), 0.0)
    assert g.admit("m", 1.0) is None
    assert g.admit("m", 3.9) is not None
    assert g.admit("m", 4.1) is None


def test_every_model_cooling_down_means_waiting_for_the_first_back() -> None:
    """With the whole chain cooling, the call sleeps until one model is back, then probes it."""
    clock = FakeClock()
    cd = Cooldowns(failures=1, cooldown=5.0)
    c = client([fail(), fail(), ok("m1")], clock, protections=Protections(cooldown=cd))
    c = c.with_options(max_retries=0, fallback_models=["m2"])
    with pytest.raises(cometsync.InternalServerError):
        create(c)  # m1 and m2 both trip
    start = clock.monotonic()
    r = create(c)
    assert [a.model for a in r.attempts] == ["m1"]
    assert clock.monotonic() - start == pytest.approx(5.0)


def test_a_cooldown_longer_than_max_retry_after_fails_fast_with_nothing_sent() -> None:
    """When the first model back is further off than max_retry_after, ModelCooldownError."""
    clock = FakeClock()
    cd = Cooldowns(failures=1, cooldown=5.0)
    policy = RetryPolicy(max_retries=0, max_retry_after=2.0)
    c = client([fail()], clock, protections=Protections(cooldown=cd), retry=policy)
    with pytest.raises(cometsync.InternalServerError):
        create(c)
    with pytest.raises(ModelCooldownError, match="m1: cooling down") as info:
        create(c)
    assert info.value.attempts == ()
    assert clock.sleeps == []


# -- pure helpers ------------------------------------------------------------------------


def test_budget_floor_defaults_to_one_retry_per_worker() -> None:
    """A pool of 16 whose first burst all fails may retry each call once; 10 is the least floor."""
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, window=10.0)
    big = guards(Protections(budget=budget, limiter=None, cooldown=None), ceiling=16, clock=clock)
    assert sum(big.allow_retry("m1", clock.monotonic()) for _ in range(20)) == 16
    small = guards(Protections(budget=budget, limiter=None, cooldown=None), ceiling=4, clock=clock)
    assert sum(small.allow_retry("m1", clock.monotonic()) for _ in range(20)) == 10
    fixed = RetryBudget(ratio=0.0, min_retries=3)
    g = guards(Protections(budget=fixed, limiter=None, cooldown=None), ceiling=16, clock=clock)
    assert sum(g.allow_retry("m1", clock.monotonic()) for _ in range(20)) == 3
