"""One process of a real fleet: ``threads`` threads call the simulator between two wall times.

Run by ``benchmarks.real_fleet`` as ``python -m benchmarks.real_fleet_worker BASE_URL
REDIS_URL|- THREADS RPM [TIMEOUT]``:
prints ``ready`` once set up, reads ``START STOP`` (wall times) from stdin, then prints one
JSON line: calls that succeeded and failed by ``STOP`` and the longest call that ended by
then (calls still queued for the rate limit then are abandoned: the process exits).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any, Dict

import cometsync


def main() -> None:
    """Wait for the common start, call until the common stop, report counts."""
    base_url, redis_url, threads, rpm = sys.argv[1:5]
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 30.0
    shared = None
    if redis_url != "-":
        import redis

        # A caller-owned connection with a generous timeout: this run is about sharing, and
        # a loaded machine can stall a loopback round trip past the default 50 ms.
        shared = redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    client = cometsync.Client(
        api_key="sk-fleet-key-000000000000",
        base_url=base_url,
        max_workers=int(threads),
        rate_limit=cometsync.RateLimit(rpm=float(rpm)),
        shared_state=shared,
        timeout=timeout,  # default 30 s: a thread may queue for its turn behind 31 others
    )
    counts: Dict[str, Any] = {"ok": 0, "failed": 0, "slowest_s": 0.0}
    lock = threading.Lock()
    errors: Dict[str, int] = {}

    def run() -> None:
        while time.time() < float(stop_at):
            began = time.time()
            try:
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=5
                )
                outcome = "ok"
            except cometsync.CometError as exc:
                outcome = "failed"
                with lock:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            with lock:
                if time.time() < float(stop_at):
                    counts[outcome] += 1
                    counts["slowest_s"] = max(counts["slowest_s"], time.time() - began)

    print("ready", flush=True)
    start_at, stop_at = sys.stdin.readline().split()
    time.sleep(max(0.0, float(start_at) - time.time()))
    for _ in range(int(threads)):
        threading.Thread(target=run, daemon=True).start()
    time.sleep(max(0.0, float(stop_at) - time.time()))
    with lock:
        counts["store"] = client.stats()["shared"]["store"]
        counts["errors"] = errors
        print(json.dumps(counts), flush=True)
    os._exit(0)  # threads still waiting for their turn have nothing left to show


if __name__ == "__main__":
    main()
