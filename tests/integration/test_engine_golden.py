"""For fixed seeds the virtual-time engine gives the numbers it gave before its speed work."""

from __future__ import annotations

import json
from typing import Any

from .engine_golden import GOLDEN, _normal, compute


def test_same_seed_same_benchmark_json_bit_for_bit() -> None:
    """Brooker's CLI JSON, the scenarios' rows and every call's history equal the golden file."""
    golden: Any = json.loads(GOLDEN.read_text())
    now = _normal(compute())
    assert now["brooker_cli"] == golden["brooker_cli"]
    assert now["brooker_runs"] == golden["brooker_runs"]
    for name, rows in golden["scenarios"].items():
        for old, new in zip(rows, now["scenarios"][name]):
            assert new == old, f"{name}/{old['strategy']} changed"
    assert now == golden
