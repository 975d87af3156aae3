"""The documented scenario presets (pure)."""

from __future__ import annotations

from simulator import PRESETS


def test_every_preset_is_valid_and_priced() -> None:
    """All six documented presets exist, and every model in them has a non-zero price."""
    assert set(PRESETS) == {"healthy", "flaky", "rate-limited", "outage", "brownout", "storm"}
    for scenario in PRESETS.values():
        assert scenario.models
        for spec in scenario.models.values():
            assert spec.pricing.input > 0 and spec.pricing.output > 0


def test_flaky_preset_fails_about_a_fifth_of_first_attempts() -> None:
    """The flaky primary's fault rates add up to 15-25% of requests."""
    from simulator import FLAKY_CHAIN

    primary = PRESETS["flaky"].models[FLAKY_CHAIN[0]]
    total = sum(f.rate for f in primary.faults)
    assert 0.15 <= total <= 0.25
