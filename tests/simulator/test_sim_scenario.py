"""Scenario parsing, validation messages and file loading (pure)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Dict

import pytest

from simulator import PRESETS, Latency, Scenario, ScenarioError, load_scenario, parse_scenario

EXAMPLE: Dict[str, Any] = {
    "seed": 7,
    "models": {
        "m1": {
            "latency_ms": 40,
            "script": [{"status": 429, "retry_after": 1}, 503, 200],
            "faults": [
                {"status": 429, "rate": 0.2, "retry_after": 1.5},
                {"status": 524, "rate": 0.02},
                {"fault": "reset", "rate": 0.01},
            ],
            "outages": [{"start": 5, "end": 15, "status": 503}],
            "pricing": {"input": 0.4, "output": 0.8},
        }
    },
    "rate_limits": {"rpm": 600, "tpm": 200000, "concurrency": 16},
}


def test_the_issue_example_parses_into_frozen_data() -> None:
    """The scenario from the issue parses, keeping every value it states."""
    sc = parse_scenario(EXAMPLE)
    m1 = sc.models["m1"]
    assert sc.seed == 7
    assert m1.latency == Latency(ms=40.0)
    assert [s.status for s in m1.script] == [429, 503, 200]
    assert m1.script[0].retry_after == 1.0
    assert [f.rate for f in m1.faults] == [0.2, 0.02, 0.01]
    assert m1.faults[2].step.fault == "reset"
    assert (m1.outages[0].start, m1.outages[0].end, m1.outages[0].step.status) == (5, 15, 503)
    assert (m1.pricing.input, m1.pricing.output) == (0.4, 0.8)
    assert (sc.rate_limits.rpm, sc.rate_limits.tpm, sc.rate_limits.concurrency) == (
        600,
        200000,
        16,
    )
    with pytest.raises(AttributeError):
        sc.seed = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        (
            {"faults": [{"status": 500, "rate": 0.1}] * 2 + [{"status": 500, "rate": 1.5}]},
            "models.m1.faults[2].rate",
        ),
        ({"faults": [{"status": 500}]}, "models.m1.faults[0].rate"),
        ({"latency_ms": -1}, "models.m1.latency_ms"),
        ({"latency_ms": {"dist": "gamma"}}, "models.m1.latency_ms.dist"),
        ({"latency_ms": {"dist": "lognormal"}}, "models.m1.latency_ms.median"),
        ({"script": [200, "oops"]}, "models.m1.script[1]"),
        ({"script": [{"status": 99}]}, "models.m1.script[0].status"),
        ({"script": [{"fault": "explode"}]}, "models.m1.script[0].fault"),
        ({"script": [{"retry_after": 1}]}, "models.m1.script[0]"),
        ({"outages": [{"start": 5, "end": 1}]}, "models.m1.outages[0].end"),
        ({"pricing": {"input": "cheap"}}, "models.m1.pricing.input"),
        ({"load": {"latency_slope": 1}}, "models.m1.load.capacity"),
        ({"lantecy_ms": 5}, "models.m1.lantecy_ms"),
    ],
)
def test_invalid_model_fields_are_named_by_path(patch: Dict[str, Any], path: str) -> None:
    """Each invalid model field raises a ScenarioError whose message starts with its path."""
    with pytest.raises(ScenarioError) as info:
        parse_scenario({"models": {"m1": patch}})
    assert info.value.path == path
    assert str(info.value).startswith(path + ": ")


def test_rate_out_of_range_message_reads_as_the_issue_says() -> None:
    """A rate above 1 reads ``models.m1.faults[0].rate: must be between 0 and 1``."""
    with pytest.raises(
        ScenarioError, match=r"^models\.m1\.faults\[0\]\.rate: must be between 0 and 1"
    ):
        parse_scenario({"models": {"m1": {"faults": [{"status": 503, "rate": 2}]}}})


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ([], ""),
        ({"models": {}}, "models"),
        ({"models": []}, "models"),
        ({"models": {"m": {}}, "rate_limits": {"rpm": 0}}, "rate_limits.rpm"),
        ({"models": {"m": {}}, "rate_limits": {"rps": 1}}, "rate_limits.rps"),
        ({"models": {"m": {}}, "seed": "x"}, "seed"),
        ({"models": {"m": {}}, "extra": 1}, "extra"),
    ],
)
def test_invalid_top_level_fields_are_named(data: Any, path: str) -> None:
    """Top-level problems name their key (or the root when the document is not an object)."""
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    assert info.value.path == path


def test_load_scenario_accepts_every_source_form(tmp_path: Path) -> None:
    """None, a Scenario, a dict, a preset name, a JSON file and a TOML file all load."""
    assert load_scenario(None) is PRESETS["healthy"]
    sc = parse_scenario(EXAMPLE)
    assert load_scenario(sc) is sc
    assert load_scenario(EXAMPLE) == sc
    assert load_scenario("flaky") is PRESETS["flaky"]
    json_file = tmp_path / "s.json"
    json_file.write_text(json.dumps(EXAMPLE))
    assert load_scenario(str(json_file)) == sc
    toml_file = tmp_path / "s.toml"
    toml_file.write_text(
        "seed = 7\n[models.m1]\nlatency_ms = 40\n"
        "script = [{status = 429, retry_after = 1}, 503, 200]\n"
        "faults = [{status = 429, rate = 0.2, retry_after = 1.5}, {status = 524, rate = 0.02},"
        ' {fault = "reset", rate = 0.01}]\n'
        "outages = [{start = 5, end = 15, status = 503}]\n"
        "pricing = {input = 0.4, output = 0.8}\n"
        "[rate_limits]\nrpm = 600\ntpm = 200000\nconcurrency = 16\n"
    )
    assert load_scenario(toml_file) == sc


def test_load_scenario_names_a_missing_file_or_unknown_preset(tmp_path: Path) -> None:
    """An unknown name says it is neither a preset nor a file; bad JSON names the file."""
    with pytest.raises(ScenarioError, match="neither a preset"):
        load_scenario("no-such-preset")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ScenarioError, match=r"bad\.json"):
        load_scenario(bad)


@pytest.mark.parametrize(
    "spec",
    [
        {"dist": "fixed", "ms": 30},
        {"dist": "uniform", "low": 10, "high": 20},
        {"dist": "lognormal", "median": 40, "sigma": 0.5},
    ],
)
def test_latency_distributions_sample_in_range(spec: Dict[str, Any]) -> None:
    """Each latency distribution samples seconds within its stated bounds."""
    sc = parse_scenario({"models": {"m": {"latency_ms": spec}}})
    dist = sc.models["m"].latency
    rng = random.Random(1)
    samples = [dist.sample(rng) for _ in range(500)]
    if spec["dist"] == "fixed":
        assert set(samples) == {0.03}
    elif spec["dist"] == "uniform":
        assert all(0.010 <= s <= 0.020 for s in samples)
    else:
        samples.sort()
        assert 0.030 < samples[250] < 0.050  # the median is near 40 ms


def test_scenario_defaults_are_harmless() -> None:
    """A bare model has no latency, no faults, no limits, a 1 MiB body cap."""
    sc = parse_scenario({"models": {"m": {}}})
    spec = sc.models["m"]
    assert spec.latency.sample(random.Random(0)) == 0.0
    assert not spec.faults and not spec.script and not spec.outages and spec.load is None
    assert sc.rate_limits.rpm is None and sc.max_body_bytes == 1 << 20
    assert isinstance(sc, Scenario)
