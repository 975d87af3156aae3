"""Per-call throughput over loopback against the simulator: cometsync and its peers.

The simulator runs in its own process (``python -m simulator --port 0``), so the measured
process holds only the client side. The clients take turns in interleaved rounds (machine
noise hits them all alike) and the report gives medians and ratios to cometsync.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

__all__ = ["TARGETS", "measure", "simulator_process", "verdict"]

MODEL = "gpt-4o-mini"
KEY = "sk-bench-throughput"
MESSAGES = [{"role": "user", "content": "Say hello."}]

Caller = Callable[[], Any]

#: Issue 16's targets, single-threaded: cometsync's calls/s at least this many times each peer's.
TARGETS = {"urllib3": 0.8, "requests": 1.3, "openai": 2.0}


class simulator_process:
    """``python -m simulator`` on a free loopback port, with ``latency_ms`` on the model."""

    def __init__(self, latency_ms: float = 0.0) -> None:
        self.latency_ms = latency_ms
        self.url = ""
        self._proc: Optional[subprocess.Popen[str]] = None
        self._dir = tempfile.TemporaryDirectory()

    def __enter__(self) -> simulator_process:
        scenario = Path(self._dir.name) / "scenario.json"
        scenario.write_text(json.dumps({"models": {MODEL: {"latency_ms": self.latency_ms}}}))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--port", "0", "--scenario", str(scenario)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.__exit__()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.url = line.split("listening on ", 1)[1]
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            if self._proc.stdout is not None:
                self._proc.stdout.close()
        self._dir.cleanup()


def _clients(url: str, pool: int) -> Iterator[Tuple[str, Caller, Callable[[], None]]]:
    """``(name, one call, close)`` for every client that is installed."""
    import cometsync

    base = url + "/v1"
    comet = cometsync.Client(api_key=KEY, base_url=base, max_workers=pool)
    yield (
        "cometsync",
        lambda: comet.chat.completions.create(model=MODEL, messages=MESSAGES),
        comet.close,
    )
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=pool))
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"model": MODEL, "messages": MESSAGES}
    chat = base + "/chat/completions"

    def bare_requests() -> Any:
        response = session.post(chat, json=body, headers=headers)
        response.raise_for_status()
        return response.json()

    yield "requests", bare_requests, session.close
    import urllib3

    manager = urllib3.PoolManager(maxsize=pool)
    raw = json.dumps(body).encode()
    u3_headers = {**headers, "Content-Type": "application/json"}

    def bare_urllib3() -> Any:
        response = manager.request("POST", chat, body=raw, headers=u3_headers)
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
        return json.loads(response.data)

    yield "urllib3", bare_urllib3, manager.clear
    try:
        import openai
    except ImportError:
        return
    oa = openai.OpenAI(api_key=KEY, base_url=base)
    yield (
        "openai",
        lambda: oa.chat.completions.create(model=MODEL, messages=MESSAGES),  # type: ignore[arg-type]
        oa.close,
    )


def _rate(call: Caller, calls: int, workers: int) -> float:
    """Calls per second for ``calls`` calls on ``workers`` threads."""
    if workers == 1:
        started = time.perf_counter()
        for _ in range(calls):
            call()
        return calls / (time.perf_counter() - started)
    per = max(1, calls // workers)

    def loop() -> None:
        for _ in range(per):
            call()

    with ThreadPoolExecutor(workers) as pool:
        started = time.perf_counter()
        for future in [pool.submit(loop) for _ in range(workers)]:
            future.result()
        return per * workers / (time.perf_counter() - started)


def measure(
    *, rounds: int = 7, calls: int = 300, workers: int = 1, latency_ms: float = 0.0
) -> List[Dict[str, Any]]:
    """Interleaved rounds of every client; rows with median calls/s and ratio to cometsync."""
    with simulator_process(latency_ms) as sim:
        clients = list(_clients(sim.url, max(workers, 1)))
        try:
            for _, call, _ in clients:  # warm up: connections, imports, caches
                for _ in range(20):
                    call()
            rates: Dict[str, List[float]] = {name: [] for name, _, _ in clients}
            # CPU time of this process per call: on a shared machine it moves much less than
            # wall time when other processes take the cores (the simulator's is not in it).
            cpu: Dict[str, List[float]] = {name: [] for name, _, _ in clients}
            for _ in range(rounds):
                for name, call, _ in clients:
                    before = time.process_time()
                    rates[name].append(_rate(call, calls, workers))
                    cpu[name].append((time.process_time() - before) / calls * 1e6)
        finally:
            for _, _, close in clients:
                close()
    ours = statistics.median(rates["cometsync"])
    return [
        {
            "client": name,
            "workers": workers,
            "latency_ms": latency_ms,
            "calls_per_s": round(statistics.median(values), 1),
            "min": round(min(values), 1),
            "max": round(max(values), 1),
            "vs_cometsync": round(statistics.median(values) / ours, 3),
            "cometsync_x": round(ours / statistics.median(values), 3),
            "cpu_us_per_call": round(statistics.median(cpu[name]), 1),
        }
        for name, values in rates.items()
    ]


def verdict(rows: List[Dict[str, Any]]) -> List[str]:
    """Per peer, cometsync's rate as a multiple of its rate; for one thread, against the target."""
    lines = []
    for row in rows:
        target = TARGETS.get(row["client"])
        if target is None:
            continue
        line = f"cometsync = {row['cometsync_x']:.2f}x {row['client']}"
        if row["workers"] == 1:
            mark = "met" if row["cometsync_x"] >= target else "MISSED"
            line += f" (target >= {target:g}x: {mark})"
        lines.append(line)
    return lines
