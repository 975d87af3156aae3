"""A fake CometAPI that injects faults, for testing retry and fallback code offline.

One fault model (:class:`Core`) and its drivers: a socket server (:class:`Simulator`, the CLI
``python -m simulator``), an in-process ``requests`` adapter (:class:`SimulatorAdapter`), and a
pytest fixture (``comet_simulator``).
"""

from __future__ import annotations

from .adapter import SimulatorAdapter
from .core import END_KINDS, Core, Reply, redact
from .scenario import (
    FAULTS,
    FLAKY_CHAIN,
    PRESETS,
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
    load_scenario,
    parse_scenario,
)
from .server import Simulator, SimulatorServer

__all__ = [
    "Core",
    "END_KINDS",
    "FAULTS",
    "FLAKY_CHAIN",
    "Fault",
    "Latency",
    "Load",
    "ModelSpec",
    "Outage",
    "PRESETS",
    "Pricing",
    "RateLimits",
    "Reply",
    "STREAM_FAULTS",
    "Scenario",
    "ScenarioError",
    "Simulator",
    "SimulatorAdapter",
    "SimulatorServer",
    "Step",
    "load_scenario",
    "parse_scenario",
    "redact",
]
