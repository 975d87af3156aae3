"""CI smoke of ``python -m benchmarks``: each scenario's ``--quick`` run and its output's shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List

import pytest

from benchmarks.__main__ import main
from simulator.virtual import Engine, VirtualClock


def _run(tmp_path: Path, *args: str) -> Any:
    out = tmp_path / "out.json"
    assert main([*args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_brooker_quick_reproduces_the_headline(tmp_path: Path) -> None:
    """At 100 clients full jitter needs fewer than half the calls of plain exponential."""
    rows = _run(tmp_path, "brooker", "--quick", "--workers", "1")
    assert {tuple(sorted(r)) for r in rows} == {("calls", "clients", "strategy", "time_ms")}
    calls = {(r["clients"], r["strategy"]): r["calls"] for r in rows}
    assert calls[(100, "full")] < calls[(100, "exponential")] / 2
    assert all(r["calls"] >= r["clients"] for r in rows)  # every client writes once at least


def test_brooker_same_seed_same_numbers(tmp_path: Path) -> None:
    """A seed fixes the numbers, whatever the number of worker processes."""
    args = ["brooker", "--clients", "20", "--runs", "3", "--seed", "7"]
    one = _run(tmp_path, *args, "--workers", "1")
    two = _run(tmp_path, *args, "--workers", "2")
    assert one == two
    other = _run(tmp_path, "brooker", "--clients", "20", "--runs", "3", "--seed", "8")
    assert other != one


@pytest.mark.parametrize("scenario", ["gateway", "outage", "overload"])
def test_fault_scenarios_quick(tmp_path: Path, scenario: str) -> None:
    """Each fault-model scenario compares the baselines and cometsync with sane metrics."""
    pytest.importorskip("simulator.core")
    rows: List[Any] = _run(tmp_path, scenario, "--quick", "--workers", "1")
    names = [r["strategy"] for r in rows]
    assert {"fallback-doc", "ratelimit-doc", "openai-default", "cometsync-default"} <= set(names)
    for row in rows:
        assert 0 <= row["success_rate"] <= 1
        assert row["amplification"] >= 1
        assert sum(row["attempts_by_status"].values()) == pytest.approx(row["attempts"])
        assert row["cost_usd"] >= 0


def test_plot_writes_a_png(tmp_path: Path) -> None:
    """``--plot`` draws a PNG file."""
    pytest.importorskip("matplotlib")
    png = tmp_path / "b.png"
    args = ["brooker", "--clients", "10", "--runs", "1", "--workers", "1", "--plot", str(png)]
    assert main(args) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown strategy is refused with a message naming it."""
    assert main(["brooker", "--clients", "10", "--runs", "1", "--strategies", "bogus"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_virtual_clock_refuses_to_sleep() -> None:
    """Code driven by the engine may never block on the virtual clock."""
    with pytest.raises(RuntimeError, match="yield Sleep"):
        VirtualClock().sleep(1.0)


def test_engine_orders_ties_by_scheduling() -> None:
    """Events at the same virtual time run in the order they were scheduled."""
    engine = Engine()
    seen: List[str] = []
    engine.schedule(1.0, seen.append, "a")
    engine.schedule(0.5, seen.append, "b")
    engine.schedule(1.0, seen.append, "c")
    assert engine.run() == 1.0
    assert seen == ["b", "a", "c"]
    assert engine.events == 3


@pytest.mark.socket
def test_throughput_quick() -> None:
    """The throughput command measures cometsync and its peers against the simulator."""
    pytest.importorskip("simulator.server")
    from benchmarks import throughput

    rows = throughput.measure(rounds=1, calls=5)
    by_name = {r["client"]: r for r in rows}
    assert by_name["cometsync"]["vs_cometsync"] == 1.0
    assert {"requests", "urllib3"} <= set(by_name)
    assert all(r["calls_per_s"] > 0 and r["cpu_us_per_call"] > 0 for r in rows)
    ratio = by_name["urllib3"]["cometsync_x"]
    assert ratio == pytest.approx(1 / by_name["urllib3"]["vs_cometsync"], rel=0.01)
    lines = throughput.verdict(rows)
    assert lines[0].startswith("cometsync = ") and "x requests (target >= 1.3x" in lines[0]
