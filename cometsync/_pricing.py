"""The cost model: the price of a call, of a chain, and the expensive-fallback warning.

Pure functions over the catalog's ``Pricing`` (USD per million tokens, per request, per
second), plus the two steps the client runs on each result: pricing it (``price_result``) and
warning once per pair about a fallback far pricier than its primary (``warn_expensive``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple, TypeVar

from ._catalog import Pricing
from ._embedding_types import CreateEmbeddingResponse
from ._errors import ConfigError
from ._types import ChatCompletion

__all__ = [
    "EXPENSIVE_FALLBACK_RATIO",
    "REFERENCE_TOKENS",
    "CostEstimate",
    "call_cost",
    "estimate_chain",
    "expensive_fallbacks",
    "price_result",
    "reference_cost",
    "warn_expensive",
]

logger = logging.getLogger("cometsync")

# A fallback whose reference call costs more than this many times the primary's is flagged.
EXPENSIVE_FALLBACK_RATIO = 3.0
# The reference call used to compare models: 1,000 prompt and 1,000 completion tokens.
REFERENCE_TOKENS = (1_000, 1_000)
_PER_MILLION = 1_000_000.0
# What a call's result can be priced as: an embedding call has prompt tokens only.
Priced = TypeVar("Priced", ChatCompletion, CreateEmbeddingResponse)


def call_cost(
    pricing: Pricing,
    prompt_tokens: int,
    completion_tokens: int,
    seconds: Optional[float] = None,
) -> Optional[float]:
    """The USD price of one request, or None when it cannot be known.

    Token prices are per million tokens, ``per_request`` is added once. ``per_second`` needs
    the generation time: the client passes the answering attempt's duration; without
    ``seconds`` a model with a non-zero per-second price is unknown (None), never silently
    free.
    """
    if not pricing.known:
        return None
    total = 0.0
    if pricing.input is not None:
        total += pricing.input * prompt_tokens / _PER_MILLION
    if pricing.output is not None:
        total += pricing.output * completion_tokens / _PER_MILLION
    if pricing.per_request is not None:
        total += pricing.per_request
    if pricing.per_second:  # a null or zero per-second price needs no duration
        if seconds is None:
            return None
        total += pricing.per_second * max(0.0, seconds)
    return total


def reference_cost(pricing: Pricing) -> Optional[float]:
    """The price of the reference call used to compare models (1,000 + 1,000 tokens)."""
    return call_cost(pricing, *REFERENCE_TOKENS)


@dataclass(frozen=True)
class CostEstimate:
    """The price of one request through a fallback chain.

    Attributes:
        per_model: ``(model, USD or None)`` in chain order; None means unknown (not in the
            catalog, or no usable price), never zero.
        primary: what the request costs when the first model answers.
        worst_case: every model of the chain billed once (the chain is exhausted and each
            failed attempt was billed, e.g. a timeout after generation). An upper bound per
            request and retry; None if any model is unknown.
        max_single: the most expensive single model: what the request costs when failures are
            not billed (the usual case for 429 and 5xx) and the priciest model answers. None if
            any model is unknown.
        unknown: the models whose price is unknown.
        expensive_fallbacks: fallback models whose reference call costs more than
            ``EXPENSIVE_FALLBACK_RATIO`` times the primary's.
        prompt_tokens, completion_tokens: the request the estimate is for.
    """

    per_model: Tuple[Tuple[str, Optional[float]], ...]
    primary: Optional[float]
    worst_case: Optional[float]
    max_single: Optional[float]
    unknown: Tuple[str, ...]
    expensive_fallbacks: Tuple[str, ...]
    prompt_tokens: int
    completion_tokens: int

    def to_dict(self) -> Dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "per_model": [{"model": m, "cost": c} for m, c in self.per_model],
            "primary": self.primary,
            "worst_case": self.worst_case,
            "max_single": self.max_single,
            "unknown": list(self.unknown),
            "expensive_fallbacks": list(self.expensive_fallbacks),
        }


def _check_tokens(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be an int >= 0, got {value!r}")
    return value


def expensive_fallbacks(
    chain: Sequence[str], prices: Mapping[str, Pricing], ratio: float = EXPENSIVE_FALLBACK_RATIO
) -> Tuple[str, ...]:
    """Fallback models whose reference call costs more than ``ratio`` times the primary's."""
    if not chain or chain[0] not in prices:
        return ()
    base = reference_cost(prices[chain[0]])
    if base is None:
        return ()
    flagged = []
    for model in chain[1:]:
        other = reference_cost(prices[model]) if model in prices else None
        if other is not None and other > ratio * base:
            flagged.append(model)
    return tuple(flagged)


