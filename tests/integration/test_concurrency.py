"""The bounded pool over real sockets: connection reuse, and (with the simulator) a stress run."""

from __future__ import annotations

import logging
import threading
from typing import Any, List

import pytest

import cometsync
from cometsync.testing import completion_body

from .scripted_server import Reply, ScriptedServer

KEY = "sk-live-SECRET-conc"
MSGS = [{"role": "user", "content": "hi"}]


@pytest.mark.socket
def test_map_reuses_about_max_workers_connections(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Many calls through map open at most max_workers connections and never overflow the pool."""
    workers = 4
    server.script = [Reply(200, completion_body(str(i))) for i in range(60)]
    requests = (
        {"model": "m1", "messages": [{"role": "user", "content": str(i)}]} for i in range(60)
    )
    with (
        caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"),
        cometsync.Client(api_key=KEY, base_url=server.base_url, max_workers=workers) as client,
    ):
        results = list(client.chat.completions.map(requests))
    assert len(results) == 60
    assert server.connections <= workers
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def _simulator() -> Any:
    module = pytest.importorskip("simulator")
    if not hasattr(module, "Simulator"):
        pytest.skip("the simulator has not landed on this branch")
    return module.Simulator


@pytest.mark.socket
@pytest.mark.slow
def test_stress_many_threads_against_the_simulator_lose_and_duplicate_nothing() -> None:
    """Thousands of calls from map and from extra threads each get exactly their own answer."""
    simulator_class = _simulator()
    n, extra_threads, per_thread = 1000, 8, 25
    with (
        simulator_class("flaky", seed=11) as sim,
        cometsync.Client(
            api_key=KEY,
            base_url=sim.base_url,
            max_workers=16,
            fallback_models=["claude-3-5-haiku-latest", "gemini-2.0-flash"],
        ) as client,
    ):
        side: List[Any] = []
        lock = threading.Lock()

        def hammer(k: int) -> None:
            for i in range(per_thread):
                try:
                    r: Any = client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": f"t{k}-{i}"}]
                    )
                except cometsync.APIError as exc:
                    r = exc
                with lock:
                    side.append(r)

        threads = [threading.Thread(target=hammer, args=(k,)) for k in range(extra_threads)]
        for t in threads:
            t.start()
        items = (
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "word" * i}]}
            for i in range(n)
        )
        results = list(client.chat.completions.map(items, return_exceptions=True))

        def _prompt_tokens(i: int) -> int:
            # A separate client: the stress run may have spent the shared retry budget, and
            # this reference call must not fail on the flaky preset's injected faults.
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "word" * i}]}
            with cometsync.Client(
                api_key=KEY,
                base_url=sim.base_url,
                retry=cometsync.RetryPolicy(max_retries=20, backoff=cometsync.Constant(0.01)),
                protections=cometsync.Protections.off(),
            ) as checker:
                return checker.chat.completions.create(**body).usage.prompt_tokens

        for t in threads:
            t.join()
        assert len(results) == n and len(side) == extra_threads * per_thread
        done = [r for r in [*results, *side] if isinstance(r, cometsync.ChatCompletion)]
        assert all(isinstance(r, (cometsync.ChatCompletion, cometsync.APIError)) for r in results)
        assert len({r.id for r in done}) == len(done)  # one answer per call, none shared
        assert len(done) >= 0.95 * (n + len(side))
        # Prompt i is 4*i characters long, so its usage says which request an answer is for.
        base = _prompt_tokens(0)
        for i, r in enumerate(results):
            if isinstance(r, cometsync.ChatCompletion):
                assert r.usage.prompt_tokens - base == i
