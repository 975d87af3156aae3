"""The bounded pool over real sockets: connection reuse, and (with the simulator) a stress run."""

from __future__ import annotations

import logging

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
