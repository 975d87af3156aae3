"""The scenario as frozen data: what the fake CometAPI answers, per model and per key.

Plain data so a scenario can live in a JSON or TOML file, travel over the admin API and be
compared in tests; :mod:`simulator.scenario_parse` builds it from untrusted input.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Tuple

__all__ = [
    "CONTEXT_LENGTH_EXCEEDED",
    "FAULTS",
    "STREAM_FAULTS",
    "ZERO",
    "Fault",
    "Latency",
    "Load",
    "ModelSpec",
    "Outage",
    "Pricing",
    "RateLimits",
    "Scenario",
    "ScenarioError",
    "Step",
]

#: Transport-level faults: answers that are not a well-formed JSON response.
FAULTS = ("reset", "hang", "malformed", "empty", "truncate", "html", "error", "stall", "eof")
#: The error code of a prompt over the model's context window (OpenAI's body when scripted).
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
#: Faults that break a stream after ``after_chunks`` events (default: half-way).
STREAM_FAULTS = ("truncate", "reset", "malformed", "error", "stall", "eof")


class ScenarioError(ValueError):
    """An invalid scenario; ``path`` names the offending field, e.g. ``models.m1.latency_ms``."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class Latency:
    """A delay distribution in milliseconds: ``fixed``, ``uniform`` or ``lognormal``."""

    dist: str = "fixed"
    ms: float = 0.0
    low: float = 0.0
    high: float = 0.0
    median: float = 0.0
    sigma: float = 0.0

    def sample(self, rng: random.Random) -> float:
        """One delay in seconds (fixed draws nothing, so adding it never shifts other draws)."""
        if self.dist == "fixed":
            return self.ms / 1000.0
        if self.dist == "uniform":
            return rng.uniform(self.low, self.high) / 1000.0
        if self.median <= 0:
            return 0.0
        return rng.lognormvariate(math.log(self.median), self.sigma) / 1000.0


ZERO = Latency()


@dataclass(frozen=True)
class Step:
    """One answer: a status (200 = normal behaviour) or a transport fault, with its details."""

    status: int = 200
    retry_after: Optional[float] = None
    retry_after_ms: Optional[float] = None
    code: Optional[str] = None
    message: Optional[str] = None
    fault: Optional[str] = None
    latency: Optional[Latency] = None
    after_chunks: Optional[int] = None


@dataclass(frozen=True)
class Fault:
    """A step drawn independently on each request with probability ``rate``."""

    rate: float
    step: Step


@dataclass(frozen=True)
class Outage:
    """A window ``[start, end)``, in seconds since start or reset, when a model answers ``step``."""

    start: float
    end: float
    step: Step


@dataclass(frozen=True)
class Pricing:
    """Catalog prices; ``input``/``output`` are per million tokens.

    A price the scenario does not give is None, served as ``null`` like CometAPI's own
    catalog: clients must see it as unknown (or not charged that way), never as free.
    """

    input: Optional[float] = None
    output: Optional[float] = None
    per_request: Optional[float] = None
    per_second: Optional[float] = None
    currency: str = "USD / M Tokens"


@dataclass(frozen=True)
class Load:
    """Degradation above ``capacity`` requests in flight on one model.

    With ``over = (in_flight - capacity) / capacity`` (0 when under capacity), latency is
    multiplied by ``1 + latency_slope * over`` and the request fails with ``status`` with
    probability ``min(max_failure, failure_slope * over)``: retries then feed the overload.
    """

    capacity: int
    latency_slope: float = 1.0
    failure_slope: float = 0.5
    max_failure: float = 0.95
    status: int = 503
    retry_after: Optional[float] = None


@dataclass(frozen=True)
class RateLimits:
    """Per API key limits: requests and tokens per minute (token buckets), requests in flight."""

    rpm: Optional[int] = None
    tpm: Optional[int] = None
    concurrency: Optional[int] = None


@dataclass(frozen=True)
class ModelSpec:
    """How one model behaves.

    ``prefill``: whether the model continues a trailing assistant message (else a 400).
    ``context_window``: prompts estimated above this many tokens get a 400
    ``context_length_exceeded`` (None: no limit).
    """

    id: str
    latency: Latency = ZERO
    ttft: Optional[Latency] = None
    token: Latency = ZERO
    script: Tuple[Step, ...] = ()
    faults: Tuple[Fault, ...] = ()
    outages: Tuple[Outage, ...] = ()
    pricing: Pricing = Pricing()
    load: Optional[Load] = None
    provider: str = "openai"
    prefill: bool = True
    context_window: Optional[int] = None
    #: ``text`` (chat) or ``embedding`` (serves ``/v1/embeddings``), as CometAPI's catalog says.
    model_type: str = "text"
    #: an embedding model's native vector size (``dimensions`` may ask for fewer).
    dimensions: int = 1536


@dataclass(frozen=True)
class Scenario:
    """The whole simulated gateway. ``models`` maps a model id to its spec (read-only)."""

    models: Mapping[str, ModelSpec] = field(default_factory=lambda: MappingProxyType({}))
    seed: Optional[int] = None
    rate_limits: RateLimits = RateLimits()
    max_body_bytes: int = 1 << 20
    hang_s: float = 300.0

    def to_summary(self) -> Dict[str, Any]:
        """A short description for the admin API."""
        return {"seed": self.seed, "models": sorted(self.models)}
