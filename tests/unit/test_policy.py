"""Pure policy: classification of every outcome, and decisions (Retry-After: test_headers)."""

from __future__ import annotations

import random
from typing import Any, Dict, Optional

import pytest

import cometsync
from cometsync import APIConnectionError, APITimeoutError, Exponential, RetryPolicy
from cometsync._policy import Classification, classify, decide
from cometsync.testing import json_response


def err(code: Optional[str] = None, message: str = "boom") -> Dict[str, Any]:
    return {"error": {"message": message, "type": "comet_api_error", "param": None, "code": code}}


def cls(status: int, body: Any = None, headers: Optional[Dict[str, str]] = None) -> Classification:
    return classify(json_response(status, body, headers), RetryPolicy(), model="m1", now=0.0)


@pytest.mark.parametrize("status", [400, 401, 403, 422])
def test_malformed_or_unauthorised_requests_neither_retry_nor_fall_back(status: int) -> None:
    """400/401/403/422 must surface at once: no retry or fallback may hide them."""
    v = cls(status, err())
    assert (v.retry, v.fallback) == (False, False)
    assert isinstance(v.error, cometsync.APIStatusError) and v.error.status_code == status


def test_500_invalid_request_is_not_retried() -> None:
    """CometAPI's 500 with code invalid_request is a malformed request in disguise."""
    v = cls(500, err("invalid_request"))
    assert (v.retry, v.fallback) == (False, False)
    assert isinstance(v.error, cometsync.InternalServerError)
    assert v.error.code == "invalid_request"


def test_json_404_falls_back_without_retrying() -> None:
    """An unknown model (JSON 404) cannot improve by waiting, but another model may exist."""
    v = cls(404, err("model_not_found"))
    assert (v.retry, v.fallback) == (False, True)
    assert isinstance(v.error, cometsync.NotFoundError)


@pytest.mark.parametrize(
    ("status", "body"),
    [(404, "<html><body>Not Found</body></html>"), (301, ""), (302, "moved")],
)
def test_html_404_and_redirects_raise_with_a_base_url_hint(status: int, body: str) -> None:
    """A non-JSON 404 or a redirect means a wrong base_url: raise with advice, no fallback."""
    v = cls(status, body, {"location": "https://elsewhere/"} if status != 404 else None)
    assert (v.retry, v.fallback) == (False, False)
    assert v.error is not None and "base_url" in str(v.error)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 524, 599])
def test_transient_statuses_retry_then_fall_back(status: int) -> None:
    """408, 409, 429 and every 5xx are retried on the same model, then the chain moves on."""
    v = cls(status, err())
    assert (v.retry, v.fallback) == (True, True)


def test_429_carries_retry_after_and_the_rate_limit_class() -> None:
    """A 429's Retry-After is parsed and stored on the RateLimitError."""
    v = cls(429, err("rate_limit_exceeded"), {"Retry-After": "3"})
    assert v.retry_after == 3.0
    assert isinstance(v.error, cometsync.RateLimitError) and v.error.retry_after == 3.0
    assert v.overloaded


def test_quota_exhausted_429_is_not_retried() -> None:
    """insufficient_quota will not clear by waiting: raise instead of hammering."""
    v = cls(429, err("insufficient_quota"))
    assert (v.retry, v.fallback) == (False, False)


@pytest.mark.parametrize(
    ("status", "header", "retry"),
    [(400, "true", True), (503, "false", False), (503, "TRUE", True)],
)
def test_x_should_retry_overrides_same_model_retries_only(
    status: int, header: str, retry: bool
) -> None:
    """x-should-retry decides same-model retries; the fallback column is unchanged."""
    baseline = cls(status, err())
    v = cls(status, err(), {"x-should-retry": header})
    assert v.retry is retry
    assert v.fallback is baseline.fallback


def test_connection_errors_retry_and_fall_back() -> None:
    """A connection error or timeout is transient: retry, then the next model."""
    for error in (APIConnectionError("reset"), APITimeoutError("slow")):
        v = classify(error, RetryPolicy(), model="m1", now=0)
        assert (v.retry, v.fallback) == (True, True)
        assert v.error is error


