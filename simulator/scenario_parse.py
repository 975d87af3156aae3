"""Scenario validation: plain data (decoded JSON or TOML) in, a frozen Scenario out.

Every key is checked and the offending field path is named
(``models.m1.faults[2].rate: must be between 0 and 1``) because a typo in a fault scenario
otherwise silently produces a healthy server and a green test that proves nothing.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, Dict, List, Mapping

from .scenario_types import (
    CONTEXT_LENGTH_EXCEEDED,
    FAULTS,
    STREAM_FAULTS,
    Fault,
    Latency,
    Load,
    ModelSpec,
    Outage,
    Pricing,
    RateLimits,
    Scenario,
    ScenarioError,
    Step,
)

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HANG_S",
    "MAX_NUMBER",
    "MAX_OUTAGE_S",
    "MAX_RETRY_AFTER_S",
    "MAX_SLOPE",
    "parse_scenario",
]

#: The bounds on scenario numbers: beyond them a scenario is refused with the field named,
#: because an absurd number (``latency_ms: 1e308``) would otherwise break every request later.
#: Latencies (``latency_ms``, ``ttft_ms``, ``token_ms``, their ``low``/``high``/``median``) are
#: at most ``hang_s`` seconds: a longer wait is a hang, which the ``hang`` fault models.
MAX_HANG_S = 3600.0
MAX_RETRY_AFTER_S = 86400.0
MAX_OUTAGE_S = 1e7
MAX_SLOPE = 1000.0
MAX_BODY_BYTES = 1 << 26
MAX_NUMBER = 1e9  # any other number (prices)


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


def _show(value: Any) -> str:
    """A short repr: a 400-digit integer or a huge list must not flood the message."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of about {value.bit_length() * 30103 // 100000 + 1} digits"
    if isinstance(value, (list, dict)):
        return f"a {'list' if isinstance(value, list) else 'object'}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _num(value: Any, path: _Path, lo: float = 0.0, hi: float = MAX_NUMBER, unit: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(path, f"must be a number, got {_show(value)}")
    # Compared before float(): an int beyond float range (10**400) must not overflow.
    if not (lo <= value <= hi) or (isinstance(value, float) and math.isnan(value)):
        raise ScenarioError(path, f"must be between {lo:g} and {hi:g}{unit}, got {_show(value)}")
    return float(value)


def _int(value: Any, path: _Path, lo: int = 0, hi: int = 2**63) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(path, f"must be an integer, got {_show(value)}")
    if not lo <= value <= hi:
        raise ScenarioError(path, f"must be between {lo} and {hi}, got {_show(value)}")
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


def _ms(value: Any, path: _Path, max_ms: float, lo: float = 0.0) -> float:
    """A latency in milliseconds, at most ``max_ms`` (the scenario's ``hang_s``)."""
    return _num(value, path, lo=lo, hi=max_ms, unit=" ms (at most hang_s; longer is a hang)")


def _latency(value: Any, path: _Path, max_ms: float) -> Latency:
    if not isinstance(value, Mapping):
        return Latency(ms=_ms(value, path, max_ms))
    dist = value.get("dist", "fixed")
    if dist == "fixed":
        _obj(value, path, {"dist", "ms"})
        return Latency(ms=_ms(value.get("ms", 0), _join(path, "ms"), max_ms))
    if dist == "uniform":
        _obj(value, path, {"dist", "low", "high"})
        low = _ms(value.get("low", 0), _join(path, "low"), max_ms)
        high = _ms(value.get("high", low), _join(path, "high"), max_ms, lo=low)
        return Latency(dist="uniform", low=low, high=high)
    if dist == "lognormal":
        _obj(value, path, {"dist", "median", "sigma"})
        if "median" not in value:
            raise ScenarioError(_join(path, "median"), "is required for a lognormal distribution")
        median = _ms(value["median"], _join(path, "median"), max_ms)
        sigma = _num(value.get("sigma", 0.5), _join(path, "sigma"), hi=5.0)
        return Latency(dist="lognormal", median=median, sigma=sigma)
    raise ScenarioError(
        _join(path, "dist"), f"must be fixed, uniform or lognormal, got {_show(dist)}"
    )


