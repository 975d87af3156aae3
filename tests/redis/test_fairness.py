"""Clients sharing a rate limit on Redis take turns: fair shares, no lost turn, the limit's rate."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Tuple

import cometsync
from cometsync.testing import completion_body, json_response

KEY = "sk-fair-secret-0123456789"
MSG = [{"role": "user", "content": "hi"}]
RPM = 1200  # a turn every 50 ms; the burst is one second's worth: 20
CLIENTS, THREADS = 4, 2
RUN = 2.2  # seconds of back-to-back calls
TIMEOUT = 1.0  # each caller waits for 7 others at 50 ms: 0.35 s in line at most


class Instant:
    """A transport that answers 200 at once and notes when each client's request left."""

    def __init__(self, sent: List[Tuple[float, int]], who: int) -> None:
        self._sent = sent
        self._who = who

    def send(self, request: Any, timeout: Any) -> cometsync.Response:
        self._sent.append((time.monotonic(), self._who))
        return json_response(200, completion_body("hi"))

    def close(self) -> None:
        pass


def test_clients_sharing_redis_are_served_in_turn(redis_db: Any, patient_url: str) -> None:
    """4 clients x 2 threads at 1200 rpm: equal shares, no call fails, the rate is the limit."""
    sent: List[Tuple[float, int]] = []
    clients = [
        cometsync.Client(
            api_key=KEY,
            transport=Instant(sent, who),
            shared_state=patient_url,
            rate_limit=cometsync.RateLimit(rpm=RPM),
            timeout=TIMEOUT,
            max_retries=0,
        )
        for who in range(CLIENTS)
    ]
    errors: Dict[str, int] = {}
    slowest = [0.0]
    lock = threading.Lock()
    start = time.monotonic() + 0.1
    stop = start + RUN

    def run(client: cometsync.Client) -> None:
        time.sleep(max(0.0, start - time.monotonic()))
        while time.monotonic() < stop:
            began = time.monotonic()
            try:
                client.chat.completions.create(model="m", messages=MSG)
            except cometsync.CometError as exc:
                with lock:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            with lock:
                slowest[0] = max(slowest[0], time.monotonic() - began)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        assert c.stats()["shared"]["store"]["reachable"]
        c.close()
    assert errors == {}  # no PoolTimeoutError: every caller's turn came within its timeout
    steady = sorted(t for t, _ in sent if t >= start + 1.0)  # after the one-second burst
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) * 60
    assert abs(rate - RPM) <= 0.1 * RPM, rate
    shares = [sum(1 for t, who in sent if who == w and t >= start + 1.0) for w in range(CLIENTS)]
    mean = len(steady) / CLIENTS
    assert max(shares) - min(shares) <= max(3, 0.2 * mean), shares  # each gets its turn
    assert slowest[0] < 0.35 + 0.4, slowest  # waits are the line's length, not a lottery
