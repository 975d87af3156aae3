"""Over real sockets: closing a client closes its pooled sockets at once (not when the garbage
collector runs), and an echoed key is scrubbed whichever transport carried it."""

from __future__ import annotations

import socket
from typing import Any, List

import pytest
import requests

import cometsync
from cometsync._transport import RequestsTransport
from simulator import Simulator

from .scripted_server import Reply, ScriptedServer

pytestmark = pytest.mark.socket


def pooled_sockets(client: cometsync.Client) -> List[socket.socket]:
    """The sockets of the idle connections in the client's urllib3 pools (either transport)."""
    transport: Any = client._shared.transport
    if hasattr(transport, "session"):
        managers = [a.poolmanager for a in transport.session.adapters.values()]
    else:
        managers = [transport.manager]
    found = []
    for manager in managers:
        pools = manager.pools
        for key in list(pools.keys()):
            queue = pools[key].pool
            for conn in list(queue.queue) if queue is not None else []:
                if conn is not None and conn.sock is not None:
                    found.append(conn.sock)
    return found


@pytest.mark.parametrize("with_session", [False, True])
def test_close_closes_every_pooled_socket_now(with_session: bool) -> None:
    """Even while kept errors (resets) still reference the pool, close() closes its sockets."""
    scenario = {"models": {"m1": {"latency_ms": 2, "script": [{"fault": "reset"}] * 4}}}
    with Simulator(scenario) as sim:
        transport = RequestsTransport(pool_maxsize=8) if with_session else None
        client = cometsync.Client(
            api_key="sk-close-0123456789",
            base_url=sim.base_url,
            max_retries=0,
            transport=transport,
        )
        request = {"model": "m1", "messages": [{"role": "user", "content": "x"}]}
        kept = list(client.chat.completions.map([request] * 40, return_exceptions=True))
        assert sum(isinstance(r, cometsync.APIConnectionError) for r in kept) == 4
        held = pooled_sockets(client)
        assert held and all(s.fileno() != -1 for s in held)
        client.close()
        if transport is not None:
            transport.close()  # a transport passed in is the caller's to close
        assert [s for s in held if s.fileno() != -1] == []


@pytest.mark.parametrize("with_session", [False, True])
def test_an_echoed_key_is_scrubbed_over_real_sockets(
    server: ScriptedServer, with_session: bool
) -> None:
    """Over both transports, a 401 echoing the key (body, header, redirect) exposes none of it."""
    key = "sk-SocketEcho-5f9a0c3e7b1d2468ace0"
    echo = f"you sent {key.lower()[:30]}"
    server.script = [
        Reply(401, {"error": {"message": echo, "code": key}}, {"x-echo": key, "x-request-id": key}),
        Reply(302, "moved", {"Location": f"https://elsewhere.invalid/?k={key}"}),
    ]
    kwargs: Any = {"session": requests.Session()} if with_session else {}
    with cometsync.Client(api_key=key, base_url=server.base_url, **kwargs) as client:
        for _ in range(2):
            with pytest.raises(cometsync.APIStatusError) as info:
                client.chat.completions.create(
                    model="m1", messages=[{"role": "user", "content": "x"}]
                )
            error = info.value
            text = " ".join(
                [str(error), repr(error.body), repr(dict(error.headers)), str(error.request_id)]
                + [repr(a) for a in error.attempts]
            ).lower()
            low = key.lower()
            assert [low[i : i + 8] for i in range(len(low) - 7) if low[i : i + 8] in text] == []
    if with_session:
        kwargs["session"].close()