def _step(value: Any, path: _Path, max_ms: float, extra: set[str] = set()) -> Step:  # noqa: B006
    if not isinstance(value, Mapping):
        return Step(status=_status(value, path))
    _obj(value, path, _STEP_KEYS | extra)
    fault = value.get("fault")
    if fault is not None and (not isinstance(fault, str) or fault not in FAULTS):
        raise ScenarioError(_join(path, "fault"), f"must be one of {', '.join(FAULTS)}")
    code = value.get("code")
    if "status" not in value and fault is None and code != CONTEXT_LENGTH_EXCEEDED:
        raise ScenarioError(path, "needs a status or a fault")
    status = _status(value["status"], _join(path, "status")) if "status" in value else 200
    if code == CONTEXT_LENGTH_EXCEEDED and "status" not in value and fault is None:
        status = 400  # the code alone says it: OpenAI answers it with a 400
    if fault == "html" and "status" not in value:
        status = 502
    after = value.get("after_chunks")
    if after is not None and fault not in STREAM_FAULTS:
        raise ScenarioError(
            _join(path, "after_chunks"), f"applies only to the faults {', '.join(STREAM_FAULTS)}"
        )
    ra = value.get("retry_after")
    ra_ms = value.get("retry_after_ms")
    message = value.get("message")
    return Step(
        status=status,
        retry_after=None
        if ra is None
        else _num(ra, _join(path, "retry_after"), hi=MAX_RETRY_AFTER_S, unit=" s"),
        retry_after_ms=None
        if ra_ms is None
        else _num(ra_ms, _join(path, "retry_after_ms"), hi=MAX_RETRY_AFTER_S * 1000, unit=" ms"),
        code=None if code is None else _str(code, _join(path, "code")),
        message=None if message is None else _str(message, _join(path, "message")),
        fault=fault,
        latency=_latency(value["latency_ms"], _join(path, "latency_ms"), max_ms)
        if "latency_ms" in value
        else None,
        after_chunks=None if after is None else _int(after, _join(path, "after_chunks")),
    )


def _fault(value: Any, path: _Path, max_ms: float) -> Fault:
    obj = _obj(value, path, _STEP_KEYS | {"rate"})
    if "rate" not in obj:
        raise ScenarioError(_join(path, "rate"), "is required")
    rate = _num(obj["rate"], _join(path, "rate"), hi=1.0)
    rest = {k: v for k, v in obj.items() if k != "rate"}
    return Fault(rate=rate, step=_step(rest, path, max_ms))


def _outage(value: Any, path: _Path, max_ms: float) -> Outage:
    obj = _obj(value, path, _STEP_KEYS | {"start", "end"})
    for key in ("start", "end"):
        if key not in obj:
            raise ScenarioError(_join(path, key), "is required")
    start = _num(obj["start"], _join(path, "start"), hi=MAX_OUTAGE_S, unit=" s")
    end = _num(obj["end"], _join(path, "end"), lo=start, hi=MAX_OUTAGE_S, unit=" s")
    rest = {k: v for k, v in obj.items() if k not in ("start", "end")}
    rest.setdefault("status", 503)
    return Outage(start=start, end=end, step=_step(rest, path, max_ms))


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
            kwargs[key] = _num(obj[key], _join(path, key), hi=MAX_SLOPE)
    if "max_failure" in obj:
        kwargs["max_failure"] = _num(obj["max_failure"], _join(path, "max_failure"), hi=1.0)
    if "status" in obj:
        kwargs["status"] = _status(obj["status"], _join(path, "status"))
    if "retry_after" in obj:
        kwargs["retry_after"] = _num(
            obj["retry_after"], _join(path, "retry_after"), hi=MAX_RETRY_AFTER_S, unit=" s"
        )
    return Load(**kwargs)


