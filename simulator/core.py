"""The fault model: one request in, one planned reply out, as a function of the state and ``now``.

Three drivers share this core: the socket server, the in-process ``requests`` adapter and the
virtual-time engine. The core never reads a clock and never sleeps; the driver passes ``now``
(seconds on its own monotonic clock) and carries out the plan: wait ``reply.latency``, send
``reply.status``/``headers``/``body`` (or the timed ``reply.events`` of a stream), then end as
``reply.end`` says, and call :meth:`Core.finish` when the reply is delivered or abandoned.

Every random draw comes from one ``random.Random`` owned by the core, re-seeded on reset, so a
fresh simulator given the same seed and the same requests plans the same replies.
"""

from __future__ import annotations

import random
import threading
from typing import Any, Dict, List, Mapping, Optional

from . import plan, replies, routes
from .admin import handle_admin
from .auth import bearer, redact
from .journal import Journal, as_dicts, summarize
from .ratelimit import RateLimiter
from .replies import END_KINDS, Reply
from .scenario import ModelSpec, Scenario, ScenarioLike, load_scenario

__all__ = ["END_KINDS", "TAG_HEADER", "Core", "Reply", "redact"]

#: A request header whose value (100 characters at most) the journal keeps as ``tag``: a test
#: labels each input with it to find all of that input's attempts in the journal.
TAG_HEADER = "x-sim-tag"


