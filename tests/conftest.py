"""Suite-wide: without redis-server the Redis tests are left out, said in one line (not in CI)."""

from __future__ import annotations

import os
import shutil
from typing import Any, List

REDIS_MISSING = shutil.which("redis-server") is None and os.environ.get("CI") != "true"
REDIS_NOTE = (
    "redis-server not found: tests/redis skipped "
    "(install it: sudo apt-get install redis-server, or run make test as root)"
)

# Under CI the Redis tests are collected regardless, and fail without redis-server.
collect_ignore: List[str] = ["redis"] if REDIS_MISSING else []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say once, at the end of the run, that the Redis tests did not run and how to fix it."""
    if REDIS_MISSING:
        terminalreporter.write_line(REDIS_NOTE, yellow=True)