def estimate_chain(
    models: Sequence[str],
    prompt_tokens: int,
    completion_tokens: int,
    prices: Mapping[str, Pricing],
) -> CostEstimate:
    """Price one request through ``models`` (primary first) with the given token counts.

    Raises:
        ConfigError: no model, or token counts that are not ints >= 0.
    """
    if isinstance(models, str) or not models:
        raise ConfigError(f"models must be a non-empty list of model ids, got {models!r}")
    prompt = _check_tokens(prompt_tokens, "prompt_tokens")
    completion = _check_tokens(completion_tokens, "completion_tokens")
    chain = list(dict.fromkeys(models))
    per_model: List[Tuple[str, Optional[float]]] = []
    for model in chain:
        pricing = prices.get(model)
        per_model.append(
            (model, None if pricing is None else call_cost(pricing, prompt, completion))
        )
    costs = [c for _, c in per_model]
    complete = all(c is not None for c in costs)
    known = [c for c in costs if c is not None]
    return CostEstimate(
        per_model=tuple(per_model),
        primary=costs[0],
        worst_case=sum(known) if complete else None,
        max_single=max(known) if complete else None,
        unknown=tuple(m for m, c in per_model if c is None),
        expensive_fallbacks=expensive_fallbacks(chain, prices),
        prompt_tokens=prompt,
        completion_tokens=completion,
    )


def price_result(result: Priced, prices: Mapping[str, Pricing], on_attempt: Any) -> Priced:
    """``result`` with its cost when the prices are known (a copy; nothing shared changes).

    The model that answered (the last attempt's) is priced, with that attempt's generation
    time; the cost is also reported to ``on_attempt.add_cost(model, usd)`` when it has one.
    """
    answer = result.attempts[-1] if result.attempts else None
    model = answer.model if answer is not None and answer.model else result.model
    pricing = prices.get(model) or prices.get(result.model)
    if pricing is None:
        return result
    seconds = None if answer is None else (answer.duration or answer.latency)
    completion = getattr(result.usage, "completion_tokens", 0)  # embeddings have none
    usd = call_cost(pricing, result.usage.prompt_tokens, completion, seconds)
    if usd is None:
        return result
    add_cost = getattr(on_attempt, "add_cost", None)
    if callable(add_cost):
        try:
            add_cost(model, usd)
        except Exception:  # an observer's bug must not lose the call's result
            logger.exception("on_attempt.add_cost raised; the call goes on")
    return dataclasses.replace(result, cost=usd)


def warn_expensive(
    chain: Sequence[str],
    prices: Mapping[str, Pricing],
    warned: Set[Tuple[str, str]],
    lock: threading.Lock,
) -> None:
    """Log each fallback of ``chain`` far pricier than its primary, once per pair in ``warned``."""
    for fallback in expensive_fallbacks(chain, prices):
        pair = (chain[0], fallback)
        with lock:
            if pair in warned:
                continue
            warned.add(pair)
        logger.warning(
            "fallback model %s costs over %gx the primary %s per call: check "
            "client.estimate_cost(%r, ...) before relying on it",
            fallback,
            EXPENSIVE_FALLBACK_RATIO,
            chain[0],
            list(chain),
        )
