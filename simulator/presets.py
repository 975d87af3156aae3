"""The documented scenario presets (``healthy``, ``flaky``, ``rate-limited``, ``outage``...).

Prices are USD per million tokens, in the range of the public list prices.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Dict, List, Mapping

from .scenario_parse import parse_scenario
from .scenario_types import Scenario

__all__ = ["FLAKY_CHAIN", "PRESETS"]

_PRICES = {
    "gpt-4o-mini": {"input": 0.15, "output": 0.6},
    "gpt-4o": {"input": 2.5, "output": 10.0},
    "claude-3-5-haiku-latest": {"input": 0.8, "output": 4.0},
    "deepseek-chat": {"input": 0.27, "output": 1.1},
    "gemini-2.0-flash": {"input": 0.1, "output": 0.4},
    # Embedding models (model_type "embedding" from their ids): input tokens only, so the
    # output price is not given (null in the catalog, never a made-up 0).
    "text-embedding-3-small": {"input": 0.02},
    "text-embedding-3-large": {"input": 0.13},
}
_DIMENSIONS = {"text-embedding-3-large": 3072}


def _models(**overrides: Dict[str, Any]) -> Dict[str, Any]:
    """Every preset model with its price, plus per-model overrides."""
    return {
        mid: {
            "pricing": dict(price),
            **({"dimensions": _DIMENSIONS[mid]} if mid in _DIMENSIONS else {}),
            **overrides.get(mid.replace("-", "_").replace(".", "_"), {}),
        }
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
    # The primary is down (503, no Retry-After) from the start for 6 s, then healthy for good:
    # a client should serve from the fallback, then be back on the primary within seconds.
    "flap": {
        "models": _models(
            gpt_4o_mini={"latency_ms": 5, "outages": [{"start": 0, "end": 6, "status": 503}]}
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
