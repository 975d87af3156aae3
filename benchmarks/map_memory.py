"""Peak memory of ``map`` over a million lazily generated requests, in process (no sockets).

Run: ``python -m benchmarks.map_memory [--requests 1000000] [--workers 8] [--unordered]``.

The requests come from a generator and go through ``client.chat.completions.map`` to the
simulator's in-process adapter (``SimulatorAdapter`` mounted on a ``requests.Session``, the
``healthy`` preset: no latency, no faults). The script keeps nothing of the results but a
count, so what it measures is what ``map`` holds: its window (``max(1024, 8 * max_workers)``
items), the pool, the connection and the simulator's bounded journal. Peak RSS is read from
``getrusage`` (the process's high-water mark), also before the first request.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from typing import Any, Dict, Iterator

import requests

import cometsync
from cometsync._pool import map_window
from simulator import SimulatorAdapter

BASE = "http://sim.local/v1"


def peak_rss_mb() -> float:
    """The process's peak resident set size so far, in MB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def requests_of(n: int) -> Iterator[Dict[str, Any]]:
    """``n`` distinct chat requests, made one at a time as ``map`` reads them."""
    for i in range(n):
        yield {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"request {i}: say something"}],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--unordered", action="store_true", help="map(..., ordered=False)")
    parser.add_argument("--every", type=int, default=100_000, help="progress line interval")
    args = parser.parse_args()
    session = requests.Session()
    session.mount("http://sim.local/", SimulatorAdapter("healthy", seed=0))
    client = cometsync.Client(
        api_key="sk-map-memory", base_url=BASE, session=session, max_workers=args.workers
    )
    before = peak_rss_mb()
    print(
        f"map over {args.requests:,} generated requests, max_workers={args.workers}, "
        f"{'completion' if args.unordered else 'input'} order, window "
        f"{map_window(args.workers)}; peak RSS before the first request {before:.1f} MB",
        flush=True,
    )
    began = time.perf_counter()
    done = 0
    with client:
        results = client.chat.completions.map(
            requests_of(args.requests), ordered=not args.unordered
        )
        for result in results:
            assert isinstance(result, cometsync.ChatCompletion)
            done += 1
            if done % args.every == 0:
                elapsed = time.perf_counter() - began
                print(
                    f"  {done:>9,} done, {elapsed:7.1f} s, {done / elapsed:6.0f} req/s, "
                    f"peak RSS {peak_rss_mb():.1f} MB",
                    flush=True,
                )
    elapsed = time.perf_counter() - began
    print(
        f"{done:,} requests in {elapsed:.0f} s ({done / elapsed:.0f} req/s); "
        f"peak RSS {peak_rss_mb():.1f} MB (before the first request {before:.1f} MB)",
        flush=True,
    )


if __name__ == "__main__":
    main()
