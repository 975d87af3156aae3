"""What a first-token limit costs on slow-but-healthy models, to choose ``Timeout.first_token``.

Streams go over loopback sockets to the simulator, whose models are healthy but slow to their
first token (``ttft_ms``: lognormal). For each budget, calls run on a two-model chain (a limit
that abandons the primary moves to an equally slow fallback) and on a one-model chain (the
limit is retried there). Every time (latencies, budgets, backoff, the protections' windows)
is scaled by ``scale`` so a run takes seconds; results are reported in unscaled seconds.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import cometsync
from cometsync import (
    AdaptiveLimiter,
    Cooldowns,
    FullJitter,
    Protections,
    RetryBudget,
    RetryPolicy,
    Timeout,
)
from simulator import Simulator

__all__ = ["BUDGETS", "PROFILES", "Profile", "measure", "table"]

MSGS = [{"role": "user", "content": "Summarize CometAPI in one sentence."}]


@dataclass(frozen=True)
class Profile:
    """A slow-but-healthy model: its time to first token is lognormal (median, sigma)."""

    name: str
    median_s: float
    sigma: float

    def share_above(self, seconds: float) -> float:
        """The share of first tokens slower than ``seconds`` (the lognormal tail)."""
        z = (math.log(seconds) - math.log(self.median_s)) / self.sigma
        return 0.5 * math.erfc(z / math.sqrt(2))


PROFILES = (
    Profile("chat, first token 2-5 s", 3.0, 0.3),
    Profile("reasoning, first token ~20 s", 20.0, 0.5),
)
BUDGETS: Sequence[Optional[float]] = (None, 5.0, 10.0, 15.0, 30.0, 60.0)


def _client(base_url: str, chain: Sequence[str], budget: Optional[float], scale: float) -> Any:
    protections = Protections(
        budget=RetryBudget(window=10.0 * scale),
        limiter=AdaptiveLimiter(decrease_every=1.0 * scale, skip_after=1.0 * scale),
        cooldown=Cooldowns(
            cooldown=5.0 * scale,
            window=30.0 * scale,
            probe_timeout=60.0 * scale,
            probe_poll=0.1 * scale,
        ),
    )
    return cometsync.Client(
        api_key="sk-bench",
        base_url=base_url,
        fallback_models=list(chain[1:]),
        retry=RetryPolicy(backoff=FullJitter(base=0.5 * scale, cap=8.0 * scale)),
        timeout=Timeout(
            connect=5.0,
            read=120.0 * scale,
            first_token=None if budget is None else budget * scale,
        ),
        max_workers=16,
        protections=protections,
    )


def _one(client: Any, model: str) -> Dict[str, Any]:
    start = time.monotonic()
    try:
        stream = client.chat.completions.create(model=model, messages=MSGS, stream=True)
    except cometsync.APIError as error:
        return {"ok": False, "ttft": None, "attempts": error.attempts}
    ttft = time.monotonic() - start
    stream.get_final_completion()
    return {"ok": True, "ttft": ttft, "attempts": stream.attempts, "model": stream.model}


def _percentile(values: List[float], q: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def run_point(
    profile: Profile,
    budget: Optional[float],
    chain: Sequence[str],
    *,
    calls: int,
    threads: int,
    scale: float,
    seed: int,
) -> Dict[str, Any]:
    """``calls`` streams on ``chain`` with this first-token budget; the row of metrics."""
    ttft = {
        "dist": "lognormal",
        "median": profile.median_s * 1000.0 * scale,
        "sigma": profile.sigma,
    }
    models = {m: {"ttft_ms": ttft, "token_ms": 1} for m in chain}
    lock = threading.Lock()
    results: List[Dict[str, Any]] = []
    with Simulator({"models": models}, seed=seed) as sim:
        client = _client(sim.base_url, chain, budget, scale)
        with client, ThreadPoolExecutor(threads) as pool:
            for row in pool.map(lambda _: _one(client, chain[0]), range(calls)):
                with lock:
                    results.append(row)
    attempts = [a for r in results for a in r["attempts"]]
    abandoned = [a for a in attempts if a.error and "no first token" in a.error]
    ttfts = [r["ttft"] / scale for r in results if r["ttft"] is not None]
    return {
        "profile": profile.name,
        "chain": len(chain),
        "budget_s": budget,
        "calls": calls,
        "success_rate": round(sum(r["ok"] for r in results) / calls, 4),
        "answered_by_primary": round(
            sum(r["ok"] and r.get("model") == chain[0] for r in results) / calls, 4
        ),
        "attempts_per_call": round(len(attempts) / calls, 3),
        "abandoned_share": round(len(abandoned) / max(1, len(attempts)), 4),
        "expected_above_budget": None if budget is None else round(profile.share_above(budget), 4),
        "ttft_p50_s": None if not ttfts else round(_percentile(ttfts, 0.5) or 0.0, 2),
        "ttft_p99_s": None if not ttfts else round(_percentile(ttfts, 0.99) or 0.0, 2),
    }


def measure(
    *, calls: int, threads: int, scale: float, seed: int, budgets: Sequence[Optional[float]]
) -> List[Dict[str, Any]]:
    """Every profile x budget x chain (two models, then one)."""
    rows = []
    for profile in PROFILES:
        for chain in (("primary", "fallback"), ("primary",)):
            for budget in budgets:
                rows.append(
                    run_point(
                        profile,
                        budget,
                        chain,
                        calls=calls,
                        threads=threads,
                        scale=scale,
                        seed=seed,
                    )
                )
    return rows


def table(rows: Sequence[Dict[str, Any]]) -> str:
    """The rows as an aligned table."""
    from ._report import format_table

    headers = [
        "profile",
        "models",
        "first_token s",
        "success",
        "by primary",
        "attempts/call",
        "abandoned",
        "lognormal tail",
        "ttft p50 s",
        "ttft p99 s",
    ]
    keys = [
        "profile",
        "chain",
        "budget_s",
        "success_rate",
        "answered_by_primary",
        "attempts_per_call",
        "abandoned_share",
        "expected_above_budget",
        "ttft_p50_s",
        "ttft_p99_s",
    ]
    body = [[("None" if k == "budget_s" and r[k] is None else r[k]) for k in keys] for r in rows]
    return format_table(headers, body)
