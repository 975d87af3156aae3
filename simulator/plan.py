"""The plan of a reply: which step answers (script, outage, load, faults) and how slowly.

The decisions come in a fixed order and draw from the core's one ``random.Random`` in a fixed
order too: the load draw (only above capacity), one draw per fault rule whether it hits or not,
the latency, then the token delays of a stream. So the same seed and the same requests plan the
same replies.
"""

from __future__ import annotations

import random
from typing import Any, List, NamedTuple, Optional, Tuple

from .scenario_types import Latency, ModelSpec, Step

__all__ = ["MAX_WAIT_S", "Plan", "decide", "pace"]

#: No planned wait is longer (a lognormal tail or a load factor could give any number, and a
#: driver's ``Event.wait`` overflows past ~292 years).
MAX_WAIT_S = 3600.0


class Plan(NamedTuple):
    """What was decided for one admitted request.

    Attributes:
        step: the scripted, outage, load or fault step; None for a normal answer.
        cause: ``ok``, ``script``, ``outage``, ``load`` or ``fault`` (``script``: the model's
            script position must advance).
        slow: the load's latency factor (1.0 at or under capacity).
        latency: seconds before the status line.
        first: seconds between the status line and a stream's first chunk (``ttft_ms``).
    """

    step: Optional[Step]
    cause: str
    slow: float
    latency: float
    first: float = 0.0


def decide(
    spec: ModelSpec,
    t: float,
    script_pos: int,
    inflight: int,
    stream: bool,
    rng: random.Random,
) -> Plan:
    """Decide in order: script, outage (at ``t`` seconds since start), load, faults, latency.

    ``inflight`` counts the model's requests in flight including this one.
    """
    step: Optional[Step] = None
    cause = "ok"
    if script_pos < len(spec.script):
        step, cause = spec.script[script_pos], "script"
    if step is None:
        for outage in spec.outages:
            if outage.start <= t < outage.end:
                step, cause = outage.step, "outage"
                break
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
        # Time to first token: the head goes at once, the first chunk waits (what a client's
        # first-token limit must catch while a read of the head succeeds).
        return Plan(step, cause, slow, 0.0, min(spec.ttft.sample(rng) * slow, MAX_WAIT_S))
    else:
        latency_dist = spec.latency
    return Plan(step, cause, slow, min(latency_dist.sample(rng) * slow, MAX_WAIT_S))


def pace(
    chunks: List[Tuple[float, Any]],
    spec: ModelSpec,
    slow: float,
    rng: random.Random,
    first: float = 0.0,
) -> List[Tuple[float, Any]]:
    """A stream's events spaced by the model's token delay, the first after ``first`` seconds.

    The role chunk and the first content chunk come together (after ``first``: the time to
    first token), ``[DONE]`` right after the last event, every other event one token delay
    after the one before.
    """
    token = spec.token
    fixed = token.dist == "fixed"
    delay = token.ms / 1000.0 * slow
    return [
        (
            first
            if i == 0
            else 0.0
            if (i == 1 and spec.ttft is not None) or obj == "[DONE]"
            else min(delay if fixed else token.sample(rng), MAX_WAIT_S),
            obj,
        )
        for i, (_, obj) in enumerate(chunks)
    ]
