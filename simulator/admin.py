"""The admin routes under ``/_sim/``: journal, stats, health, scenario, reset.

Not journaled and open without an API key: they are the test's window on the simulator.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Protocol
from urllib.parse import parse_qs

from . import wire
from .replies import JSON, Reply
from .scenario import Scenario, ScenarioError, ScenarioLike, parse_scenario

__all__ = ["ADMIN_MAX_BODY", "handle_admin"]

#: The admin API's own body limit, independent of the scenario's ``max_body_bytes`` (which
#: limits the simulated API): a scenario that sets it to 10 can still be replaced.
ADMIN_MAX_BODY = 1 << 20

_GETS = frozenset({"/_sim/journal", "/_sim/stats", "/_sim/health", "/_sim/scenario"})
_POSTS = frozenset({"/_sim/scenario", "/_sim/reset"})


class Simulated(Protocol):
    """What the admin routes read and change (:class:`simulator.Core`)."""

    @property
    def scenario(self) -> Scenario: ...

    @property
    def seed(self) -> int: ...

    def journal(self, since: int = 0) -> List[Dict[str, Any]]: ...

    def stats(self) -> Dict[str, Any]: ...

    def uptime(self, now: float) -> float: ...

    def reset(self, now: float) -> None: ...

    def set_scenario(self, scenario: ScenarioLike, now: float) -> None: ...


def _summary(sim: Simulated) -> Dict[str, Any]:
    """The scenario's summary with the seed in force, as ``/_sim/scenario`` reports it."""
    return {**sim.scenario.to_summary(), "seed": sim.seed}


def _error(status: int, message: str, code: str, param: Optional[str] = None) -> Reply:
    """An admin error in the gateway's envelope (no request id: admin calls are not counted)."""
    payload = {"error": {"message": message, "type": wire.ERROR_TYPE, "param": param, "code": code}}
    return Reply(status, payload, headers={"content-type": JSON}, cause="admin")


def handle_admin(
    sim: Simulated,
    method: str,
    route: str,
    query: str,
    body: bytes,
    now: float,
    *,
    body_length: Optional[int] = None,
) -> Reply:
    """Answer one ``/_sim/`` request; ``body_length``: a declared body left unread (too big)."""
    hdrs = {"content-type": JSON}
    if route not in _GETS | _POSTS:
        return _error(404, f"no admin route {route}", "not_found")
    length = len(body) if body_length is None else body_length
    if length > ADMIN_MAX_BODY:
        message = (
            f"admin request body is {length} bytes; the admin API takes at most {ADMIN_MAX_BODY}"
        )
        return _error(413, message, "request_too_large")
    if method == "GET" and route in _GETS:
        if route == "/_sim/journal":
            try:
                since = int(parse_qs(query).get("since", ["0"])[0])
            except ValueError:
                return _error(400, "since must be an integer", "invalid_request")
            return Reply(200, sim.journal(since), headers=hdrs, cause="admin")
        if route == "/_sim/stats":
            return Reply(200, sim.stats(), headers=hdrs, cause="admin")
        if route == "/_sim/scenario":
            return Reply(200, _summary(sim), headers=hdrs, cause="admin")
        health = {"status": "ok", "uptime": round(sim.uptime(now), 3), "seed": sim.seed}
        return Reply(200, health, headers=hdrs, cause="admin")
    if method == "POST" and route in _POSTS:
        if route == "/_sim/reset":
            sim.reset(now)
            return Reply(200, {"ok": True}, headers=hdrs, cause="admin")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            return _error(400, f"scenario is not valid JSON: {exc}", "invalid_json")
        try:
            sim.set_scenario(parse_scenario(data), now)
        except ScenarioError as exc:
            return _error(400, str(exc), "invalid_scenario", exc.path or None)
        return Reply(200, {"ok": True, **_summary(sim)}, headers=hdrs)
    allowed = "GET" if route in _GETS and route not in _POSTS else "POST"
    if route == "/_sim/scenario":
        allowed = "GET, POST"
    reply = _error(405, f"method not allowed on {route}", "method_not_allowed")
    reply.headers["allow"] = allowed
    return reply
