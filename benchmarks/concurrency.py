"""Throughput of the bounded pool, and attempt amplification under rate limits, vs the simulator.

Run: ``python -m benchmarks.concurrency [--reps 3]``. The simulator runs in its own process
(``python -m simulator``); what it saw is read back from its journal (``/_sim/journal``).

1. ``map`` at ``max_workers=32``, 320 requests, 100 ms latency: throughput as a share of the
   ideal 32 / 0.1 s, and the most requests the server had in flight at any moment.
2. The ``rate-limited`` preset (300 rpm, 8 in flight per key), 64 threads calling ``create``
   on one client: attempts per request and requests completed, protections on and off.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Tuple

import requests
from requests.adapters import HTTPAdapter

import cometsync

KEY = "sk-bench-concurrency"
MSGS = [{"role": "user", "content": "hi"}]


class Sim:
    """``python -m simulator`` in a child process, on a free port."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.url = line.split("listening on ", 1)[1]
        self.base_url = self.url + "/v1"

    def reset(self) -> None:
        requests.post(self.url + "/_sim/reset", timeout=5).raise_for_status()

    def journal(self) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        while True:
            since = out[-1]["seq"] if out else 0
            page = requests.get(self.url + f"/_sim/journal?since={since}", timeout=10).json()
            page = page if isinstance(page, list) else page.get("records", [])
            page = [r for r in page if r["seq"] > since]
            if not page:
                return out
            out += page

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def peak_in_flight(journal: List[Dict[str, Any]]) -> int:
    """The most requests the server was working on at once (journal start + latency)."""
    events: List[Tuple[float, int]] = []
    for r in journal:
        start = float(r["t"])
        events += [(start, 1), (start + float(r.get("latency_ms") or 0) / 1000.0, -1)]
    peak = now = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):  # ends before starts on ties
        now += delta
        peak = max(peak, now)
    return peak


def raw_pass(url: str, workers: int, n: int) -> float:
    """The same requests with a plain requests.Session and ThreadPoolExecutor (the baseline)."""
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=workers))
    body = {"model": "m1", "messages": MSGS}
    headers = {"Authorization": f"Bearer {KEY}"}

    def one(_: int) -> int:
        return session.post(url, json=body, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(workers)))  # open the pool's connections first
        began = time.perf_counter()
        statuses = list(pool.map(one, range(n)))
        elapsed = time.perf_counter() - began
    session.close()
    assert statuses == [200] * n
    return elapsed


def throughput(reps: int) -> None:
    workers, n, latency = 32, 320, 0.1
    ideal = n / (workers / latency)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"models": {"m1": {"latency_ms": latency * 1000}}}, f)
    sim = Sim("--scenario", f.name)
    try:
        shares, raws, peaks = [], [], []
        for _ in range(reps):  # alternate, so both see the same machine load
            raws.append(ideal / raw_pass(sim.base_url + "/chat/completions", workers, n))
            with cometsync.Client(api_key=KEY, base_url=sim.base_url, max_workers=workers) as c:
                warm = ({"model": "m1", "messages": MSGS} for _ in range(workers))
                list(c.chat.completions.map(warm))  # open the pool's connections first
                sim.reset()
                began = time.perf_counter()
                work = ({"model": "m1", "messages": MSGS} for _ in range(n))
                results = list(c.chat.completions.map(work))
                elapsed = time.perf_counter() - began
            assert len(results) == n
            shares.append(ideal / elapsed)
            peaks.append(peak_in_flight(sim.journal()))
        print(
            f"map, max_workers={workers}, {n} requests at {latency * 1000:g} ms, {reps} runs: "
            f"cometsync median {statistics.median(shares):.1%} of ideal "
            f"({', '.join(f'{s:.1%}' for s in shares)}); plain requests + ThreadPoolExecutor "
            f"median {statistics.median(raws):.1%} ({', '.join(f'{s:.1%}' for s in raws)}); "
            f"ratio {statistics.median(shares) / statistics.median(raws):.2f}; "
            f"server peak in flight {max(peaks)} (max_workers {workers})"
        )
    finally:
        sim.close()
        os.unlink(f.name)


def hammer(sim: Sim, protections: cometsync.Protections, max_workers: int, n: int) -> str:
    threads = 64
    sim.reset()
    done: List[int] = []
    failed: List[str] = []
    lock = threading.Lock()
    client = cometsync.Client(
        api_key=KEY, base_url=sim.base_url, max_workers=max_workers, protections=protections
    )

    def work(k: int) -> None:
        for _ in range(n // threads):
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=16)
                with lock:
                    done.append(k)
            except cometsync.APIError as exc:
                with lock:
                    failed.append(type(exc).__name__)

    began = time.perf_counter()
    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - began
    client.close()
    attempts = len([r for r in sim.journal() if r.get("route", "").endswith("/chat/completions")])
    total = len(done) + len(failed)
    return (
        f"{attempts / total:.2f} attempts/request, {len(done)}/{total} completed, {elapsed:.1f} s"
    )


def rate_limited(n: int) -> None:
    sim = Sim("--preset", "rate-limited")
    try:
        runs = [
            ("protections on,  max_workers=8 (default)", cometsync.Protections(), 8),
            ("protections on,  max_workers=64", cometsync.Protections(), 64),
            ("protections off, max_workers=8", cometsync.Protections.off(), 8),
            ("protections off, max_workers=64", cometsync.Protections.off(), 64),
        ]
        for name, protections, workers in runs:
            print(f"rate-limited, 64 threads, {n} requests, {name}: ", end="", flush=True)
            print(hammer(sim, protections, workers, n))
    finally:
        sim.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="throughput runs (median reported)")
    parser.add_argument("--requests", type=int, default=384, help="requests in the 429 runs")
    args = parser.parse_args()
    throughput(args.reps)
    rate_limited(args.requests)


if __name__ == "__main__":
    main()