def test_error_fields_come_from_the_envelope_and_headers() -> None:
    """code, request_id and body are exposed as openai-python users expect."""
    body = err("rate_limit_exceeded", "slow down (request id: 20261122ABC)")
    v = cls(429, body)
    assert v.error is not None
    e = v.error
    assert isinstance(e, cometsync.APIStatusError)
    # openai-python's meaning: the "error" object, not the whole envelope.
    assert (e.code, e.request_id, e.body) == ("rate_limit_exceeded", "20261122ABC", body["error"])
    v2 = cls(500, err(), {"X-Request-Id": "hdr-1"})
    assert isinstance(v2.error, cometsync.APIStatusError) and v2.error.request_id == "hdr-1"


def test_2xx_is_ok() -> None:
    """Any 2xx is a success as far as the status goes (the body is checked by the flow)."""
    assert cls(200, {}).ok and cls(201, {}).ok


def retryable(retry_after: Optional[float] = None) -> Classification:
    return Classification(ok=False, retry=True, fallback=True, retry_after=retry_after)


def test_decide_takes_the_longer_of_backoff_and_retry_after() -> None:
    """The server's wait wins when longer than the backoff, and vice versa."""
    policy = RetryPolicy(backoff=Exponential(base=2.0, cap=8.0))
    assert decide(retryable(5.0), 1, policy).delay == 5.0
    assert decide(retryable(0.5), 1, policy).delay == 2.0


def test_decide_moves_on_when_the_server_wait_exceeds_the_limit() -> None:
    """A Retry-After above max_retry_after is not slept: next model at once."""
    step = decide(retryable(90.0), 1, RetryPolicy(max_retry_after=60))
    assert step.decision == "fallback" and "max_retry_after" in step.reason
    last = decide(retryable(90.0), 1, RetryPolicy(max_retry_after=60), has_next_model=False)
    assert last.decision == "raise"


def test_decide_stops_retrying_after_max_retries() -> None:
    """Attempt max_retries+1 on a model is its last."""
    policy = RetryPolicy(max_retries=2)
    assert decide(retryable(), 2, policy).decision == "retry"
    assert decide(retryable(), 3, policy).decision == "fallback"


def test_decide_never_sleeps_past_the_deadline() -> None:
    """A wait longer than the time left is replaced by moving on."""
    policy = RetryPolicy(backoff=Exponential(base=1.0, cap=1.0))
    assert decide(retryable(), 1, policy, time_left=0.5).decision == "fallback"
    assert decide(retryable(), 1, policy, time_left=5.0).decision == "retry"


def test_decide_passes_the_previous_delay_to_decorrelated_jitter() -> None:
    """Decorrelated jitter sees the last delay, so it can grow from it."""
    policy = RetryPolicy(
        backoff=cometsync.DecorrelatedJitter(base=1.0, cap=100.0, rng=random.Random(1))
    )
    delays = [decide(retryable(), 1, policy, previous_delay=30.0).delay for _ in range(50)]
    assert max(d for d in delays if d is not None) > 3.0  # impossible without the previous delay


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"max_retries": True},
        {"backoff": 3},
        {"max_retry_after": -1},
    ],
)
def test_bad_policy_settings_raise_config_error(kwargs: Dict[str, Any]) -> None:
    """RetryPolicy validates its fields and names the problem."""
    with pytest.raises(cometsync.ConfigError, match="RetryPolicy"):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    "body",
    [
        err(None, "Invalid URL (POST /chat/completions)"),
        {"error": {"message": "no route", "code": "unknown_url"}},
        {"error": "not found"},
    ],
)
def test_json_404_that_names_no_model_is_a_wrong_url(body: Dict[str, Any]) -> None:
    """OpenAI answers a wrong path with a JSON 404 too: only one naming a model falls back."""
    v = cls(404, body)
    assert (v.retry, v.fallback) == (False, False)
    assert v.error is not None and "base_url" in str(v.error)


@pytest.mark.parametrize(
    "body",
    [err("model_not_found"), err(None, "The model `x` does not exist"), {"error": "model gone"}],
)
def test_json_404_naming_the_model_falls_back(body: Dict[str, Any]) -> None:
    """A code or message about the model means another model of the chain may answer."""
    assert cls(404, body).fallback


def test_invalid_url_404_mentioning_a_models_path_is_still_a_wrong_url() -> None:
    """ "Invalid URL (GET /models)" contains "model" but names a path: raise with the hint."""
    v = cls(404, err(None, "Invalid URL (GET /models)"))
    assert (v.retry, v.fallback) == (False, False)
    assert v.error is not None and "base_url" in str(v.error)
