"""The routes of the simulated API: which request goes where, and each route's own work.

A pure function of the request, the scenario and the seed, so :class:`simulator.core.Core`
stays a coordinator: it calls :func:`route` outside its lock, journals an :class:`Answer` as
is, and plans an :class:`Accepted` request (limiter, script, outage, load, faults, latency).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, NamedTuple, Optional, Union

from . import embeddings as embeddings_mod
from . import prefill as prefill_mod
from . import replies, tools, wire
from .auth import auth_problem
from .replies import Reply
from .scenario_types import ModelSpec, Scenario, Step
from .validation import BadRequest, validate_chat

__all__ = ["Accepted", "Answer", "Refused", "route"]

_DEFAULT_COMPLETION_ESTIMATE = 256


class Answer(NamedTuple):
    """A reply sent without a plan (an error, the model list), with what the journal records."""

    reply: Reply
    cause: str
    model: Optional[str] = None
    stream: bool = False
    prefill: bool = False


class Accepted(NamedTuple):
    """A request to plan: its model, stream flag, token cost, prefill flag and reply builder."""

    spec: ModelSpec
    stream: bool
    cost: int
    build: Callable[[Optional[Step]], Reply]
    prefill: bool = False


class Refused(Exception):
    """Raised inside a route to answer at once with ``answer`` (a bad body, an unknown model)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.cause)
        self.answer = answer


def route(
    method: str,
    path: str,
    query: str,
    body: bytes,
    request: Any,
    length: int,
    key: Optional[str],
    api_key: Optional[str],
    scenario: Scenario,
    specs: Mapping[str, ModelSpec],
    seed: int,
    seq: int,
) -> Union[Answer, Accepted]:
    """Answer or accept request ``seq`` to ``path`` (not ``/_sim/``), in the gateway's order:
    body size, the open ``/api/models`` catalog, the URL, the API key, then the ``/v1`` route."""
    if length > scenario.max_body_bytes:
        limit = scenario.max_body_bytes
        return Answer(
            replies.error(seed, 413, seq, f"request body is {length} bytes, limit {limit}"),
            "invalid",
        )
    if path == "/api/models":
        if method != "GET":
            return _method(seed, seq, path, "GET")
        return Answer(replies.catalog(seed, scenario, query, seq), "ok")
    if not path.startswith("/v1/"):
        return Answer(replies.unknown_url(seed, seq, method, path), "not_found")
    problem = auth_problem(key, api_key)
    if problem is not None:
        return Answer(replies.error(seed, 401, seq, problem), "auth")
    try:
        if path == "/v1/chat/completions":
            if method != "POST":
                return _method(seed, seq, path, "POST")
            return _chat(_decode(body, request, seed, seq), scenario, specs, seed, seq)
        if path == "/v1/embeddings":
            if method != "POST":
                return _method(seed, seq, path, "POST")
            return _embeddings(_decode(body, request, seed, seq), scenario, specs, seed, seq)
    except Refused as exc:
        return exc.answer
    if path == "/v1/models" or path.startswith("/v1/models/"):
        if method != "GET":
            return _method(seed, seq, path, "GET")
        reply, model = replies.models(seed, scenario, path, seq)
        return Answer(reply, "ok" if reply.status == 200 else "not_found", model)
    return Answer(replies.unknown_url(seed, seq, method, path), "not_found")


def _method(seed: int, seq: int, path: str, allowed: str) -> Answer:
    """The 405 of a known route asked with the wrong method, with its ``Allow`` header."""
    reply = replies.error(
        seed, 405, seq, f"method not allowed on {path}", code="method_not_allowed"
    )
    reply.headers["allow"] = allowed
    return Answer(reply, "invalid")


def _decode(body: bytes, request: Any, seed: int, seq: int) -> Any:
    """The decoded JSON body (``request`` when the driver decoded it already).

    Raises:
        Refused: the 400 of a body that is not JSON.
    """
    if request is not None:
        return request
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        reply = replies.error(seed, 400, seq, f"request body is not valid JSON: {exc}"[:300])
        reply.payload["error"]["code"] = "invalid_json"
        raise Refused(Answer(reply, "invalid")) from None


def _embeddings(
    request: Any, scenario: Scenario, specs: Mapping[str, ModelSpec], seed: int, seq: int
) -> Union[Answer, Accepted]:
    """``POST /v1/embeddings``: checked by :mod:`simulator.embeddings`, its vectors on demand."""
    try:
        planned = embeddings_mod.prepare(request, specs, seed)
    except embeddings_mod.EmbeddingRequestError as exc:
        reply = replies.error(seed, exc.status, seq, str(exc)[:300], code=exc.code, param=exc.param)
        return Answer(reply, "not_found" if exc.status == 404 else "invalid", exc.model)
    hang_s = scenario.hang_s

    def build(step: Optional[Step]) -> Reply:
        return replies.answer(seed, hang_s, seq, step, planned.payload)

    return Accepted(specs[planned.model], False, planned.tokens, build)


def _chat(
    request: Any, scenario: Scenario, specs: Mapping[str, ModelSpec], seed: int, seq: int
) -> Union[Answer, Accepted]:
    """``POST /v1/chat/completions``: checks, prefill, the words or tool call to answer with."""
    try:
        model, messages, stream, include_usage, max_tokens = validate_chat(request)
    except BadRequest as exc:
        return Answer(replies.error(seed, 400, seq, str(exc)[:300], param=exc.param), "invalid")
    spec = specs.get(model)
    if spec is None:
        reply = replies.error(
            seed,
            404,
            seq,
            f"The model `{model[:100]}` does not exist or you do not have access to it",
            code="model_not_found",
            param="model",
        )
        return Answer(reply, "not_found", model[:100], stream)
    prompt_tokens = wire.estimate_prompt_tokens(messages)
    prefill = messages[-1].get("role") == "assistant"
    refusal = prefill_mod.refusal(seed, spec, seq, prompt_tokens, prefill)
    if refusal is not None:
        return Answer(refusal, "invalid", model, stream, prefill)
    cost = prompt_tokens + (max_tokens or _DEFAULT_COMPLETION_ESTIMATE)
    if prefill:
        texts, finish_reason = prefill_mod.continuation(seed, model, messages, max_tokens)
    else:
        words, finish_reason = wire.generate_words(seed, model, messages, max_tokens)
        texts = wire.pieces(words)
    call = tools.tool_call(request, seed, seq)
    hang_s = scenario.hang_s

    def build(step: Optional[Step]) -> Reply:
        return replies.build(
            seed,
            hang_s,
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

    return Accepted(spec, stream, cost, build, prefill)
