"""The /_sim/ admin routes, through Core.handle."""

from __future__ import annotations

import json
from typing import Optional

import pytest

from simulator import Core

from .sim_helpers import chat


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
