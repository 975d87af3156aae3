"""Real processes sharing one key: with Redis the fleet keeps to the key's limit; without, 429s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest
import requests

from simulator import Simulator

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-fleet-key-000000000000"
RPM = 600
PROCESSES, THREADS = 4, 8
SCENARIO = {"models": {"m": {}}, "rate_limits": {"rpm": RPM}}


def drain(sim: Simulator, leave: int) -> None:
    """Spend the simulator's minute-long burst (in process, no sockets) but ``leave`` requests."""
    with requests.Session() as s:
        s.mount("http://", sim.adapter())
        left = RPM
        while left > leave:
            r = s.post(
                sim.base_url + "/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=5,
            )
            left = int(r.headers["x-ratelimit-remaining-requests"])


def run_fleet(sim: Simulator, redis_url: str, seconds: float) -> List[Dict[str, Any]]:
    """Start the fleet together once every process is set up; returns each one's counts."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sim.base_url, redis_url, str(THREADS), str(RPM)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.redis.fleet_worker", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    start = time.time() + 0.2
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(f"{start!r} {start + seconds!r}\n")
        p.stdin.flush()
    return [json.loads(p.communicate(timeout=30)[0].strip().splitlines()[-1]) for p in procs]


def journal_after(sim: Simulator, seq: int) -> List[Dict[str, Any]]:
    return [r for r in sim.journal(seq) if r["route"].endswith("/chat/completions")]


@pytest.mark.slow
@pytest.mark.socket
def test_a_fleet_sharing_redis_keeps_to_the_keys_limit(redis_db: Any, redis_url: str) -> None:
    """4 processes x 8 threads: within 5% of 600 rpm with no 429, where alone they get many."""
    with Simulator(SCENARIO) as sim:
        drain(sim, leave=20)
        seq = sim.journal()[-1]["seq"]
        counts = run_fleet(sim, redis_url, seconds=4.2)
        records = journal_after(sim, seq)
        ok = sorted(r["t"] for r in records if r["status"] == 200)
        limited = sum(1 for r in records if r["status"] == 429)
        # The steady rate: successes after the first second's permitted burst (10 requests at
        # 600 rpm), as intervals between the first and the last (processes may start late).
        steady = [t for t in ok if t >= ok[0] + 1.0]
        span = steady[-1] - steady[0]
        assert span >= 2.5, (counts, [round(t - ok[0], 2) for t in ok])
        rate = (len(steady) - 1) / span * 60
        assert sum(c["failed"] for c in counts) == 0, [c["errors"] for c in counts]
        assert all(c["store"]["reachable"] for c in counts)
        assert limited <= 2, f"{limited} 429s with shared state"
        assert abs(rate - RPM) <= 0.05 * RPM, (
            f"fleet rate {rate:.0f} rpm: {[round(t - ok[0], 2) for t in ok]}"
        )

        sim.reset()
        drain(sim, leave=20)
        seq = sim.journal()[-1]["seq"]
        run_fleet(sim, "-", seconds=2.5)
        alone = sum(1 for r in journal_after(sim, seq) if r["status"] == 429)
        assert alone >= 15, f"only {alone} 429s without shared state"