class Core:
    """The simulated gateway's state and decisions. Thread-safe; no clock, no I/O.

    A thin coordinator: :mod:`~simulator.routes` answers or accepts a request (auth, checks,
    the route's own work), then the :mod:`~simulator.ratelimit`, the :mod:`~simulator.plan`
    and :mod:`~simulator.replies` decide an accepted one; every reply goes to the
    :mod:`~simulator.journal`.

    Args:
        scenario: a Scenario, a dict, a preset name, a file path, or None (``healthy``).
        seed: overrides the scenario's seed (None: the scenario's, else 0).
        api_key: when set, the only bearer key accepted on ``/v1``.
        journal_limit: the newest records kept (stats count every request regardless).
    """

    def __init__(
        self,
        scenario: ScenarioLike = None,
        seed: Optional[int] = None,
        *,
        api_key: Optional[str] = None,
        journal_limit: int = 100_000,
    ) -> None:
        self._lock = threading.Lock()
        self._seed_override = seed
        self._api_key = api_key
        self._journal = Journal(journal_limit)
        self._scenario = load_scenario(scenario)
        self._rng = random.Random()
        self._models: Dict[str, ModelSpec] = {}
        self._script_pos: Dict[str, int] = {}
        self._model_inflight: Dict[str, int] = {}
        self._limiter = RateLimiter()
        self._seq = 0
        self._t0 = 0.0
        self._origin_set = False
        self._install(self._scenario)

    # -- state ----------------------------------------------------------------------------

    @property
    def scenario(self) -> Scenario:
        """The scenario in force."""
        return self._scenario

    @property
    def seed(self) -> int:
        """The seed in force: the override, else the scenario's, else 0."""
        if self._seed_override is not None:
            return self._seed_override
        return self._scenario.seed if self._scenario.seed is not None else 0

    def _install(self, scenario: Scenario) -> None:
        self._scenario = scenario
        self._models = dict(scenario.models)
        self._clear()

    def _clear(self) -> None:
        self._rng.seed(self.seed)
        self._script_pos = dict.fromkeys(self._models, 0)
        self._model_inflight = dict.fromkeys(self._models, 0)
        self._limiter.clear()
        self._journal.clear()
        self._seq = 0
        self._origin_set = False

    def reset(self, now: float) -> None:
        """Clear the journal, buckets, script positions and stats; re-seed; restart time at ``now``.

        Requests still in flight finish harmlessly: their accounting belongs to the old state.
        """
        with self._lock:
            self._clear()
            self._t0, self._origin_set = now, True

    def set_scenario(self, scenario: ScenarioLike, now: float) -> None:
        """Replace the scenario and reset, so the new timeline (outages) starts at ``now``."""
        parsed = load_scenario(scenario)
        with self._lock:
            self._install(parsed)
            self._t0, self._origin_set = now, True

    def _elapsed(self, now: float) -> float:
        if not self._origin_set:
            # The first request of a fresh core fixes the origin, unless the driver reset it.
            self._t0, self._origin_set = now, True
        return now - self._t0

    def set_origin(self, now: float) -> None:
        """Declare ``now`` as time zero of a fresh core (drivers call it when they start)."""
        with self._lock:
            self._t0, self._origin_set = now, True

    def in_flight(self, model: Optional[str] = None) -> int:
        """Requests handled but not finished, for one model or in total."""
        with self._lock:
            if model is not None:
                return self._model_inflight.get(model, 0)
            return sum(self._model_inflight.values())

    def journal(self, since: int = 0) -> List[Dict[str, Any]]:
        """The journal records with ``seq > since``, oldest first."""
        with self._lock:
            rows = self._journal.rows(since)
        return as_dicts(rows)

    def stats(self) -> Dict[str, Any]:
        """Counts of requests by model and status, by cause and by fault."""
        with self._lock:
            items = self._journal.counts()
            total = self._seq
        return summarize(items, total)

    def uptime(self, now: float) -> float:
        """Seconds since time zero (0.0 before the first request or reset)."""
        with self._lock:
            return now - self._t0 if self._origin_set else 0.0

    # -- the request path -----------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        now: float,
        *,
        request: Any = None,
        body_length: Optional[int] = None,
    ) -> Reply:
        """Plan the answer to one request and count it in flight until :meth:`finish`.

        Args:
            method: the HTTP method, upper case.
            path: the request target, with its query string.
            headers: request headers with lower-case names.
            body: the request body (``b""`` when the driver did not read it).
            now: seconds on the driver's monotonic clock.
            request: the already-decoded JSON body; in-process drivers pass it to skip decoding.
            body_length: the declared length when the driver did not read an oversized body.
        """
        reply = self._handle(method, path, headers, body, now, request, body_length)
        tag = headers.get(TAG_HEADER)
        if tag is not None and reply._record is not None:
            with self._lock:  # a label for the journal: which caller's input this was
                reply._record.append(tag[:100])
        return reply

    def _handle(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        now: float,
        request: Any,
        body_length: Optional[int],
    ) -> Reply:
        route, _, query = path.partition("?")
        if route.startswith("/_sim/"):
            return handle_admin(self, method, route, query, body, now, body_length=body_length)
        key = bearer(headers)
        length = body_length if body_length is not None else len(body)
        with self._lock:
            self._elapsed(now)
            self._seq += 1
            seq = self._seq
        outcome = routes.route(
            method,
            route,
            query,
            body,
            request,
            length,
            key,
            self._api_key,
            self._scenario,
            self._models,
            self.seed,
            seq,
        )
        with self._lock:
            if isinstance(outcome, routes.Answer):
                reply, model, stream = outcome.reply, outcome.model, outcome.stream
                cause, prefill = outcome.cause, outcome.prefill
                self._journal_locked(reply, seq, now, key, model, route, stream, cause, prefill)
                return reply
            return self._plan_locked(seq, now, key or "", route, outcome)

    def finish(self, reply: Reply, now: float, *, delivered: bool = True) -> None:
        """End a reply's time in flight; ``delivered=False`` marks it unanswered in the journal.

        Idempotent: drivers may call it from several exit paths.
        """
        del now  # the planned end is already known; kept for drivers and future accounting
        with self._lock:
            if reply._done:
                return
            reply._done = True
            model = reply.model
            if model is not None and model in self._model_inflight:
                self._model_inflight[model] = max(0, self._model_inflight[model] - 1)
            if reply._inflight_key is not None:
                self._limiter.release(reply._inflight_key, reply.seq)
            if not delivered:
                self._journal.undelivered(reply)

    # -- helpers --------------------------------------------------------------------------

    def _journal_locked(
        self,
        reply: Reply,
        seq: int,
        now: float,
        key: Optional[str],
        model: Optional[str],
        route: str,
        stream: bool,
        cause: str,
        prefill: bool = False,
    ) -> None:
        self._journal.record(reply, seq, now - self._t0, key, model, route, stream, cause, prefill)

    def _plan_locked(
        self, seq: int, now: float, key: str, route: str, accepted: routes.Accepted
    ) -> Reply:
        """The decisions, in a fixed order: limiter, script, outage, load, faults, latency."""
        spec, stream, prefill = accepted.spec, accepted.stream, accepted.prefill
        limits = self._scenario.rate_limits
        rl_headers: Dict[str, str] = {}
        limited = self._limiter.admit(limits, key, now, accepted.cost, rl_headers)
        if limited is not None:
            wait, which = limited
            reply = replies.rate_limited(self.seed, seq, wait, which, rl_headers)
            reply.model = spec.id
            self._journal_locked(
                reply, seq, now, key, spec.id, route, stream, "rate_limit", prefill
            )
            return reply
        inflight = self._model_inflight[spec.id] + 1
        decided = plan.decide(
            spec, now - self._t0, self._script_pos[spec.id], inflight, stream, self._rng
        )
        if decided.cause == "script":
            self._script_pos[spec.id] += 1
        reply = accepted.build(decided.step)
        reply.headers.update(rl_headers)
        reply.latency = decided.latency
        if reply.chunks is not None and reply.status == 200:
            reply.chunks = plan.pace(reply.chunks, spec, decided.slow, self._rng, decided.first)
        reply.model = spec.id
        reply._done = False
        self._model_inflight[spec.id] = inflight
        if self._limiter.hold(limits, key, seq, now + reply.duration):
            reply._inflight_key = key
        self._journal_locked(reply, seq, now, key, spec.id, route, stream, decided.cause, prefill)
        return reply
