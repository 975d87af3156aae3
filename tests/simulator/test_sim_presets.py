"""The documented scenario presets (pure)."""

from __future__ import annotations

from simulator import PRESETS


def test_every_preset_is_valid_and_priced() -> None:
    """All seven documented presets exist; every model has a non-zero price (input only for
    embedding models, which produce no output tokens)."""
    assert set(PRESETS) == {
        "healthy",
        "flaky",
        "rate-limited",
        "outage",
        "flap",
        "brownout",
        "storm",
    }
    for scenario in PRESETS.values():
        assert scenario.models
        kinds = {spec.model_type for spec in scenario.models.values()}
        assert kinds == {"text", "embedding"}
        for spec in scenario.models.values():
            assert spec.pricing.input > 0
            assert (spec.pricing.output or 0) > 0 or spec.model_type == "embedding"


def test_flaky_preset_fails_about_a_fifth_of_first_attempts() -> None:
    """The flaky primary's fault rates add up to 15-25% of requests."""
    from simulator import FLAKY_CHAIN

    primary = PRESETS["flaky"].models[FLAKY_CHAIN[0]]
    total = sum(f.rate for f in primary.faults)
    assert 0.15 <= total <= 0.25
