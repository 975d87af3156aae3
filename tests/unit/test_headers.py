"""Pure header readings: Retry-After (seconds, milliseconds, dates), rate-limit headers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Dict

import pytest
from freezegun import freeze_time

from cometsync._headers import RateLimitInfo, parse_duration, parse_rate_limit, parse_retry_after


def test_retry_after_ms_wins_over_seconds() -> None:
    """retry-after-ms is the more precise header and is read first."""
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}, 0) == 1.5


def test_retry_after_seconds_may_be_fractional() -> None:
    """retry-after as (fractional) seconds."""
    assert parse_retry_after({"retry-after": "2.5"}, 0) == 2.5


@freeze_time("2026-11-22 10:00:00", tz_offset=0)
def test_retry_after_http_date_is_relative_to_the_wall_clock() -> None:
    """An HTTP date means 'until then', measured against the current wall time."""
    import time

    when = datetime(2026, 11, 22, 10, 0, 30, tzinfo=timezone.utc)
    assert (
        parse_retry_after({"retry-after": format_datetime(when, usegmt=True)}, time.time()) == 30.0
    )
    past = when - timedelta(hours=1)
    assert (
        parse_retry_after({"retry-after": format_datetime(past, usegmt=True)}, time.time()) == 0.0
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"retry-after": "soon"},
        {"retry-after": "nan"},
        {"retry-after-ms": "inf", "retry-after": "x"},
    ],
)
def test_missing_or_garbage_retry_after_is_none(headers: Dict[str, str]) -> None:
    """Unparseable values are ignored rather than crashing or waiting forever."""
    assert parse_retry_after(headers, 0) is None


def test_negative_retry_after_means_no_wait() -> None:
    """A negative wait is clamped to zero."""
    assert parse_retry_after({"retry-after": "-3"}, 0) == 0.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("120ms", 0.12), ("1s", 1.0), ("1.5s", 1.5), ("6m0s", 360.0), ("1h2m", 3720.0), ("7", 7.0)],
)
def test_parse_duration_reads_the_rate_limit_reset_formats(text: str, seconds: float) -> None:
    """Durations as x-ratelimit-reset-* write them become seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "1x", "-3", "5s later"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    """Anything but a duration gives None."""
    assert parse_duration(text) is None


def test_parse_rate_limit_needs_all_three_headers() -> None:
    """Limit, remaining and reset give RateLimitInfo; a missing or bad one gives None."""
    headers = {
        "x-ratelimit-limit-requests": "300",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1m0s",
    }
    info = parse_rate_limit(headers)
    assert info == RateLimitInfo(limit=300, remaining=0, reset=60.0)
    assert info is not None and info.seconds_per_request == pytest.approx(0.2)
    assert parse_rate_limit({**headers, "x-ratelimit-remaining-requests": "x"}) is None
    assert parse_rate_limit({"x-ratelimit-limit-requests": "300"}) is None
