"""What shared state costs per call: Redis round trips on loopback, median and p99.

Two measurements, both against a redis-server this module starts on a free port (or
``--url``):

- each script alone (admission at the gate and before sending, observation, budget);
- whole calls through ``Client.chat.completions.create`` with an in-process transport that
  answers at once, with ``shared_state`` (Redis) and without it (the same rate limit kept in
  memory): the difference is what Redis adds to a call.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

import cometsync
from cometsync.guards import admission as model
from cometsync.guards.store import RedisStore
from cometsync.testing import FakeClock, completion_body, json_response

__all__ = ["measure", "redis_server"]

MSG = [{"role": "user", "content": "hi"}]


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port, no persistence; yields its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server not found: sudo apt-get install redis-server (or --url)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        try:
            for _ in range(200):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                time.sleep(0.01)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(5)


def _percentiles(samples: List[float]) -> Dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"median_us": round(statistics.median(ordered) * 1e6, 1), "p99_us": round(p99 * 1e6, 1)}


def _time(fn: Callable[[], Any], n: int) -> Dict[str, float]:
    for _ in range(min(50, n)):
        fn()  # warm up: connections, script cache
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return _percentiles(samples)


class _Instant:
    """A transport that answers every request at once with a small completion."""

    def send(self, request: Any, timeout: Any) -> cometsync.Response:
        return json_response(200, completion_body("hi"))

    def close(self) -> None:
        pass


def measure(url: str, n: int) -> List[Dict[str, Any]]:
    """Rows of (what, median_us, p99_us): each script, then calls without and with Redis."""
    clock = FakeClock()
    store = RedisStore(url, "rtt", clock)
    rows: List[Dict[str, Any]] = []
    now = time.time()
    ops: Dict[str, Callable[[], Any]] = {
        "admit (a call's one trip)": lambda: store.admit(
            "s",
            "m",
            model.admit_argv(
                now, model.ALL, 1e9, 1e12, 300, 60, 0.1, 1, 60, -20.0, True, 0.2, 10, 10
            ),
        ),
        "admit (pacing a retry)": lambda: store.admit(
            "s", "m", model.admit_argv(now, model.SEND, 1e9, 1e12, 300, 60, 0.1, 1, 60)
        ),
        "observe (failure)": lambda: store.observe(
            "s", "x", model.observe_argv(now, model.FAIL, -1, -1, 0, 0, 0, 0, 1e9, 5, 60, 30, 60)
        ),
        "budget (a retry)": lambda: store.budget("s", model.budget_argv(now, True, 1e9, 1e9, 10)),
    }
    for name, fn in ops.items():
        rows.append({"what": name, **_time(fn, n)})
    store.close()
    limit = cometsync.RateLimit(rpm=1e9, tpm=1e12)  # never waits: measures the bookkeeping
    for label, shared in (("call, rate limit in memory", None), ("call, shared on Redis", url)):
        client = cometsync.Client(
            api_key="sk-rtt-benchmark", transport=_Instant(), rate_limit=limit, shared_state=shared
        )
        with client:
            rows.append(
                {
                    "what": label,
                    **_time(lambda c=client: c.chat.completions.create(model="m", messages=MSG), n),
                }
            )
            store_stats = client.stats()["shared"]["store"]
        if store_stats.get("failures"):
            # Redis answered slower than the 50 ms timeout: calls went on locally for a while,
            # which makes the figure below too good. Rerun on a quieter machine.
            rows[-1]["redis_timeouts"] = store_stats["failures"]
    base, shared_row = rows[-2], rows[-1]
    rows.append(
        {
            "what": "Redis adds per call",
            "median_us": round(shared_row["median_us"] - base["median_us"], 1),
            "p99_us": round(shared_row["p99_us"] - base["p99_us"], 1),
        }
    )
    return rows


def run(url: Optional[str], n: int) -> List[Dict[str, Any]]:
    """``measure`` against ``url``, or against a redis-server started for the run."""
    if url is not None:
        return measure(url, n)
    with redis_server() as started:
        return measure(started, n)
