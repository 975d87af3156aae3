"""The catalog behind ``client.catalog()``, ``client.estimate_cost()`` and each call's cost.

The prices come from ``GET {origin}/api/models`` (no key), kept in the client's shared
``CatalogCache``; the arithmetic is ``cometsync._pricing``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from .._catalog import ModelInfo, catalog_url, filter_catalog, parse_catalog
from .._flow import CallSpec
from .._policy import ResponseLike
from .._pricing import CostEstimate, Priced, estimate_chain, price_result, warn_expensive

if TYPE_CHECKING:
    from .._client import Client

__all__ = ["Catalog"]


def _parse_catalog(response: ResponseLike, model: Optional[str]) -> Tuple[ModelInfo, ...]:
    return parse_catalog(response.json())


class Catalog:
    """The catalog and cost methods of a client (``Client.catalog`` etc. delegate here)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(
        self,
        *,
        provider: Optional[str] = None,
        model_type: Optional[str] = None,
        feature: Optional[str] = None,
        refresh: bool = False,
    ) -> List[ModelInfo]:
        """The catalog's models matching the filters (see ``Client.catalog``)."""
        models = self._client._shared.catalog.get(self.load, refresh=refresh)
        return filter_catalog(models, provider=provider, model_type=model_type, feature=feature)

    def estimate_cost(
        self, models: Sequence[str], prompt_tokens: int, completion_tokens: int
    ) -> CostEstimate:
        """Price one request through a chain (see ``Client.estimate_cost``)."""
        cache = self._client._shared.catalog
        cache.get(self.load)
        return estimate_chain(models, prompt_tokens, completion_tokens, cache.prices())

    def load(self) -> Tuple[ModelInfo, ...]:
        """Fetch the catalog now, retried like any call and sent without the key."""
        client = self._client
        spec: CallSpec[Tuple[ModelInfo, ...]] = CallSpec(
            method="GET",
            path=catalog_url(client._options.base_url),
            route="/api/models",
            parse=_parse_catalog,
        )
        return client._call(spec, [None], auth=False)

    def price(self, result: Priced, chain: Sequence[str]) -> Priced:
        """``result`` with its cost when the prices are known (a copy; nothing shared changes)."""
        shared = self._client._shared
        if shared.price_calls:
            shared.catalog.get_quietly(self.load)
        prices = shared.catalog.prices()
        if not prices:
            return result
        warn_expensive(chain, prices, shared.warned_pairs, shared.lock)
        return price_result(result, prices, self._client._options.on_attempt)
