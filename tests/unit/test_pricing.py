"""The cost model (``_pricing``): the price of one call and of a request through a chain."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import pytest

from cometsync import ConfigError, Pricing
from cometsync._pricing import call_cost, estimate_chain


def prices(**by_model: Tuple[Optional[float], Optional[float]]) -> Dict[str, Pricing]:
    return {m.replace("_", "-"): Pricing(input=i, output=o) for m, (i, o) in by_model.items()}


# -- cost -----------------------------------------------------------------------------------


def test_call_cost_adds_token_request_and_second_prices() -> None:
    """Token prices are per million; per_request is added once; per_second times the duration."""
    p = Pricing(input=2.0, output=10.0, per_request=0.01, per_second=0.5)
    assert call_cost(p, 1_000_000, 0, 0.0) == pytest.approx(2.01)
    assert call_cost(p, 500, 100, 2.0) == pytest.approx(500 * 2e-6 + 100 * 1e-5 + 0.01 + 1.0)


def test_call_cost_is_unknown_without_prices_or_a_needed_duration() -> None:
    """No price at all, or a per-second price without a duration, gives None rather than 0."""
    assert call_cost(Pricing(), 10, 10) is None
    assert call_cost(Pricing(per_second=0.1), 10, 10) is None
    assert call_cost(Pricing(per_request=0.04), 10, 10) == pytest.approx(0.04)
    assert call_cost(Pricing(input=1.0, per_second=0.0), 10, 10) == pytest.approx(1e-5)


def test_estimate_prices_each_model_and_both_worst_cases() -> None:
    """A chain is priced per model, for the primary, billed-once-each, and the priciest one."""
    table = prices(cheap=(1.0, 2.0), mid=(3.0, 6.0), dear=(10.0, 40.0))
    est = estimate_chain(["cheap", "mid", "dear", "mid"], 1000, 500, table)
    expected = {"cheap": 0.002, "mid": 0.006, "dear": 0.03}
    assert [m for m, _ in est.per_model] == ["cheap", "mid", "dear"]
    assert dict(est.per_model) == pytest.approx(expected)
    assert est.primary == pytest.approx(0.002)
    assert est.worst_case == pytest.approx(sum(expected.values()))
    assert est.max_single == pytest.approx(0.03)
    assert est.expensive_fallbacks == ("dear",)
    assert est.unknown == ()


def test_estimate_reports_unknown_models_instead_of_zero() -> None:
    """A model missing from the catalog is unknown and makes the chain totals unknown."""
    est = estimate_chain(["cheap", "ghost"], 100, 100, prices(cheap=(1.0, 1.0)))
    assert dict(est.per_model)["ghost"] is None
    assert est.unknown == ("ghost",)
    assert (est.worst_case, est.max_single) == (None, None)
    assert est.primary == pytest.approx(0.0002)
    assert est.to_dict()["unknown"] == ["ghost"]


@pytest.mark.parametrize(
    ("models", "prompt", "completion", "match"),
    [
        ([], 1, 1, "non-empty list"),
        ("gpt", 1, 1, "non-empty list"),
        (["a"], -1, 1, "prompt_tokens"),
        (["a"], 1, 2.5, "completion_tokens"),
    ],
)
def test_estimate_rejects_bad_input(models: Any, prompt: Any, completion: Any, match: str) -> None:
    """An empty chain or a bad token count is a ConfigError naming the problem."""
    with pytest.raises(ConfigError, match=match):
        estimate_chain(models, prompt, completion, {})
