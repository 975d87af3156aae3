"""The shared model decides as the local protections do: breaker and retry budget, step by step.

The shared breaker and budget (``guards.admission``, and its Lua twin) re-state the rules of
``guards.cooldowns`` and ``guards.budget``; these tests replay one random sequence through
both, so a change to one that is not made to the other fails here.
"""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest

from cometsync._policy import Classification
from cometsync.guards import Cooldowns, RetryBudget
from cometsync.guards import admission as model
from cometsync.guards.budget import BudgetState
from cometsync.guards.cooldowns import FAILURE, NEUTRAL, OK, CooldownState, breaker_outcome


def _verdict(kind: str, retry_after: Any) -> Classification:
    if kind == "ok":
        return Classification(ok=True)
    status = {"429": 429, "400": 400, "400-context": 400}.get(kind, 500)
    fallback = kind != "400"  # a context-length 400 allows a fallback
    return Classification(
        ok=False,
        retry=fallback,
        fallback=fallback,
        error=SimpleNamespace(status_code=status),  # type: ignore[arg-type]
        retry_after=retry_after,
    )


@pytest.mark.parametrize(("seed", "cap"), [(0, None), (1, None), (2, None), (3, 16.0), (4, 16.0)])
def test_shared_breaker_matches_the_local_cooldowns(seed: int, cap: Any) -> None:
    """Gate decisions, retry refusals and cooldown ends agree over 3,000 random steps."""
    rng = random.Random(seed)
    config = Cooldowns(failures=3, cooldown=2.0, max_cooldown=cap, window=10.0)
    local = CooldownState(config)
    state: model.State = {}
    now = 1000.0
    for step in range(3000):
        now += rng.choice([0.0, 0.01, 0.3, 1.0, 4.0]) * rng.random()
        if rng.random() < 0.4:
            argv = model.admit_argv(
                now, model.GATE, 0, 0, 0, config.probe_timeout, config.probe_poll, 1e9, 60
            )
            verdict, _ = model.admit(state, argv)
            assert (local.admit("m", now) is None) == (verdict in ("go", "probe")), step
            peek = model.admit_argv(now, model.PEEK, 0, 0, 0, 60, 0.1, 1e9, 60)
            refused = local.refuse_retry("m", now) is not None
            assert refused == (model.admit(state, peek)[0] != "go"), step
        else:
            kind = rng.choice(["ok", "500", "500", "500", "429", "400", "400-context"])
            retry_after = rng.choice([None, None, 0.5, 30.0])
            local.observe("m", _verdict(kind, retry_after), now)
            code = {"ok": model.OK, "500": model.FAIL}.get(kind, model.NEUTRAL)
            assert (
                breaker_outcome(_verdict(kind, retry_after))
                == {model.OK: OK, model.FAIL: FAILURE, model.NEUTRAL: NEUTRAL}[code]
            )
            model.observe(
                state,
                model.observe_argv(
                    now,
                    code,
                    -1.0 if retry_after is None else retry_after,
                    -1.0,
                    0,
                    0,
                    0,
                    0,
                    config.failures,
                    config.cooldown,
                    config.max_cooldown or 0.0,
                    config.window,
                    60,
                ),
            )
        b = local.models.get("m")
        assert (b.open_until if b is not None else None) == state.get("open"), step


@pytest.mark.parametrize("seed", range(3))
def test_shared_budget_matches_the_local_budget(seed: int) -> None:
    """Retry grants agree with the local budget's over 3,000 random calls and retries."""
    rng = random.Random(seed)
    config = RetryBudget(ratio=0.2, min_retries=3, window=10.0)
    local = BudgetState(config, 8)
    state: model.State = {}
    now = 1000.0
    for step in range(3000):
        now += rng.choice([0.0, 0.05, 0.5, 3.0]) * rng.random()
        retry = rng.random() < 0.5
        argv = model.budget_argv(now, retry, config.ratio, 3.0, config.window)
        if retry:
            assert model.budget(state, argv) == local.allow(now), step
        else:
            local.on_call(now)
            model.budget(state, argv)
