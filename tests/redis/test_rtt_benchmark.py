"""The redis_rtt benchmark runs and reports every measurement."""

from __future__ import annotations

from typing import Any

from benchmarks import redis_rtt


def test_redis_rtt_reports_scripts_and_calls(redis_db: Any, redis_url: str) -> None:
    """Each script and both call variants get a positive median and a p99 at least as large."""
    rows = redis_rtt.measure(redis_url, 30)
    names = [r["what"] for r in rows]
    assert names[:4] == [
        "admit (a call's one trip)",
        "admit (pacing a retry)",
        "observe (failure)",
        "budget (a retry)",
    ]
    assert names[-1] == "Redis adds per call"
    for row in rows[:-1]:
        assert 0 < row["median_us"] <= row["p99_us"]
