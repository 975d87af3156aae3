"""The journal and stats: every request recorded, keys redacted."""

from __future__ import annotations

import json
from typing import Optional

import pytest

from simulator import Core, redact

from .sim_helpers import AUTH, KEY, chat


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
