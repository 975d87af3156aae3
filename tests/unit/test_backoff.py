"""Backoff strategies: Brooker's formulas, caps, and seeded determinism."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cometsync
from cometsync import (
    ConfigError,
    Constant,
    DecorrelatedJitter,
    EqualJitter,
    Exponential,
    FullJitter,
    ScaledJitter,
)


def test_exponential_doubles_from_base_and_stops_at_cap() -> None:
    """Plain exponential waits base, 2*base, 4*base... and never more than cap."""
    b = Exponential(base=0.5, cap=3.0)
    assert [b.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_exponential_survives_huge_retry_numbers() -> None:
    """A millionth retry is capped, not an OverflowError."""
    assert Exponential(base=0.005, cap=2.0).delay(1_000_000) == 2.0


def test_exponential_additive_jitter_stays_within_one_jitter() -> None:
    """The rate-limit document's recipe adds U(0, jitter) on top of the capped envelope."""
    b = Exponential(base=1.0, cap=30.0, jitter=1.0, rng=random.Random(3))
    delays = [b.delay(6) for _ in range(200)]
    assert all(30.0 <= d <= 31.0 for d in delays)
    assert max(delays) - min(delays) > 0.5


@pytest.mark.parametrize(
    ("cls", "low", "high"),
    [
        (FullJitter, lambda e: 0.0, lambda e: e),
        (EqualJitter, lambda e: e / 2, lambda e: e),
        (ScaledJitter, lambda e: 0.75 * e, lambda e: e),
    ],
)
@given(retry=st.integers(min_value=1, max_value=80), seed=st.integers(0, 2**32))
def test_jittered_delays_stay_inside_their_envelope(cls, low, high, retry, seed) -> None:  # type: ignore[no-untyped-def]
    """Every jittered delay lies within the strategy's documented bounds of expo(n)."""
    b = cls(base=0.5, cap=8.0, rng=random.Random(seed))
    envelope = min(8.0, 0.5 * 2 ** (retry - 1))
    d = b.delay(retry)
    assert low(envelope) - 1e-12 <= d <= high(envelope) + 1e-12


@given(previous=st.floats(0, 100), seed=st.integers(0, 2**32))
def test_decorrelated_jitter_grows_from_previous_within_cap(previous: float, seed: int) -> None:
    """Decorrelated jitter draws from [base, 3*previous] and never exceeds cap."""
    b = DecorrelatedJitter(base=0.5, cap=8.0, rng=random.Random(seed))
    d = b.delay(3, previous)
    assert 0.5 <= d <= 8.0
    assert d <= max(0.5, previous) * 3 + 1e-12


def test_same_seed_same_delays_and_different_seed_different_delays() -> None:
    """An injected Random makes delays reproducible; the shared generator is not used."""
    a = [FullJitter(rng=random.Random(7)).delay(n) for n in range(1, 8)]
    b = [FullJitter(rng=random.Random(7)).delay(n) for n in range(1, 8)]
    c = [FullJitter(rng=random.Random(8)).delay(n) for n in range(1, 8)]
    assert a == b
    assert a != c


def test_with_rng_returns_an_equal_copy_drawing_from_the_new_generator() -> None:
    """with_rng keeps base and cap, so policies compare equal whatever their generator."""
    original = FullJitter(base=0.1, cap=1.0)
    copy = original.with_rng(random.Random(1))
    assert copy == original
    assert copy.rng is not None and original.rng is None


def test_constant_ignores_the_retry_number() -> None:
    """Constant is the fallback document's fixed sleep, whatever the retry."""
    assert {Constant(2.0).delay(n) for n in range(1, 10)} == {2.0}


@pytest.mark.parametrize(
    "make",
    [
        lambda: FullJitter(base=-1, cap=1),
        lambda: FullJitter(base=2, cap=1),
        lambda: EqualJitter(base=float("nan"), cap=1),
    ],
)
def test_impossible_settings_raise_config_error(make) -> None:  # type: ignore[no-untyped-def]
    """A negative base, or a cap below base, is refused with a ConfigError (a ValueError)."""
    with pytest.raises(ConfigError) as info:
        make()
    assert isinstance(info.value, ValueError)


def test_default_policy_numbers_are_the_documented_ones() -> None:
    """The README states these defaults; this pins them."""
    policy = cometsync.RetryPolicy()
    assert policy.max_retries == 2
    assert policy.backoff == FullJitter(base=0.5, cap=8.0)
    assert policy.max_retry_after == 60.0
