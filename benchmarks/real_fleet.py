"""A real fleet: N processes x M threads on one key against one simulator, with or without Redis.

The simulator's key allows ``rpm`` requests per minute with a minute-long burst; the burst is
spent first (in process) so that the run shows the steady state within seconds. Each process
is a ``Client(rate_limit=RateLimit(rpm))``: alone, each paces itself to the limit, so the
fleet sends N times too much; sharing Redis, the fleet paces itself to the limit once. What
the simulator's journal shows is reported: requests, 429s, the steady rate of successes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import requests

from simulator import Simulator

__all__ = ["KEY", "drain", "measure", "run_fleet", "scenario", "summarize"]

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-fleet-key-000000000000"


def scenario(rpm: int) -> Dict[str, Any]:
    """One instant model behind a per-key request limit."""
    return {"models": {"m": {}}, "rate_limits": {"rpm": rpm}}


def drain(sim: Simulator, rpm: int, leave: int) -> None:
    """Spend the simulator's minute-long burst (in process, no sockets) but ``leave`` requests."""
    with requests.Session() as s:
        s.mount("http://", sim.adapter())
        left = rpm
        while left > leave:
            r = s.post(
                sim.base_url + "/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=5,
            )
            left = int(r.headers["x-ratelimit-remaining-requests"])


def run_fleet(
    sim: Simulator,
    redis_url: Optional[str],
    seconds: float,
    processes: int,
    threads: int,
    rpm: int,
    timeout: float = 30.0,
) -> List[Dict[str, Any]]:
    """Start the processes together once each is set up; returns each one's counts."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sim.base_url, redis_url or "-", str(threads), str(rpm), repr(timeout)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.real_fleet_worker", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for p in procs:
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("a fleet process failed to start")
    start = time.time() + 0.2
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(f"{start!r} {start + seconds!r}\n")
        p.stdin.flush()
    return [json.loads(p.communicate(timeout=60)[0].strip().splitlines()[-1]) for p in procs]


def summarize(sim: Simulator, since: int, counts: List[Dict[str, Any]]) -> Dict[str, Any]:
    """What the journal shows after ``since``: requests, 429s, and the steady rate of 200s.

    The steady rate leaves out the first second (the burst a limit allows, one second's worth)
    and is measured between the first and last success after it, so processes that start a
    little late do not skew it.
    """
    records = [r for r in sim.journal(since) if r["route"].endswith("/chat/completions")]
    ok = sorted(r["t"] for r in records if r["status"] == 200)
    steady = [t for t in ok if ok and t >= ok[0] + 1.0]
    span = steady[-1] - steady[0] if len(steady) > 1 else 0.0
    return {
        "requests": len(records),
        "ok": len(ok),
        "rate_limited": sum(1 for r in records if r["status"] == 429),
        "steady_rpm": round((len(steady) - 1) / span * 60, 1) if span > 0 else None,
        "steady_span_s": round(span, 2),
        "calls_ok": sum(c["ok"] for c in counts),
        "calls_failed": sum(c["failed"] for c in counts),
        "ok_per_process": [c["ok"] for c in counts],
        "slowest_call_s": round(max(c.get("slowest_s", 0.0) for c in counts), 2),
        "errors": [c.get("errors", {}) for c in counts],
        "redis_reachable": all(c.get("store", {}).get("reachable", True) for c in counts),
    }


def measure(
    redis_url: str,
    *,
    processes: int,
    threads: int,
    rpm: int,
    seconds: float,
    timeout: float = 30.0,
) -> List[Dict[str, Any]]:
    """One run sharing ``redis_url``, one with per-process protections only; a row each."""
    rows = []
    with Simulator(scenario(rpm)) as sim:
        for label, target in (("shared on Redis", redis_url), ("per process", None)):
            sim.reset()
            drain(sim, rpm, leave=max(2, rpm // 30))
            since = sim.journal()[-1]["seq"]
            counts = run_fleet(sim, target, seconds, processes, threads, rpm, timeout)
            rows.append({"fleet": label, "limit_rpm": rpm, **summarize(sim, since, counts)})
    return rows
