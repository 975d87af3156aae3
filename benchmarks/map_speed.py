"""Throughput of ``map`` and of the batch runner against submitting everything at once.

Run: ``python -m benchmarks.map_speed [--requests 400] [--reps 5] [--workers 8]``.

The simulator runs in its own process (``python -m simulator --preset flaky``); each client
has the preset's three-model chain and ``max_workers`` threads. Every repetition runs each
way of sending the same requests once, in a rotating order so all see the same machine load,
each on a fresh client (connections warmed first, the simulator reset before timing):

- ``submit all``: every request submitted at once, then every future awaited (the baseline);
- ``map``: ``chat.completions.map`` in input order (the default), and ``ordered=False``;
- ``map, old window``: the lazy map as it was, at most ``2 * max_workers`` items ahead;
- ``batch``: ``run_batch`` (what ``cometsync batch`` runs, in process) writing a JSONL output
  in completion order (the default), and ``--in-order``.

Reported: requests per second, median of the repetitions, and each median's ratio to the
``submit all`` median of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List

import cometsync
from cometsync._batch import run_batch
from cometsync._pool import bounded_map
from simulator.presets import FLAKY_CHAIN

from .concurrency import Sim

KEY = "sk-bench-map-speed"


def requests_of(n: int) -> Iterator[Dict[str, Any]]:
    for i in range(n):
        yield {
            "model": FLAKY_CHAIN[0],
            "messages": [{"role": "user", "content": f"request {i}"}],
            "max_tokens": 16,
        }


def submit_all(client: cometsync.Client, n: int, folder: str) -> int:
    futures = [client.chat.completions.submit(**r) for r in requests_of(n)]
    done = 0
    for future in futures:
        try:
            future.result()
            done += 1
        except cometsync.APIError:
            pass
    return done


def map_in_order(client: cometsync.Client, n: int, folder: str) -> int:
    results = client.chat.completions.map(requests_of(n), return_exceptions=True)
    return sum(isinstance(r, cometsync.ChatCompletion) for r in results)


def map_unordered(client: cometsync.Client, n: int, folder: str) -> int:
    results = client.chat.completions.map(requests_of(n), return_exceptions=True, ordered=False)
    return sum(isinstance(r, cometsync.ChatCompletion) for r in results)


def map_old_window(client: cometsync.Client, n: int, folder: str) -> int:
    window = 2 * client.max_workers  # what map read ahead before issue 13

    def start(request: Dict[str, Any]) -> Any:
        return client.chat.completions.submit(**request)

    results = bounded_map(start, requests_of(n), window=window, return_exceptions=True)
    return sum(isinstance(r, cometsync.ChatCompletion) for r in results)


def _batch(ordered: bool) -> Callable[[cometsync.Client, int, str], int]:
    def run(client: cometsync.Client, n: int, folder: str) -> int:
        source = os.path.join(folder, "in.jsonl")
        output = os.path.join(folder, f"out-{time.perf_counter_ns()}.jsonl")
        summary = run_batch(client, source, output, ordered=ordered)
        os.unlink(output)
        return summary.succeeded

    return run


MODES: Dict[str, Callable[[cometsync.Client, int, str], int]] = {
    "submit all": submit_all,
    "map (input order)": map_in_order,
    "map, ordered=False": map_unordered,
    "map, old window 2 x workers": map_old_window,
    "batch (completion order)": _batch(False),
    "batch --in-order": _batch(True),
}


def write_input(folder: str, n: int) -> None:
    with open(os.path.join(folder, "in.jsonl"), "w", encoding="utf-8") as handle:
        for i, request in enumerate(requests_of(n)):
            handle.write(json.dumps({"custom_id": f"r{i}", "body": request}) + "\n")


def one_run(sim: Sim, mode: str, n: int, workers: int, folder: str) -> float:
    client = cometsync.Client(
        api_key=KEY,
        base_url=sim.base_url,
        fallback_models=FLAKY_CHAIN[1:],
        max_workers=workers,
    )
    with client:
        warm = (
            {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
            for _ in range(workers)
        )
        list(client.chat.completions.map(warm, return_exceptions=True))
        sim.reset()
        began = time.perf_counter()
        succeeded = MODES[mode](client, n, folder)
        elapsed = time.perf_counter() - began
    if succeeded < n * 0.95:
        raise RuntimeError(f"{mode}: only {succeeded}/{n} succeeded")
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7, help="the simulator's seed")
    parser.add_argument(
        "--skip-old", action="store_true", help="leave out the old window (the slowest)"
    )
    args = parser.parse_args()
    names = [m for m in MODES if not (args.skip_old and m.startswith("map, old"))]
    sim = Sim("--preset", "flaky", "--seed", str(args.seed))
    rates: Dict[str, List[float]] = {mode: [] for mode in names}
    try:
        with tempfile.TemporaryDirectory() as folder:
            write_input(folder, args.requests)
            for rep in range(args.reps):
                order = names[rep % len(names) :] + names[: rep % len(names)]
                for mode in order:
                    rates[mode].append(one_run(sim, mode, args.requests, args.workers, folder))
    finally:
        sim.close()
    base = statistics.median(rates["submit all"])
    print(
        f"flaky preset, chain {' -> '.join(FLAKY_CHAIN)}, max_workers={args.workers}, "
        f"{args.requests} requests, {args.reps} runs (median req/s; ratio to submit all):"
    )
    for mode in names:
        median = statistics.median(rates[mode])
        runs = ", ".join(f"{r:.0f}" for r in rates[mode])
        print(f"  {mode:<28} {median:7.1f} req/s  {median / base:5.2f}x   ({runs})")


if __name__ == "__main__":
    main()
