"""The failover scorecard's catalogue: one canonical failure per case, as a simulator scenario.

Every duration is written at full scale (seconds a real user would wait) and multiplied by the
run's ``scale``: ``--fast`` shrinks Retry-After, first-token delays, outage windows and request
intervals together with the clients' own timeouts, so verdicts keep their meaning in CI.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from simulator.scenario_types import FAULTS, ModelSpec

__all__ = [
    "CASES",
    "CHAIN",
    "FALLBACK",
    "MESSAGES",
    "PRIMARY",
    "Case",
    "missing_features",
]

PRIMARY = "primary"
FALLBACK = "fallback"
#: The chain every recipe is given (openai-python's defaults use its first model only).
CHAIN: Tuple[str, str] = (PRIMARY, FALLBACK)
#: The request of every case: the source document's own prompt.
MESSAGES: List[Dict[str, str]] = [
    {"role": "user", "content": "Summarize CometAPI in one sentence."}
]

# Models = scale -> the "models" mapping of the scenario (the fallback is healthy unless set).
Models = Callable[[float], Dict[str, Any]]

_CONTEXT = (
    "This model's maximum context length is 8192 tokens. However, your messages resulted in "
    "9120 tokens. Please reduce the length of the messages."
)
_FILTER = (
    "The response was filtered due to the prompt triggering content management policy. "
    "Please modify your prompt and retry."
)


@dataclass(frozen=True)
class Case:
    """One canonical failure and what good conduct is in front of it.

    Attributes:
        key: the short name ``--cases`` takes.
        name: the row label.
        title: what the primary does, in words.
        models: the scenario's models at a given scale (the fallback defaults to healthy).
        stream: whether the request streams.
        expect_error: the clean error is the right outcome (a content filter: any further
            attempt, on any model, hides an invalid request).
        retry_after: ``(status, seconds at full scale)``: the primary's answers with this
            status carry this Retry-After, which a retry of the same model must honour.
        silent: a model that never answers: more than one timeout on it, while a fallback
            could answer, is a conduct slip.
        outage: ``(down seconds, request interval, requests)`` at full scale: the primary
            answers 503 from 0 to ``down``; a sequence of requests is sent on one client, the
            first half an interval in (so the outage ends between two requests).
        accounting: check the client's own account (model, usage, attempts) against the
            simulator's journal.
        needs: what the case relies on in the simulator, model keys or ``fault:NAME`` (the
            cell is skipped, ``n/a``, without them).
    """

    key: str
    name: str
    title: str
    models: Models
    stream: bool = False
    expect_error: bool = False
    retry_after: Optional[Tuple[int, float]] = None
    silent: bool = False
    outage: Optional[Tuple[float, float, int]] = None
    accounting: bool = False
    needs: Tuple[str, ...] = ()

    @property
    def requests(self) -> int:
        """How many requests the case sends."""
        return 1 if self.outage is None else self.outage[2]

    def scenario(self, scale: float, hang_s: float) -> Dict[str, Any]:
        """The simulator scenario at ``scale`` (``hang_s``: how long silent models stay silent)."""
        models = {FALLBACK: {}, **self.models(scale)}
        return {"models": models, "hang_s": hang_s}


def _primary(**spec: Any) -> Models:
    return lambda scale: {PRIMARY: dict(spec)}


def _always(step: Dict[str, Any]) -> Models:
    return _primary(faults=[{**step, "rate": 1.0}])


def _once(step: Dict[str, Any]) -> Models:
    return _primary(script=[step])


def _slow_first_token(scale: float) -> Dict[str, Any]:
    return {PRIMARY: {"ttft_ms": 20_000 * scale}}


def _rate_limited(scale: float) -> Dict[str, Any]:
    return {PRIMARY: {"script": [{"status": 429, "retry_after": 3.0 * scale}]}}


def _outage(scale: float) -> Dict[str, Any]:
    return {PRIMARY: {"outages": [{"start": 0, "end": 60.0 * scale, "status": 503}]}}


def _refusing_prefill(scale: float) -> Dict[str, Any]:
    return {
        PRIMARY: {"faults": [{"fault": "truncate", "rate": 1.0}]},
        FALLBACK: {"prefill": False},
    }


CASES: Tuple[Case, ...] = (
    Case(
        "429-retry-after",
        "429 + Retry-After",
        "one 429 with Retry-After: 3 s, then healthy",
        _rate_limited,
        retry_after=(429, 3.0),
    ),
    Case(
        "429-no-retry-after",
        "429, no Retry-After",
        "one 429 without Retry-After, then healthy",
        _once({"status": 429}),
    ),
    Case("500-once", "500 once", "one 500, then healthy", _once({"status": 500})),
    Case("503-persistent", "503 persistent", "503 on every request", _always({"status": 503})),
    Case(
        "reset",
        "reset before headers",
        "every connection reset before the status line",
        _always({"fault": "reset"}),
    ),
    Case(
        "silent",
        "silent model",
        "accepts every request and never answers",
        _always({"fault": "hang"}),
        silent=True,
    ),
    Case(
        "slow-first-token",
        "slow first token",
        "a stream whose first token comes after 20 s",
        _slow_first_token,
        stream=True,
    ),
    Case(
        "stream-cut",
        "stream cut",
        "one stream closed half-way, no [DONE] (then healthy)",
        _once({"fault": "truncate"}),
        stream=True,
    ),
    Case(
        "stream-stall",
        "stream stall",
        "one stream silent half-way, connection open (then healthy)",
        _once({"fault": "stall"}),
        stream=True,
    ),
    Case(
        "malformed-chunk",
        "malformed chunk",
        "one stream with an event cut in half (then healthy)",
        _once({"fault": "malformed"}),
        stream=True,
    ),
    Case(
        "no-done",
        "end without [DONE]",
        "one stream ending cleanly half-way: no finish_reason, no [DONE] (then healthy)",
        _once({"fault": "eof"}),
        stream=True,
        needs=("fault:eof",),
    ),
    Case(
        "context-length",
        "context length",
        "400 context_length_exceeded on every request (the fallback has room)",
        _always({"status": 400, "code": "context_length_exceeded", "message": _CONTEXT}),
    ),
    Case(
        "content-filter",
        "content filter",
        "400 content_filter on every request: the clean error is the pass",
        _always({"status": 400, "code": "content_filter", "message": _FILTER}),
        expect_error=True,
    ),
    Case(
        "prefill-refused",
        "fallback refuses prefill",
        "every stream cut half-way on the primary; the fallback refuses a prefill",
        _refusing_prefill,
        stream=True,
        needs=("prefill",),
    ),
    Case(
        "outage",
        "primary down, then healthy",
        "503 for 60 s, then healthy: 20 requests, one every 4 s from t = 2 s",
        _outage,
        outage=(60.0, 4.0, 20),
    ),
    Case(
        "accounting",
        "fail-over accounting",
        "502, reset, 503, then healthy: the client's account vs the journal",
        _primary(script=[{"status": 502}, {"fault": "reset"}, {"status": 503}]),
        accounting=True,
    ),
)


def missing_features(case: Case) -> List[str]:
    """What ``case`` needs that this simulator lacks: model keys, or faults (``fault:NAME``)."""
    known = {f.name for f in dataclasses.fields(ModelSpec)}
    known.update(f"fault:{name}" for name in FAULTS)
    return [need for need in case.needs if need not in known]
