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

import json
import random
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from . import embeddings, plan, replies, tools, wire
from . import prefill as prefill_mod
from .admin import handle_admin
from .auth import auth_problem, bearer, redact
from .journal import Journal, as_dicts, summarize
from .ratelimit import RateLimiter
from .replies import END_KINDS, Reply
from .scenario import ModelSpec, Scenario, ScenarioLike, load_scenario
from .scenario_types import Step
from .validation import BadRequest, validate_chat

__all__ = ["END_KINDS", "TAG_HEADER", "Core", "Reply", "redact"]

#: A request header whose value (100 characters at most) the journal keeps as ``tag``: a test
#: labels each input with it to find all of that input's attempts in the journal.
TAG_HEADER = "x-sim-tag"

_DEFAULT_COMPLETION_ESTIMATE = 256


class Core:
    """The simulated gateway's state and decisions. Thread-safe; no clock, no I/O.

    A thin coordinator: it routes a request, asks :mod:`~simulator.auth`,
    :mod:`~simulator.validation`, the :mod:`~simulator.ratelimit`, the :mod:`~simulator.plan`
    and :mod:`~simulator.replies` in turn, and writes the :mod:`~simulator.journal`.

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
        if length > self._scenario.max_body_bytes:
            limit = self._scenario.max_body_bytes
            reply = self._error(413, seq, f"request body is {length} bytes, limit {limit}")
            return self._record(reply, seq, now, key, None, route, False, "invalid")
        if route == "/api/models":
            if method != "GET":
                return self._method(seq, now, key, route, "GET")
            return self._record(
                replies.catalog(self.seed, self._scenario, query, seq),
                seq,
                now,
                key,
                None,
                route,
                False,
                "ok",
            )
        if not route.startswith("/v1/"):
            return self._unknown_url(seq, now, key, method, route)
        problem = auth_problem(key, self._api_key)
        if problem is not None:
            return self._record(
                self._error(401, seq, problem), seq, now, key, None, route, False, "auth"
            )
        if route == "/v1/chat/completions":
            if method != "POST":
                return self._method(seq, now, key, route, "POST")
            return self._chat(seq, now, key, route, body, request)
        if route == "/v1/embeddings":
            if method != "POST":
                return self._method(seq, now, key, route, "POST")
            return self._embeddings(seq, now, key, route, body, request)
        if route == "/v1/models" or route.startswith("/v1/models/"):
            if method != "GET":
                return self._method(seq, now, key, route, "GET")
            return self._models_route(seq, now, key, route)
        return self._unknown_url(seq, now, key, method, route)

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

    def _error(
        self,
        status: int,
        seq: int,
        message: Optional[str] = None,
        *,
        code: Optional[str] = None,
        param: Optional[str] = None,
        cause: str = "invalid",
    ) -> Reply:
        return replies.error(self.seed, status, seq, message, code=code, param=param, cause=cause)

    def _unknown_url(
        self, seq: int, now: float, key: Optional[str], method: str, route: str
    ) -> Reply:
        reply = replies.unknown_url(self.seed, seq, method, route)
        return self._record(reply, seq, now, key, None, route, False, "not_found")

    def _method(self, seq: int, now: float, key: Optional[str], route: str, allowed: str) -> Reply:
        reply = self._error(405, seq, f"method not allowed on {route}", code="method_not_allowed")
        reply.headers["allow"] = allowed
        return self._record(reply, seq, now, key, None, route, False, "invalid")

    def _record(
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
    ) -> Reply:
        """Journal a reply (under the lock for the caller's convenience) and return it."""
        with self._lock:
            self._journal_locked(reply, seq, now, key, model, route, stream, cause, prefill)
        return reply

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

    def _models_route(self, seq: int, now: float, key: Optional[str], route: str) -> Reply:
        reply, model = replies.models(self.seed, self._scenario, route, seq)
        cause = "ok" if reply.status == 200 else "not_found"
        return self._record(reply, seq, now, key, model, route, False, cause)

    def _decode(
        self, seq: int, now: float, key: Optional[str], route: str, body: bytes, request: Any
    ) -> Tuple[Any, Optional[Reply]]:
        """The decoded JSON body, or the journaled 400 for a body that is not JSON."""
        if request is not None:
            return request, None
        try:
            return json.loads(body), None
        except (ValueError, RecursionError) as exc:
            reply = self._error(400, seq, f"request body is not valid JSON: {exc}"[:300])
            reply.payload["error"]["code"] = "invalid_json"
            return None, self._record(reply, seq, now, key, None, route, False, "invalid")

    def _unknown_model(
        self, seq: int, now: float, key: Optional[str], route: str, model: str, stream: bool
    ) -> Reply:
        reply = self._error(
            404,
            seq,
            f"The model `{model[:100]}` does not exist or you do not have access to it",
            code="model_not_found",
            param="model",
        )
        return self._record(reply, seq, now, key, model[:100], route, stream, "not_found")

    def _embeddings(
        self, seq: int, now: float, key: Optional[str], route: str, body: bytes, request: Any
    ) -> Reply:
        request, refused = self._decode(seq, now, key, route, body, request)
        if refused is not None:
            return refused
        try:
            planned = embeddings.prepare(request, self._models, self.seed)
        except embeddings.EmbeddingRequestError as exc:
            reply = self._error(exc.status, seq, str(exc)[:300], code=exc.code, param=exc.param)
            cause = "not_found" if exc.status == 404 else "invalid"
            return self._record(reply, seq, now, key, exc.model, route, False, cause)

        def build(step: Optional[Step]) -> Reply:
            return replies.answer(self.seed, self._scenario.hang_s, seq, step, planned.payload)

        spec = self._models[planned.model]
        with self._lock:
            return self._plan_locked(seq, now, key or "", route, spec, False, planned.tokens, build)

    def _chat(
        self, seq: int, now: float, key: Optional[str], route: str, body: bytes, request: Any
    ) -> Reply:
        request, refused = self._decode(seq, now, key, route, body, request)
        if refused is not None:
            return refused
        try:
            model, messages, stream, include_usage, max_tokens = validate_chat(request)
        except BadRequest as exc:
            reply = self._error(400, seq, str(exc)[:300], param=exc.param)
            return self._record(reply, seq, now, key, None, route, False, "invalid")
        spec = self._models.get(model)
        if spec is None:
            return self._unknown_model(seq, now, key, route, model, stream)
        prompt_tokens = wire.estimate_prompt_tokens(messages)
        prefill = messages[-1].get("role") == "assistant"
        refusal = prefill_mod.refusal(self.seed, spec, seq, prompt_tokens, prefill)
        if refusal is not None:
            return self._record(refusal, seq, now, key, model, route, stream, "invalid", prefill)
        cost = prompt_tokens + (max_tokens or _DEFAULT_COMPLETION_ESTIMATE)
        if prefill:
            texts, finish_reason = prefill_mod.continuation(self.seed, model, messages, max_tokens)
        else:
            words, finish_reason = wire.generate_words(self.seed, model, messages, max_tokens)
            texts = wire.pieces(words)
        call = tools.tool_call(request, self.seed, seq)

        def build(step: Optional[Step]) -> Reply:
            return replies.build(
                self.seed,
                self._scenario.hang_s,
                seq,
                spec,
                step,
                stream,
                include_usage,
                prompt_tokens,
                texts,
                finish_reason,
                call,
            )

        with self._lock:
            return self._plan_locked(seq, now, key or "", route, spec, stream, cost, build, prefill)

    def _plan_locked(
        self,
        seq: int,
        now: float,
        key: str,
        route: str,
        spec: ModelSpec,
        stream: bool,
        cost: int,
        build: Callable[[Optional[Step]], Reply],
        prefill: bool = False,
    ) -> Reply:
        """The decisions, in a fixed order: limiter, script, outage, load, faults, latency."""
        limits = self._scenario.rate_limits
        rl_headers: Dict[str, str] = {}
        limited = self._limiter.admit(limits, key, now, cost, rl_headers)
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
        reply = build(decided.step)
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
