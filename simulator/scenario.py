"""The scenario: what the fake CometAPI answers, as frozen data, plus parsing and presets.

A scenario is plain data so it can live in a JSON or TOML file, travel over the admin API and
be compared in tests. Parsing validates every key and names the offending field path
(``models.m1.faults[2].rate: must be between 0 and 1``) because a typo in a fault scenario
otherwise silently produces a healthy server and a green test that proves nothing.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

__all__ = [
    "FAULTS",
    "PRESETS",
    "STREAM_FAULTS",
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
    "load_scenario",
    "parse_scenario",
]

#: Transport-level faults: answers that are not a well-formed JSON response.
FAULTS = ("reset", "hang", "malformed", "empty", "truncate", "html", "error", "stall")
#: Faults that break a stream after ``after_chunks`` events (default: half-way).
STREAM_FAULTS = ("truncate", "reset", "malformed", "error", "stall")


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
    """How one model behaves."""

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


# ---------------------------------------------------------------------------------------------
# Parsing. Each helper takes the value and its path, and raises ScenarioError naming the path.

_Path = str
_STEP_KEYS = {
    "status",
    "retry_after",
    "retry_after_ms",
    "code",
    "message",
    "fault",
    "latency_ms",
    "after_chunks",
}


def _obj(value: Any, path: _Path, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ScenarioError(path, f"must be an object, got {type(value).__name__}")
    for key in value:
        if key not in allowed:
            raise ScenarioError(
                _join(path, str(key)), f"unknown key (expected one of {', '.join(sorted(allowed))})"
            )
    return value


def _join(path: _Path, key: str) -> str:
    return f"{path}.{key}" if path else key


def _num(value: Any, path: _Path, lo: float = 0.0, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(path, f"must be a number, got {value!r}")
    if not (lo <= value <= hi) or math.isnan(value):
        if hi == math.inf:
            raise ScenarioError(path, f"must be at least {lo:g}, got {value!r}")
        raise ScenarioError(path, f"must be between {lo:g} and {hi:g}, got {value!r}")
    return float(value)


def _int(value: Any, path: _Path, lo: int = 0, hi: int = 2**63) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(path, f"must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ScenarioError(path, f"must be between {lo} and {hi}, got {value!r}")
    return value


def _str(value: Any, path: _Path) -> str:
    if not isinstance(value, str) or not value:
        raise ScenarioError(path, f"must be a non-empty string, got {value!r}")
    return value


def _status(value: Any, path: _Path) -> int:
    return _int(value, path, 200, 599)


def _list(value: Any, path: _Path) -> List[Any]:
    if not isinstance(value, (list, tuple)):
        raise ScenarioError(path, f"must be a list, got {type(value).__name__}")
    return list(value)


def _latency(value: Any, path: _Path) -> Latency:
    if not isinstance(value, Mapping):
        return Latency(ms=_num(value, path))
    dist = value.get("dist", "fixed")
    if dist == "fixed":
        _obj(value, path, {"dist", "ms"})
        return Latency(ms=_num(value.get("ms", 0), _join(path, "ms")))
    if dist == "uniform":
        _obj(value, path, {"dist", "low", "high"})
        low = _num(value.get("low", 0), _join(path, "low"))
        high = _num(value.get("high", low), _join(path, "high"), lo=low)
        return Latency(dist="uniform", low=low, high=high)
    if dist == "lognormal":
        _obj(value, path, {"dist", "median", "sigma"})
        if "median" not in value:
            raise ScenarioError(_join(path, "median"), "is required for a lognormal distribution")
        median = _num(value["median"], _join(path, "median"))
        sigma = _num(value.get("sigma", 0.5), _join(path, "sigma"), hi=5.0)
        return Latency(dist="lognormal", median=median, sigma=sigma)
    raise ScenarioError(_join(path, "dist"), f"must be fixed, uniform or lognormal, got {dist!r}")


def _step(value: Any, path: _Path, extra: set[str] = set()) -> Step:  # noqa: B006 (read-only)
    if not isinstance(value, Mapping):
        return Step(status=_status(value, path))
    _obj(value, path, _STEP_KEYS | extra)
    fault = value.get("fault")
    if fault is not None and fault not in FAULTS:
        raise ScenarioError(_join(path, "fault"), f"must be one of {', '.join(FAULTS)}")
    if "status" not in value and fault is None:
        raise ScenarioError(path, "needs a status or a fault")
    status = _status(value["status"], _join(path, "status")) if "status" in value else 200
    if fault == "html" and "status" not in value:
        status = 502
    after = value.get("after_chunks")
    if after is not None and fault not in STREAM_FAULTS:
        raise ScenarioError(
            _join(path, "after_chunks"), f"applies only to the faults {', '.join(STREAM_FAULTS)}"
        )
    ra = value.get("retry_after")
    ra_ms = value.get("retry_after_ms")
    code = value.get("code")
    message = value.get("message")
    return Step(
        status=status,
        retry_after=None if ra is None else _num(ra, _join(path, "retry_after")),
        retry_after_ms=None if ra_ms is None else _num(ra_ms, _join(path, "retry_after_ms")),
        code=None if code is None else _str(code, _join(path, "code")),
        message=None if message is None else _str(message, _join(path, "message")),
        fault=fault,
        latency=_latency(value["latency_ms"], _join(path, "latency_ms"))
        if "latency_ms" in value
        else None,
        after_chunks=None if after is None else _int(after, _join(path, "after_chunks")),
    )


def _fault(value: Any, path: _Path) -> Fault:
    obj = _obj(value, path, _STEP_KEYS | {"rate"})
    if "rate" not in obj:
        raise ScenarioError(_join(path, "rate"), "is required")
    rate = _num(obj["rate"], _join(path, "rate"), hi=1.0)
    return Fault(rate=rate, step=_step({k: v for k, v in obj.items() if k != "rate"}, path))


def _outage(value: Any, path: _Path) -> Outage:
    obj = _obj(value, path, _STEP_KEYS | {"start", "end"})
    for key in ("start", "end"):
        if key not in obj:
            raise ScenarioError(_join(path, key), "is required")
    start = _num(obj["start"], _join(path, "start"))
    end = _num(obj["end"], _join(path, "end"), lo=start)
    rest = {k: v for k, v in obj.items() if k not in ("start", "end")}
    rest.setdefault("status", 503)
    return Outage(start=start, end=end, step=_step(rest, path))


def _pricing(value: Any, path: _Path) -> Pricing:
    obj = _obj(value, path, {"input", "output", "per_request", "per_second", "currency"})
    kwargs: Dict[str, Any] = {
        k: _num(obj[k], _join(path, k))
        for k in ("input", "output", "per_request", "per_second")
        if k in obj
    }
    if "currency" in obj:
        kwargs["currency"] = _str(obj["currency"], _join(path, "currency"))
    return Pricing(**kwargs)


def _load(value: Any, path: _Path) -> Load:
    keys = {"capacity", "latency_slope", "failure_slope", "max_failure", "status", "retry_after"}
    obj = _obj(value, path, keys)
    if "capacity" not in obj:
        raise ScenarioError(_join(path, "capacity"), "is required")
    kwargs: Dict[str, Any] = {"capacity": _int(obj["capacity"], _join(path, "capacity"), lo=1)}
    for key in ("latency_slope", "failure_slope"):
        if key in obj:
            kwargs[key] = _num(obj[key], _join(path, key))
    if "max_failure" in obj:
        kwargs["max_failure"] = _num(obj["max_failure"], _join(path, "max_failure"), hi=1.0)
    if "status" in obj:
        kwargs["status"] = _status(obj["status"], _join(path, "status"))
    if "retry_after" in obj:
        kwargs["retry_after"] = _num(obj["retry_after"], _join(path, "retry_after"))
    return Load(**kwargs)


def _model(model_id: str, value: Any, path: _Path) -> ModelSpec:
    keys = {"latency_ms", "ttft_ms", "token_ms", "script", "faults", "outages", "pricing"}
    obj = _obj(value, path, keys | {"load", "provider"})
    return ModelSpec(
        id=model_id,
        latency=_latency(obj.get("latency_ms", 0), _join(path, "latency_ms")),
        ttft=_latency(obj["ttft_ms"], _join(path, "ttft_ms")) if "ttft_ms" in obj else None,
        token=_latency(obj.get("token_ms", 0), _join(path, "token_ms")),
        script=tuple(
            _step(v, f"{path}.script[{i}]")
            for i, v in enumerate(_list(obj.get("script", []), _join(path, "script")))
        ),
        faults=tuple(
            _fault(v, f"{path}.faults[{i}]")
            for i, v in enumerate(_list(obj.get("faults", []), _join(path, "faults")))
        ),
        outages=tuple(
            _outage(v, f"{path}.outages[{i}]")
            for i, v in enumerate(_list(obj.get("outages", []), _join(path, "outages")))
        ),
        pricing=_pricing(obj.get("pricing", {}), _join(path, "pricing")),
        load=_load(obj["load"], _join(path, "load")) if "load" in obj else None,
        provider=_str(obj.get("provider", _provider(model_id)), _join(path, "provider")),
    )


def _provider(model_id: str) -> str:
    """A plausible provider name for the catalog, guessed from the model id."""
    for prefix, provider in (
        ("claude", "anthropic"),
        ("gemini", "google"),
        ("deepseek", "deepseek"),
        ("llama", "meta"),
        ("mistral", "mistral"),
        ("qwen", "alibaba"),
    ):
        if model_id.startswith(prefix):
            return provider
    return "openai"


def parse_scenario(data: Any) -> Scenario:
    """Build a Scenario from plain data (decoded JSON or TOML); raise ScenarioError if invalid."""
    obj = _obj(data, "", {"seed", "models", "rate_limits", "max_body_bytes", "hang_s"})
    models_obj = obj.get("models", {})
    if not isinstance(models_obj, Mapping):
        raise ScenarioError("models", f"must be an object, got {type(models_obj).__name__}")
    if not models_obj:
        raise ScenarioError("models", "must define at least one model")
    models: Dict[str, ModelSpec] = {}
    for model_id, spec in models_obj.items():
        models[_str(model_id, "models")] = _model(model_id, spec, f"models.{model_id}")
    rl = _obj(obj.get("rate_limits", {}), "rate_limits", {"rpm", "tpm", "concurrency"})
    limits = RateLimits(
        **{k: _int(v, f"rate_limits.{k}", lo=1) for k, v in rl.items() if v is not None}
    )
    kwargs: Dict[str, Any] = {}
    if "max_body_bytes" in obj:
        kwargs["max_body_bytes"] = _int(obj["max_body_bytes"], "max_body_bytes", lo=1)
    if "hang_s" in obj:
        kwargs["hang_s"] = _num(obj["hang_s"], "hang_s")
    seed = obj.get("seed")
    return Scenario(
        models=MappingProxyType(models),
        seed=None if seed is None else _int(seed, "seed", lo=-(2**63)),
        rate_limits=limits,
        **kwargs,
    )


def _read_toml(path: Path) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.9/3.10 only
        try:
            import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise ScenarioError(
                "", "TOML scenarios need tomli on Python < 3.11: pip install 'cometsync[simulator]'"
            ) from exc
    with path.open("rb") as fh:
        return tomllib.load(fh)


ScenarioLike = Union[None, Scenario, Mapping[str, Any], str, "os.PathLike[str]"]


def load_scenario(source: ScenarioLike = None) -> Scenario:
    """A Scenario from None (the default), a Scenario, a dict, a preset name or a file path.

    Raises:
        ScenarioError: the source is invalid; the message names the field or the file.
    """
    if source is None:
        return PRESETS["healthy"]
    if isinstance(source, Scenario):
        return source
    if isinstance(source, Mapping):
        return parse_scenario(source)
    if isinstance(source, str) and source in PRESETS:
        return PRESETS[source]
    path = Path(source)
    if not path.is_file():
        raise ScenarioError(
            "", f"{str(source)!r} is neither a preset ({', '.join(PRESETS)}) nor a file"
        )
    try:
        if path.suffix.lower() == ".toml":
            data = _read_toml(path)
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise ScenarioError("", f"cannot read {path.name}: {exc}") from exc
    return parse_scenario(data)


# ---------------------------------------------------------------------------------------------
# Presets. Prices are USD per million tokens, in the range of the public list prices.

_PRICES = {
    "gpt-4o-mini": {"input": 0.15, "output": 0.6},
    "gpt-4o": {"input": 2.5, "output": 10.0},
    "claude-3-5-haiku-latest": {"input": 0.8, "output": 4.0},
    "deepseek-chat": {"input": 0.27, "output": 1.1},
    "gemini-2.0-flash": {"input": 0.1, "output": 0.4},
}


def _models(**overrides: Dict[str, Any]) -> Dict[str, Any]:
    """Every preset model with its price, plus per-model overrides."""
    return {
        mid: {"pricing": dict(price), **overrides.get(mid.replace("-", "_").replace(".", "_"), {})}
        for mid, price in _PRICES.items()
    }


def _flaky_faults(scale: float) -> List[Dict[str, Any]]:
    return [
        {"status": 429, "rate": 0.08 * scale, "retry_after": 0.2},
        {"status": 503, "rate": 0.04 * scale},
        {"status": 524, "rate": 0.02 * scale},
        {"status": 502, "rate": 0.02 * scale},
        {"fault": "reset", "rate": 0.01 * scale},
        {"fault": "malformed", "rate": 0.01 * scale},
    ]


_FAST = {"dist": "uniform", "low": 2, "high": 12}

_PRESET_DATA: Dict[str, Dict[str, Any]] = {
    # No faults, no limits, no latency: the default, and the baseline of every benchmark.
    "healthy": {"models": _models()},
    # ~18% of first attempts fail on the primary (429 with Retry-After, 502/503/524, resets,
    # malformed bodies), a little less on the others: a 3-model chain with retries succeeds.
    "flaky": {
        "models": _models(
            gpt_4o_mini={"latency_ms": _FAST, "faults": _flaky_faults(1.0)},
            claude_3_5_haiku_latest={"latency_ms": _FAST, "faults": _flaky_faults(0.8)},
            gemini_2_0_flash={"latency_ms": _FAST, "faults": _flaky_faults(0.6)},
            gpt_4o={"latency_ms": _FAST, "faults": _flaky_faults(0.5)},
            deepseek_chat={"latency_ms": _FAST, "faults": _flaky_faults(0.5)},
        )
    },
    # Tight per-key limits: 64 threads hammering one key get truthful 429s.
    "rate-limited": {
        "models": _models(gpt_4o_mini={"latency_ms": {"dist": "uniform", "low": 5, "high": 20}}),
        "rate_limits": {"rpm": 300, "tpm": 60000, "concurrency": 8},
    },
    # The primary is down (503) from 2 s to 8 s after start or reset; the others are healthy.
    "outage": {
        "models": _models(
            gpt_4o_mini={
                "latency_ms": 5,
                "outages": [{"start": 2, "end": 8, "status": 503, "retry_after": 1}],
            }
        )
    },
    # Slow and failing: lognormal latency with a long tail and ~15% 5xx on the primary.
    "brownout": {
        "models": _models(
            gpt_4o_mini={
                "latency_ms": {"dist": "lognormal", "median": 400, "sigma": 0.8},
                "faults": [
                    {"status": 503, "rate": 0.06},
                    {"status": 504, "rate": 0.04},
                    {"status": 524, "rate": 0.03},
                    {"status": 502, "rate": 0.02},
                ],
            },
            claude_3_5_haiku_latest={
                "latency_ms": {"dist": "lognormal", "median": 150, "sigma": 0.5},
                "faults": [{"status": 503, "rate": 0.03}],
            },
        )
    },
    # Low capacity per model: above 4 requests in flight, latency and 503s rise with load,
    # so clients that retry hard keep the overload going (a retry storm).
    "storm": {
        "models": _models(
            **{
                name: {
                    "latency_ms": {"dist": "uniform", "low": 20, "high": 60},
                    "load": {"capacity": 4, "latency_slope": 1.0, "failure_slope": 0.4},
                }
                for name in (
                    "gpt_4o_mini",
                    "gpt_4o",
                    "claude_3_5_haiku_latest",
                    "deepseek_chat",
                    "gemini_2_0_flash",
                )
            }
        )
    },
}

#: The documented presets, by name.
PRESETS: Mapping[str, Scenario] = MappingProxyType(
    {name: parse_scenario(data) for name, data in _PRESET_DATA.items()}
)

#: The three models the ``flaky`` preset degrades most, in fallback-chain order.
FLAKY_CHAIN = ("gpt-4o-mini", "claude-3-5-haiku-latest", "gemini-2.0-flash")
