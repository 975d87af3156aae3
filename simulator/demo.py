"""``make demo``: the cometsync client against the ``flaky`` preset, and what each side saw.

Starts a simulator in-process on a free loopback port, sends a few hundred chat requests
through ``cometsync`` with a three-model fallback chain from 8 threads, then prints the
client's view (success rate, attempts per request, retries by status, fallbacks, and per model
the server exchange's latency apart from the time queued in the client) next to the
simulator's own count of what it injected. Offline, well under a minute.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .scenario import FLAKY_CHAIN
from .server import Simulator

__all__ = ["main", "run"]


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def run(requests: int = 300, workers: int = 8, seed: int = 7) -> Dict[str, Any]:
    """Run the demo and return its numbers (the report is printed by :func:`main`)."""
    import cometsync  # the SDK under demonstration; the simulator itself never needs it

    primary, *fallbacks = FLAKY_CHAIN
    outcomes: List[Tuple[bool, Tuple[Any, ...]]] = []
    errors: Counter[str] = Counter()
    recorder = cometsync.MetricsRecorder()
    with Simulator("flaky", seed=seed) as sim:
        client = cometsync.Client(
            api_key="sk-demo-0000",
            base_url=sim.base_url,
            fallback_models=tuple(fallbacks),
            max_workers=workers,
            on_attempt=recorder,
        )

        def one(i: int) -> Tuple[bool, Tuple[Any, ...]]:
            messages = [{"role": "user", "content": f"demo request {i}: say something"}]
            try:
                r = client.chat.completions.create(model=primary, messages=messages)
                return True, tuple(r.attempts)
            except cometsync.APIError as exc:
                errors[type(exc).__name__] += 1
                return False, tuple(getattr(exc, "attempts", ()))

        started = time.monotonic()
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                outcomes = list(pool.map(one, range(requests)))
        finally:
            client.close()
        elapsed = time.monotonic() - started
        stats = sim.stats()
        journal = sim.journal()
    return {
        "journal": journal,
        "requests": requests,
        "elapsed": elapsed,
        "outcomes": outcomes,
        "errors": dict(errors),
        "stats": stats,
        "chain": FLAKY_CHAIN,
        "metrics": recorder.snapshot(),
    }


def _report(result: Dict[str, Any]) -> str:
    outcomes: List[Tuple[bool, Tuple[Any, ...]]] = result["outcomes"]
    n = len(outcomes)
    ok = sum(1 for success, _ in outcomes if success)
    attempts = [a for _, atts in outcomes for a in atts]
    retries: Counter[str] = Counter()
    fallbacks = 0
    latencies: Dict[str, List[float]] = {}
    queued: Dict[str, List[float]] = {}
    for a in attempts:
        status = "no response" if a.status is None else str(a.status)
        if a.status == 200:
            status = "200 bad body"
        if a.decision == "retry":
            retries[status] += 1
        elif a.decision == "fallback":
            fallbacks += 1
        if a.decision == "success":
            latencies.setdefault(a.model or "-", []).append(a.latency)
            queued.setdefault(a.model or "-", []).append(getattr(a, "queued", 0.0))
    first_fail = sum(1 for _, atts in outcomes if atts and atts[0].decision != "success")
    stats = result["stats"]
    lines = [
        f"cometsync against the simulator's `flaky` preset: {n} requests, "
        f"chain {' -> '.join(result['chain'])}, {result['elapsed']:.1f} s",
        "",
        "client side",
        f"  success rate            {ok / n:.1%} ({ok}/{n})"
        + (f", errors: {result['errors']}" if result["errors"] else ""),
        f"  attempts per request    {len(attempts) / n:.2f}",
        f"  first attempts failed   {first_fail / n:.1%}",
        f"  retries by status       {_fmt(retries) or 'none'}",
        f"  fallbacks               {fallbacks}",
        "  successful attempts, p50 / p95:",
        f"    {'model':<26} {'latency (server exchange)':>25}   {'queued (waited in client)':>25}",
    ]
    for model in result["chain"]:
        values = sorted(latencies.get(model, []))
        waits = sorted(queued.get(model, []))
        if values:
            lines.append(
                f"    {model:<26} {_percentile(values, 50) * 1000:8.1f} ms / "
                f"{_percentile(values, 95) * 1000:6.1f} ms   "
                f"{_percentile(waits, 50) * 1000:8.1f} ms / "
                f"{_percentile(waits, 95) * 1000:6.1f} ms  ({len(values)} ok)"
            )
        else:
            lines.append(f"    {model:<26} (no successful attempt)")
    injected: Counter[str] = Counter()
    per_model: Counter[str] = Counter()
    for record in result["journal"]:
        if record["cause"] not in ("ok", "admin"):
            injected[record["fault"] or str(record["status"])] += 1
            per_model[record["model"]] += 1
    lines += [
        "",
        "simulator side (its journal)",
        f"  requests received       {stats['total']}",
        f"  answers by status       {_fmt(Counter(stats['by_status']))}",
        f"  injected                {sum(injected.values())}: {_fmt(injected) or 'none'}",
        f"  injected per model      {_fmt(per_model) or 'none'}",
        f"  answers by cause        {_fmt(Counter(stats['by_cause']))}",
    ]
    return "\n".join(lines)


def _fmt(counter: Counter[str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items()))


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo and print its report."""
    parser = argparse.ArgumentParser(prog="python -m simulator.demo", description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    result = run(args.requests, args.workers, args.seed)
    print(_report(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
