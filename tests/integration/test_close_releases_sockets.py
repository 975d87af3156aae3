"""Closing a client closes its pooled sockets at once, not when the garbage collector runs."""

from __future__ import annotations

import socket
from typing import List

import pytest

import cometsync
from simulator import Simulator

pytestmark = pytest.mark.socket


def pooled_sockets(client: cometsync.Client) -> List[socket.socket]:
    """The sockets of the idle connections in the client's urllib3 pools."""
    found = []
    session = client._shared.transport.session  # type: ignore[attr-defined]
    for adapter in session.adapters.values():
        pools = adapter.poolmanager.pools
        for key in list(pools.keys()):
            queue = pools[key].pool
            for conn in list(queue.queue) if queue is not None else []:
                if conn is not None and conn.sock is not None:
                    found.append(conn.sock)
    return found


def test_close_closes_every_pooled_socket_now() -> None:
    """Even while kept errors (resets) still reference the pool, close() closes its sockets."""
    scenario = {"models": {"m1": {"latency_ms": 2, "script": [{"fault": "reset"}] * 4}}}
    with Simulator(scenario) as sim:
        client = cometsync.Client(
            api_key="sk-close-0123456789", base_url=sim.base_url, max_retries=0
        )
        request = {"model": "m1", "messages": [{"role": "user", "content": "x"}]}
        kept = list(client.chat.completions.map([request] * 40, return_exceptions=True))
        assert sum(isinstance(r, cometsync.APIConnectionError) for r in kept) == 4
        held = pooled_sockets(client)
        assert held and all(s.fileno() != -1 for s in held)
        client.close()
        assert [s for s in held if s.fileno() != -1] == []
