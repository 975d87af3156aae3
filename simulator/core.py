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

import hmac
import json
import math
import random
import threading
from collections import Counter, deque
from typing import Any, Deque, Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qs

from . import wire
from .scenario import (
    STREAM_FAULTS,
    Latency,
    ModelSpec,
    RateLimits,
    Scenario,
    ScenarioError,
    ScenarioLike,
    Step,
    load_scenario,
    parse_scenario,
)

__all__ = ["END_KINDS", "Core", "Reply", "redact"]

#: How a reply ends after its body or events: ``complete`` (normal), ``truncated`` (the
#: connection closes before the declared length or before ``[DONE]``), ``reset`` (abortive
#: close, RST), ``stall`` (nothing more is sent until the client leaves or ``hold`` passes).
END_KINDS = ("complete", "truncated", "reset", "stall")

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer", "function"})
_DEFAULT_COMPLETION_ESTIMATE = 256
_JSON = "application/json"


def redact(key: Optional[str]) -> Optional[str]:
    """An API key with at most its last 4 characters visible (fewer for short keys)."""
    if key is None:
        return None
    keep = min(4, len(key) // 3)
    return "..." + key[len(key) - keep :] if keep else "..."


class Reply:
    """A planned answer. Drivers read it; only the core mutates it.

    Attributes:
        status: HTTP status, or None when no response is sent (``reset``, ``hang``).
        headers: response headers, lower-case names, without Content-Length unless the
            declared length differs from ``body`` (a ``truncate`` fault).
        payload: the decoded JSON object of the body (or of the error), None for non-JSON.
        latency: seconds to wait before the status line is sent.
        fault: None, or the transport fault name (``reset``, ``hang``, ``malformed``...).
        chunks: for a stream, ``(delay_seconds, chunk_object_or_"[DONE]")`` pairs; else None.
        end: one of :data:`END_KINDS`.
        hold: for ``end == "stall"``, the longest the driver keeps the connection open.
        model, seq, cause: what the journal recorded (``cause``: ok, script, outage, load,
            fault, rate_limit, invalid, auth, not_found, admin).
    """

    __slots__ = (
        "_body",
        "_done",
        "_inflight_key",
        "_record",
        "cause",
        "chunks",
        "end",
        "fault",
        "headers",
        "hold",
        "latency",
        "model",
        "payload",
        "seq",
        "status",
    )

    def __init__(
        self,
        status: Optional[int],
        payload: Any = None,
        *,
        headers: Optional[Dict[str, str]] = None,
        body: Optional[bytes] = None,
        latency: float = 0.0,
        fault: Optional[str] = None,
        chunks: Optional[List[Tuple[float, Any]]] = None,
        end: str = "complete",
        hold: float = 0.0,
        cause: str = "ok",
    ) -> None:
        self.status = status
        self.payload = payload
        self.headers: Dict[str, str] = headers if headers is not None else {}
        self._body = body
        self.latency = latency
        self.fault = fault
        self.chunks = chunks
        self.end = end
        self.hold = hold
        self.cause = cause
        self.model: Optional[str] = None
        self.seq = 0
        self._record: Optional[List[Any]] = None
        self._inflight_key: Optional[str] = None
        self._done = True

    @property
    def body(self) -> bytes:
        """The body bytes, encoded from ``payload`` on first use (in-process drivers skip it)."""
        if self._body is None:
            self._body = b"" if self.payload is None else wire.dumps(self.payload)
        return self._body

    @property
    def is_stream(self) -> bool:
        """Whether the reply is a server-sent event stream."""
        return self.chunks is not None

    @property
    def events(self) -> List[Tuple[float, bytes]]:
        """The stream as ``(delay_seconds, event_bytes)`` pairs (empty for a non-stream)."""
        return [(delay, wire.sse(obj)) for delay, obj in self.chunks or ()]

    @property
    def duration(self) -> float:
        """Planned seconds from request to the last byte (or to the stall)."""
        total = self.latency + sum(delay for delay, _ in self.chunks or ())
        return total + (self.hold if self.end == "stall" else 0.0)

    def __repr__(self) -> str:
        return f"<Reply {self.status} fault={self.fault} end={self.end} latency={self.latency:.3f}>"


class _Bucket:
    """A token bucket: ``capacity`` tokens, refilled at ``capacity / 60`` per second."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, capacity: int, now: float) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / 60.0
        self.tokens = float(capacity)
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, cost: float) -> float:
        """Seconds until ``cost`` tokens are there (a cost above capacity waits for a full one)."""
        return max(0.0, (min(cost, self.capacity) - self.tokens) / self.rate)

    def take(self, cost: float) -> None:
        self.tokens -= min(cost, self.capacity)

    def headers(self, kind: str, out: Dict[str, str]) -> None:
        out[f"x-ratelimit-limit-{kind}"] = str(int(self.capacity))
        out[f"x-ratelimit-remaining-{kind}"] = str(max(0, int(self.tokens)))
        reset = (self.capacity - self.tokens) / self.rate
        out[f"x-ratelimit-reset-{kind}"] = wire.format_duration(reset)


class _KeyState:
    """One API key's limiter state."""

    __slots__ = ("ends", "requests", "tokens")

    def __init__(self, limits: RateLimits, now: float) -> None:
        self.requests = _Bucket(limits.rpm, now) if limits.rpm else None
        self.tokens = _Bucket(limits.tpm, now) if limits.tpm else None
        self.ends: Dict[int, float] = {}  # seq -> planned end, of the key's requests in flight


class _BadRequest(Exception):
    """A request the simulator rejects with a 400, naming the parameter."""

    def __init__(self, message: str, param: Optional[str] = None) -> None:
        super().__init__(message)
        self.param = param


def _check_int(obj: Mapping[str, Any], name: str, lo: int) -> Optional[int]:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise _BadRequest(f"{name} must be an integer >= {lo}, got {value!r}", name)
    return value


def _check_number(obj: Mapping[str, Any], name: str, lo: float, hi: float) -> None:
    value = obj.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _BadRequest(f"{name} must be a number, got {type(value).__name__}", name)
    if not (lo <= value <= hi):  # also false for NaN
        raise _BadRequest(f"{name} must be between {lo:g} and {hi:g}, got {value!r}", name)


def _validate_chat(obj: Any) -> Tuple[str, List[Any], bool, bool, Optional[int]]:
    """Check a chat request; return (model, messages, stream, include_usage, max_tokens)."""
    if not isinstance(obj, dict):
        raise _BadRequest(f"request body must be a JSON object, got {type(obj).__name__}")
    model = obj.get("model")
    if model is None:
        raise _BadRequest("model is required", "model")
    if not isinstance(model, str) or not model:
        raise _BadRequest("model must be a non-empty string", "model")
    messages = obj.get("messages")
    if messages is None:
        raise _BadRequest("messages is required", "messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("messages must be a non-empty array", "messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _BadRequest(f"{where} must be an object", where)
        role = message.get("role")
        if role not in _ROLES:
            raise _BadRequest(
                f"{where}.role must be one of {', '.join(sorted(_ROLES))}, got {role!r}",
                f"{where}.role",
            )
        content = message.get("content")
        if content is None and role != "assistant":
            raise _BadRequest(f"{where}.content is required", f"{where}.content")
        if content is not None and not isinstance(content, (str, list)):
            raise _BadRequest(
                f"{where}.content must be a string or an array of parts", f"{where}.content"
            )
        if isinstance(content, list) and not all(
            isinstance(part, dict) and isinstance(part.get("type"), str) for part in content
        ):
            raise _BadRequest(
                f"{where}.content parts must be objects with a type", f"{where}.content"
            )
    stream = obj.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _BadRequest("stream must be a boolean", "stream")
    options = obj.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise _BadRequest("stream_options must be an object", "stream_options")
        usage = options.get("include_usage")
        if usage is not None and not isinstance(usage, bool):
            raise _BadRequest("stream_options.include_usage must be a boolean", "stream_options")
        include_usage = bool(usage)
    max_tokens = _check_int(obj, "max_tokens", 1)
    max_completion = _check_int(obj, "max_completion_tokens", 1)
    n = _check_int(obj, "n", 1)
    if n is not None and n != 1:
        raise _BadRequest("n must be 1: the simulator answers one choice", "n")
    _check_number(obj, "temperature", 0.0, 2.0)
    _check_number(obj, "top_p", 0.0, 1.0)
    return model, messages, bool(stream), include_usage, max_completion or max_tokens


class Core:
    """The simulated gateway's state and decisions. Thread-safe; no clock, no I/O.

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
        self._journal: Deque[List[Any]] = deque(maxlen=journal_limit)
        self._scenario = load_scenario(scenario)
        self._rng = random.Random()
        self._models: Dict[str, ModelSpec] = {}
        self._script_pos: Dict[str, int] = {}
        self._model_inflight: Dict[str, int] = {}
        self._keys: Dict[str, _KeyState] = {}
        self._stats: Counter[Tuple[str, str]] = Counter()
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
        self._keys = {}
        self._journal.clear()
        self._stats = Counter()
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
            rows = [list(r) for r in self._journal if r[0] > since]
        keys = ("seq", "t", "key", "model", "route", "status", "fault", "latency_ms", "stream")
        return [{**dict(zip(keys, row)), "cause": row[9]} for row in rows]

    def stats(self) -> Dict[str, Any]:
        """Counts of requests by model and status, by cause and by fault."""
        with self._lock:
            items = list(self._stats.items())
            total = self._seq
        by_model: Dict[str, Dict[str, int]] = {}
        by_status: Counter[str] = Counter()
        by_cause: Counter[str] = Counter()
        by_fault: Counter[str] = Counter()
        for (model, status), count in items:
            if model == "\x00cause":
                by_cause[status] += count
                continue
            if model == "\x00fault":
                by_fault[status] += count
                continue
            by_model.setdefault(model, {})
            by_model[model][status] = by_model[model].get(status, 0) + count
            by_status[status] += count
        return {
            "total": total,
            "by_model": by_model,
            "by_status": dict(by_status),
            "by_cause": dict(by_cause),
            "by_fault": dict(by_fault),
        }

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
        route, _, query = path.partition("?")
        if route.startswith("/_sim/"):
            return self._admin(method, route, query, body, now)
        key = self._bearer(headers)
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
            return self._record(self._catalog(query, seq), seq, now, key, None, route, False, "ok")
        if not route.startswith("/v1/"):
            return self._unknown_url(seq, now, key, method, route)
        problem = self._auth_problem(key)
        if problem is not None:
            return self._record(
                self._error(401, seq, problem), seq, now, key, None, route, False, "auth"
            )
        if route == "/v1/chat/completions":
            if method != "POST":
                return self._method(seq, now, key, route, "POST")
            return self._chat(seq, now, key, route, body, request)
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
                state = self._keys.get(reply._inflight_key)
                if state is not None:
                    state.ends.pop(reply.seq, None)
            record = reply._record
            if not delivered and record is not None and record[5] is not None:
                old = record[5]
                record[5] = None
                m = record[3] or "-"
                self._stats[(m, str(old))] -= 1
                self._stats[(m, "none")] += 1

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _bearer(headers: Mapping[str, str]) -> Optional[str]:
        value = headers.get("authorization")
        if value is None:
            return None
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer":
            return value.strip() or None
        return token.strip() or None

    def _auth_problem(self, key: Optional[str]) -> Optional[str]:
        if not key:
            return "You didn't provide an API key: send Authorization: Bearer <key>"
        if self._api_key is not None and not hmac.compare_digest(
            key.encode("utf-8", "replace"), self._api_key.encode("utf-8", "replace")
        ):
            return f"Incorrect API key provided: {redact(key)}"
        return None

    def _request_id(self, seq: int) -> str:
        return f"20260101{self.seed % 1000:03d}{seq:09d}"

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
        rid = self._request_id(seq)
        payload = wire.error_envelope(status, rid, message, code, param)
        return Reply(
            status,
            payload,
            headers={"content-type": _JSON, "x-request-id": rid},
            cause=cause,
        )

    def _unknown_url(
        self, seq: int, now: float, key: Optional[str], method: str, route: str
    ) -> Reply:
        """A 404 a client can tell from an unknown model (a base URL without ``/v1``...)."""
        rid = self._request_id(seq)
        payload = wire.unknown_url_envelope(method, route[:200])
        hdrs = {"content-type": _JSON, "x-request-id": rid}
        reply = Reply(404, payload, headers=hdrs, cause="not_found")
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
    ) -> Reply:
        """Journal a reply (under the lock for the caller's convenience) and return it."""
        with self._lock:
            self._journal_locked(reply, seq, now, key, model, route, stream, cause)
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
    ) -> None:
        reply.seq = seq
        reply.cause = cause
        record = [
            seq,
            round(now - self._t0, 6),
            redact(key),
            model,
            route[:200],
            reply.status,
            reply.fault,
            round(reply.latency * 1000, 3),
            stream,
            cause,
        ]
        reply._record = record
        self._journal.append(record)
        m = model if model is not None else "-"
        self._stats[(m, "none" if reply.status is None else str(reply.status))] += 1
        self._stats[("\x00cause", cause)] += 1
        if reply.fault is not None:
            self._stats[("\x00fault", reply.fault)] += 1

    def _models_route(self, seq: int, now: float, key: Optional[str], route: str) -> Reply:
        rid = self._request_id(seq)
        hdrs = {"content-type": _JSON, "x-request-id": rid}
        if route in ("/v1/models", "/v1/models/"):
            reply = Reply(200, wire.models_list(self._scenario), headers=hdrs)
            return self._record(reply, seq, now, key, None, route, False, "ok")
        model_id = route[len("/v1/models/") :]
        spec = self._models.get(model_id)
        if spec is None:
            reply = self._error(404, seq, f"The model `{model_id[:100]}` does not exist")
            return self._record(reply, seq, now, key, model_id[:100], route, False, "not_found")
        reply = Reply(200, wire.model_object(spec), headers=hdrs)
        return self._record(reply, seq, now, key, model_id, route, False, "ok")

    def _catalog(self, query: str, seq: int) -> Reply:
        params = parse_qs(query)
        if "page" not in params and "page_size" not in params:
            page, size = 0, 0  # as CometAPI answers: every model at once, page 0, page_size 0
        else:
            try:
                page = int(params.get("page", ["1"])[0])
                size = int(params.get("page_size", ["100"])[0])
            except ValueError:
                return self._error(400, seq, "page and page_size must be integers", param="page")
            if page < 1 or not 1 <= size <= 1000:
                return self._error(400, seq, "page must be >= 1, page_size 1..1000", param="page")
        rid = self._request_id(seq)
        payload = wire.models_catalog(self._scenario, page, size)
        return Reply(200, payload, headers={"content-type": _JSON, "x-request-id": rid})

    def _chat(
        self, seq: int, now: float, key: Optional[str], route: str, body: bytes, request: Any
    ) -> Reply:
        if request is None:
            try:
                request = json.loads(body)
            except (ValueError, RecursionError) as exc:
                reply = self._error(400, seq, f"request body is not valid JSON: {exc}"[:300])
                reply.payload["error"]["code"] = "invalid_json"
                return self._record(reply, seq, now, key, None, route, False, "invalid")
        try:
            model, messages, stream, include_usage, max_tokens = _validate_chat(request)
        except _BadRequest as exc:
            reply = self._error(400, seq, str(exc)[:300], param=exc.param)
            return self._record(reply, seq, now, key, None, route, False, "invalid")
        spec = self._models.get(model)
        if spec is None:
            reply = self._error(
                404,
                seq,
                f"The model `{model[:100]}` does not exist or you do not have access to it",
                code="model_not_found",
                param="model",
            )
            return self._record(reply, seq, now, key, model[:100], route, stream, "not_found")
        prompt_tokens = wire.estimate_prompt_tokens(messages)
        cost = prompt_tokens + (max_tokens or _DEFAULT_COMPLETION_ESTIMATE)
        words, finish_reason = wire.generate_words(self.seed, model, messages, max_tokens)
        with self._lock:
            return self._plan_locked(
                seq,
                now,
                key or "",
                route,
                spec,
                stream,
                include_usage,
                prompt_tokens,
                cost,
                words,
                finish_reason,
            )

    def _plan_locked(
        self,
        seq: int,
        now: float,
        key: str,
        route: str,
        spec: ModelSpec,
        stream: bool,
        include_usage: bool,
        prompt_tokens: int,
        cost: int,
        words: List[str],
        finish_reason: str,
    ) -> Reply:
        """The decisions, in a fixed order: limiter, script, outage, load, faults, latency."""
        rl_headers: Dict[str, str] = {}
        limited = self._limit_locked(key, now, cost, rl_headers)
        if limited is not None:
            wait, which = limited
            reply = self._limited_reply(seq, wait, which, rl_headers)
            reply.model = spec.id
            self._journal_locked(reply, seq, now, key, spec.id, route, stream, "rate_limit")
            return reply
        t = now - self._t0
        rng = self._rng
        step: Optional[Step] = None
        cause = "ok"
        pos = self._script_pos[spec.id]
        if pos < len(spec.script):
            step, cause = spec.script[pos], "script"
            self._script_pos[spec.id] = pos + 1
        if step is None:
            for outage in spec.outages:
                if outage.start <= t < outage.end:
                    step, cause = outage.step, "outage"
                    break
        inflight = self._model_inflight[spec.id] + 1
        slow = 1.0
        load = spec.load
        if load is not None and inflight > load.capacity:
            over = (inflight - load.capacity) / load.capacity
            slow = 1.0 + load.latency_slope * over
            if rng.random() < min(load.max_failure, load.failure_slope * over) and step is None:
                step = Step(status=load.status, retry_after=load.retry_after)
                cause = "load"
        for rule in spec.faults:  # every rule draws, so the draw count never depends on hits
            if rng.random() < rule.rate and step is None:
                step, cause = rule.step, "fault"
        if step is not None and step.latency is not None:
            latency_dist: Latency = step.latency
        elif stream and spec.ttft is not None:
            latency_dist = spec.ttft
        else:
            latency_dist = spec.latency
        latency = latency_dist.sample(rng) * slow
        reply = self._build(
            seq, spec, step, stream, include_usage, prompt_tokens, words, finish_reason
        )
        reply.headers.update(rl_headers)
        reply.latency = latency
        if reply.chunks is not None and reply.status == 200:
            token = spec.token
            fixed = token.dist == "fixed"
            delay = token.ms / 1000.0 * slow
            reply.chunks = [
                (0.0 if i == 0 or obj == "[DONE]" else (delay if fixed else token.sample(rng)), obj)
                for i, (_, obj) in enumerate(reply.chunks)
            ]
        reply.model = spec.id
        reply._done = False
        self._model_inflight[spec.id] = inflight
        state = self._keys.get(key)
        if state is not None and self._scenario.rate_limits.concurrency:
            reply._inflight_key = key
            state.ends[seq] = now + reply.duration
        self._journal_locked(reply, seq, now, key, spec.id, route, stream, cause)
        return reply

    def _limit_locked(
        self, key: str, now: float, cost: int, out: Dict[str, str]
    ) -> Optional[Tuple[float, str]]:
        """Admit (taking tokens) or return (seconds until capacity returns, which limit)."""
        limits = self._scenario.rate_limits
        if not (limits.rpm or limits.tpm or limits.concurrency):
            return None
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState(limits, now)
        wait, which = 0.0, ""
        if state.requests is not None:
            state.requests.refill(now)
            w = state.requests.wait(1)
            if w > wait:
                wait, which = w, f"requests per minute (limit {limits.rpm})"
        if state.tokens is not None:
            state.tokens.refill(now)
            w = state.tokens.wait(cost)
            if w > wait:
                wait, which = w, f"tokens per minute (limit {limits.tpm}, requested {cost})"
        if limits.concurrency and len(state.ends) >= limits.concurrency:
            w = max(0.001, min(state.ends.values()) - now)
            if w > wait:
                wait, which = w, f"concurrent requests (limit {limits.concurrency})"
        if wait <= 0:
            if state.requests is not None:
                state.requests.take(1)
            if state.tokens is not None:
                state.tokens.take(cost)
        if state.requests is not None:
            state.requests.headers("requests", out)
        if state.tokens is not None:
            state.tokens.headers("tokens", out)
        return (wait, which) if wait > 0 else None

    def _limited_reply(self, seq: int, wait: float, which: str, rl: Dict[str, str]) -> Reply:
        ms = max(1, math.ceil(wait * 1000))
        message = f"Rate limit reached for {which}; retry after {wire.format_seconds(ms / 1000)}s"
        reply = self._error(429, seq, message, code="rate_limit_exceeded", cause="rate_limit")
        reply.headers.update(rl)
        reply.headers["retry-after"] = wire.format_seconds(ms / 1000)
        reply.headers["retry-after-ms"] = str(ms)
        return reply

    def _build(
        self,
        seq: int,
        spec: ModelSpec,
        step: Optional[Step],
        stream: bool,
        include_usage: bool,
        prompt_tokens: int,
        words: List[str],
        finish_reason: str,
    ) -> Reply:
        """The reply for a decided step (None: a normal answer)."""
        rid = self._request_id(seq)
        fault = step.fault if step is not None else None
        if step is not None and fault is None and step.status != 200:
            reply = self._error(step.status, seq, step.message, code=step.code, cause="fault")
            if step.retry_after is not None:
                reply.headers["retry-after"] = wire.format_seconds(step.retry_after)
            if step.retry_after_ms is not None:
                reply.headers["retry-after-ms"] = wire.format_seconds(step.retry_after_ms)
            return reply
        if stream and (fault is None or fault in STREAM_FAULTS):
            return self._stream(seq, spec, step, include_usage, prompt_tokens, words, finish_reason)
        if fault == "reset":
            return Reply(None, fault=fault, end="reset")
        if fault == "hang":
            return Reply(None, fault=fault, end="stall", hold=self._scenario.hang_s)
        if fault == "html":
            status = step.status if step is not None and step.status != 200 else 502
            html = {"content-type": "text/html", "x-request-id": rid}
            return Reply(status, None, headers=html, body=wire.HTML_502, fault=fault)
        cid = f"chatcmpl-sim{self.seed % 1000:03d}{seq:09d}"
        headers = {"content-type": _JSON, "x-request-id": rid}
        if fault == "empty":
            return Reply(200, None, headers=headers, body=b"", fault=fault)
        if fault == "error":
            return Reply(200, self._error_event(seq, step), headers=headers, fault=fault)
        payload = wire.completion(cid, spec.id, words, finish_reason, prompt_tokens)
        if fault == "malformed":
            full = wire.dumps(payload)
            return Reply(200, None, headers=headers, body=full[: len(full) * 2 // 3], fault=fault)
        if fault in ("truncate", "stall"):
            full = wire.dumps(payload)
            headers["content-length"] = str(len(full))
            return Reply(
                200,
                None,
                headers=headers,
                body=full[: len(full) // 2],
                fault=fault,
                end="truncated" if fault == "truncate" else "stall",
                hold=self._scenario.hang_s,
            )
        return Reply(200, payload, headers=headers)

    def _stream(
        self,
        seq: int,
        spec: ModelSpec,
        step: Optional[Step],
        include_usage: bool,
        prompt_tokens: int,
        words: List[str],
        finish_reason: str,
    ) -> Reply:
        """A stream, broken by a stream fault after ``step.after_chunks`` events (default half).

        ``truncate`` closes cleanly, ``reset`` with RST, ``stall`` goes silent; ``malformed``
        cuts one event in half and goes on; ``error`` sends an ``{"error": ...}`` event and
        ends without ``[DONE]``.
        """
        cid = f"chatcmpl-sim{self.seed % 1000:03d}{seq:09d}"
        payloads: List[Any] = wire.chunk_payloads(
            cid, spec.id, words, finish_reason, prompt_tokens, include_usage
        )
        fault = step.fault if step is not None else None
        end = {"truncate": "truncated", "reset": "reset", "stall": "stall"}.get(str(fault))
        if step is not None and fault is not None:
            after = 1 + len(words) // 2 if step.after_chunks is None else step.after_chunks
            cut = min(after, len(payloads) - 1)  # never [DONE]: the stream must break
            head, rest = payloads[:cut], payloads[cut:]
            if fault == "malformed":
                event = wire.sse(rest[0])
                payloads = [*head, event[: len(event) // 2] + b"\n\n", *rest[1:]]
            elif fault == "error":
                payloads = [*head, self._error_event(seq, step)]
            else:
                payloads = head
        headers = {
            "content-type": "text/event-stream",
            "cache-control": "no-cache",
            "x-request-id": self._request_id(seq),
        }
        return Reply(
            200,
            None,
            headers=headers,
            chunks=[(0.0, p) for p in payloads],
            fault=fault,
            end=end or "complete",
            hold=self._scenario.hang_s,
        )

    def _error_event(self, seq: int, step: Optional[Step]) -> Dict[str, Any]:
        """The ``{"error": ...}`` a gateway sends with a 200: in a stream, or as the body.

        A step with an error status adds it as ``error.status`` (some gateways do), so a
        client can treat the event like that status.
        """
        status = step.status if step is not None and step.status != 200 else 500
        message = step.message if step is not None else None
        code = step.code if step is not None else None
        payload = wire.error_envelope(status, self._request_id(seq), message, code)
        if step is not None and step.status != 200:
            payload["error"]["status"] = status
        return payload

    # -- admin ----------------------------------------------------------------------------

    def _admin(self, method: str, route: str, query: str, body: bytes, now: float) -> Reply:
        """The ``/_sim/`` routes: not journaled, no API key."""
        hdrs = {"content-type": _JSON}
        gets = {"/_sim/journal", "/_sim/stats", "/_sim/health", "/_sim/scenario"}
        posts = {"/_sim/scenario", "/_sim/reset"}
        if route not in gets | posts:
            return self._admin_error(404, f"no admin route {route}", "not_found")
        if method == "GET" and route in gets:
            if route == "/_sim/journal":
                try:
                    since = int(parse_qs(query).get("since", ["0"])[0])
                except ValueError:
                    return self._admin_error(400, "since must be an integer", "invalid_request")
                return Reply(200, self.journal(since), headers=hdrs, cause="admin")
            if route == "/_sim/stats":
                return Reply(200, self.stats(), headers=hdrs, cause="admin")
            if route == "/_sim/scenario":
                return Reply(200, self._summary(), headers=hdrs, cause="admin")
            with self._lock:
                uptime = now - self._t0 if self._origin_set else 0.0
            health = {"status": "ok", "uptime": round(uptime, 3), "seed": self.seed}
            return Reply(200, health, headers=hdrs, cause="admin")
        if method == "POST" and route in posts:
            if route == "/_sim/reset":
                self.reset(now)
                return Reply(200, {"ok": True}, headers=hdrs, cause="admin")
            try:
                data = json.loads(body)
            except (ValueError, RecursionError) as exc:
                return self._admin_error(400, f"scenario is not valid JSON: {exc}", "invalid_json")
            try:
                self.set_scenario(parse_scenario(data), now)
            except ScenarioError as exc:
                return self._admin_error(400, str(exc), "invalid_scenario", exc.path or None)
            return Reply(200, {"ok": True, **self._summary()}, headers=hdrs)
        allowed = "GET" if route in gets and route not in posts else "POST"
        if route == "/_sim/scenario":
            allowed = "GET, POST"
        reply = self._admin_error(405, f"method not allowed on {route}", "method_not_allowed")
        reply.headers["allow"] = allowed
        return reply

    def _summary(self) -> Dict[str, Any]:
        """The scenario's summary with the seed in force, as ``/_sim/health`` reports it."""
        return {**self._scenario.to_summary(), "seed": self.seed}

    @staticmethod
    def _admin_error(status: int, message: str, code: str, param: Optional[str] = None) -> Reply:
        payload = {
            "error": {"message": message, "type": wire.ERROR_TYPE, "param": param, "code": code}
        }
        return Reply(status, payload, headers={"content-type": _JSON}, cause="admin")
