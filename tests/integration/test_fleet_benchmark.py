"""Smoke of ``python -m benchmarks fleet``: a small fleet, per-process vs shared state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from benchmarks import fleet
from benchmarks.__main__ import main


def _rows(tmp_path: Path, *args: str) -> List[Dict[str, Any]]:
    out = tmp_path / "fleet.json"
    assert main(["fleet", *args, "--json", str(out)]) == 0
    rows: List[Dict[str, Any]] = json.loads(out.read_text())
    return rows


def test_fleet_quick_shared_state_keeps_the_fleet_to_the_limit(tmp_path: Path) -> None:
    """Four processes sharing the store keep to the key's limit, told or learned; alone, not."""
    rows = _rows(tmp_path, "--quick", "--processes", "1,4")
    by = {(r["processes"], r["mode"]): r for r in rows}
    assert set(by) == {(n, m) for n in (1, 4) for m in fleet.MODES}
    alone, shared = by[(4, "per-process")], by[(4, "shared")]
    assert shared["429s"] == 0 and shared["success_rate"] == 1.0
    assert shared["sent_vs_limit"] == pytest.approx(1.0, abs=0.05)
    assert shared["attempts_per_call"] == 1.0 and shared["calls_over_timeout"] == 0
    assert alone["sent_vs_limit"] > 1.5 and alone["429s"] > 20
    assert alone["success_rate"] < 0.9
    assert shared["store_ops_per_call"] >= 2 and alone["store_ops_per_call"] is None
    assert by[(1, "shared")]["calls"] == by[(1, "per-process")]["calls"]  # alone, no difference
    learned = by[(4, "shared-learned")]  # told nothing: the gateway's headers set the pace
    assert learned["sent_vs_limit"] == pytest.approx(1.0, abs=0.05)
    assert learned["429s"] <= 15 and learned["success_rate"] == 1.0


def test_fleet_same_seed_same_numbers() -> None:
    """A seed fixes every number of a fleet run; another seed changes them."""
    one = fleet.run_fleet(3, 4, "shared", duration=6.0, warmup=1.0, seed=3)
    assert fleet.run_fleet(3, 4, "shared", duration=6.0, warmup=1.0, seed=3) == one
    assert fleet.run_fleet(3, 4, "shared", duration=6.0, warmup=1.0, seed=4) != one


def test_fleet_refuses_bad_settings() -> None:
    """An unknown mode or a warm-up longer than the run is named in the error."""
    with pytest.raises(ValueError, match="mode"):
        fleet.run_fleet(1, 1, "redis", duration=5.0)
    with pytest.raises(ValueError, match="warm-up"):
        fleet.run_fleet(1, 1, "shared", duration=5.0, warmup=6.0)
    assert main(["fleet", "--quick", "--rtt-ms", "-1"]) == 2