def _bool(value: Any, path: _Path) -> bool:
    if not isinstance(value, bool):
        raise ScenarioError(path, f"must be true or false, got {_show(value)}")
    return value


def _model(model_id: str, value: Any, path: _Path, max_ms: float) -> ModelSpec:
    keys = {"latency_ms", "ttft_ms", "token_ms", "script", "faults", "outages", "pricing"}
    obj = _obj(
        value,
        path,
        keys | {"load", "provider", "model_type", "dimensions", "prefill", "context_window"},
    )
    window = obj.get("context_window")
    ttft = _latency(obj["ttft_ms"], _join(path, "ttft_ms"), max_ms) if "ttft_ms" in obj else None
    model_type = _str(obj.get("model_type", _model_type(model_id)), _join(path, "model_type"))
    if model_type not in MODEL_TYPES:
        raise ScenarioError(
            _join(path, "model_type"),
            f"must be one of {', '.join(MODEL_TYPES)}, got {_show(model_type)}",
        )
    return ModelSpec(
        id=model_id,
        latency=_latency(obj.get("latency_ms", 0), _join(path, "latency_ms"), max_ms),
        ttft=ttft,
        token=_latency(obj.get("token_ms", 0), _join(path, "token_ms"), max_ms),
        script=tuple(
            _step(v, f"{path}.script[{i}]", max_ms)
            for i, v in enumerate(_list(obj.get("script", []), _join(path, "script")))
        ),
        faults=tuple(
            _fault(v, f"{path}.faults[{i}]", max_ms)
            for i, v in enumerate(_list(obj.get("faults", []), _join(path, "faults")))
        ),
        outages=tuple(
            _outage(v, f"{path}.outages[{i}]", max_ms)
            for i, v in enumerate(_list(obj.get("outages", []), _join(path, "outages")))
        ),
        pricing=_pricing(obj.get("pricing", {}), _join(path, "pricing")),
        load=_load(obj["load"], _join(path, "load")) if "load" in obj else None,
        provider=_str(obj.get("provider", _provider(model_id)), _join(path, "provider")),
        prefill=_bool(obj.get("prefill", True), _join(path, "prefill")),
        context_window=None
        if window is None
        else _int(window, _join(path, "context_window"), lo=1),
        model_type=model_type,
        dimensions=_int(obj.get("dimensions", 1536), _join(path, "dimensions"), 1, 65536),
    )


MODEL_TYPES = ("text", "embedding")


def _model_type(model_id: str) -> str:
    """``embedding`` for ids that name one (``text-embedding-3-small``), else ``text``."""
    return "embedding" if "embedding" in model_id.lower() else "text"


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
    kwargs: Dict[str, Any] = {}
    if "hang_s" in obj:
        kwargs["hang_s"] = _num(obj["hang_s"], "hang_s", hi=MAX_HANG_S, unit=" s")
    max_ms = kwargs.get("hang_s", Scenario.hang_s) * 1000.0
    models: Dict[str, ModelSpec] = {}
    for model_id, spec in models_obj.items():
        model_id = _str(model_id, "models")
        models[model_id] = _model(model_id, spec, f"models.{model_id}", max_ms)
    rl = _obj(obj.get("rate_limits", {}), "rate_limits", {"rpm", "tpm", "concurrency"})
    limits = RateLimits(
        **{k: _int(v, f"rate_limits.{k}", lo=1) for k, v in rl.items() if v is not None}
    )
    if "max_body_bytes" in obj:
        kwargs["max_body_bytes"] = _int(
            obj["max_body_bytes"], "max_body_bytes", lo=1, hi=MAX_BODY_BYTES
        )
    seed = obj.get("seed")
    return Scenario(
        models=MappingProxyType(models),
        seed=None if seed is None else _int(seed, "seed", lo=-(2**63)),
        rate_limits=limits,
        **kwargs,
    )
