"""The scenario: what the fake CometAPI answers, and where one comes from.

The public face of four parts: the frozen data (:mod:`simulator.scenario_types`), its
validation (:mod:`simulator.scenario_parse`), the presets (:mod:`simulator.presets`) and, here,
:func:`load_scenario`, which accepts a Scenario, a dict, a preset name or a JSON/TOML file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Union

from .presets import FLAKY_CHAIN, PRESETS
from .scenario_parse import parse_scenario
from .scenario_types import (
    FAULTS,
    STREAM_FAULTS,
    ZERO,
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
    "FAULTS",
    "FLAKY_CHAIN",
    "PRESETS",
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
    "ScenarioLike",
    "Step",
    "load_scenario",
    "parse_scenario",
]


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
