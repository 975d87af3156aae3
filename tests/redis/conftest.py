"""Redis fixtures: each test session starts its own redis-server on a free port (pytest-redis).

Without redis-server the Redis tests skip with one line saying how to install it; under CI
(CI=true) they fail instead, because there they must run.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Iterator

import pytest

redis = pytest.importorskip(
    "redis", reason="the redis package is missing: pip install -e '.[test]'"
)
factories = pytest.importorskip(
    "pytest_redis.factories", reason="pytest-redis is missing: pip install -e '.[test]'"
)

INSTALL_HINT = (
    "redis-server not found; Redis tests skipped "
    "(install it: sudo apt-get install redis-server, or run make test as root)"
)

# A second server the tests may stop and start again (Redis going away mid-run).
redis_proc_restartable = factories.redis_proc(port=None)


def require_redis_server() -> None:
    """Skip (or, under CI, fail) when redis-server is not installed."""
    if shutil.which("redis-server"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("redis-server is missing under CI=true: the Redis tests must run there")
    pytest.skip(INSTALL_HINT)


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """URL of a redis-server started for this test session (db 0)."""
    require_redis_server()
    proc = request.getfixturevalue("redis_proc")
    return f"redis://{proc.host}:{proc.port}/0"


@pytest.fixture
def patient_url(redis_url: str) -> str:
    """The server's URL with 5 s socket timeouts (URL options win over cometsync's 50 ms), for
    tests about sharing that must not fall back to local state on a loaded machine."""
    return redis_url + "?socket_timeout=5&socket_connect_timeout=5"


@pytest.fixture
def redis_db(redis_url: str) -> Iterator[Any]:
    """A client of the session's server, its database emptied before the test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def restartable_redis(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A redis-server executor the test may ``stop()`` and ``start()``; running again after."""
    require_redis_server()
    proc = request.getfixturevalue("redis_proc_restartable")
    yield proc
    if not proc.running():
        proc.start()
