"""The model catalog (``GET {origin}/api/models``): its entries, filters and TTL cache.

The cost model built on its prices is in ``_pricing``. Everything here is pure except
``CatalogCache``, which holds the last catalog behind a lock
and asks its caller's loader for a new one when the TTL has passed. Prices are USD per
million tokens (``input``, ``output``), USD per request (``per_request``) and USD per second
(``per_second``); any of them may be missing or null, which means "not charged that way".
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Tuple,
)
from urllib.parse import urlsplit, urlunsplit

from ._clock import Clock
from ._errors import ConfigError

__all__ = [
    "DEFAULT_CATALOG_TTL",
    "CatalogCache",
    "ModelInfo",
    "Pricing",
    "catalog_url",
    "filter_catalog",
    "parse_catalog",
]

logger = logging.getLogger("cometsync")

DEFAULT_CATALOG_TTL = 3600.0


def _price(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    price = float(value)
    return price if math.isfinite(price) and price >= 0 else None


@dataclass(frozen=True)
class Pricing:
    """A model's prices; None means the model is not charged that way (or the price is unknown).

    Attributes:
        input: USD per million prompt tokens.
        output: USD per million completion tokens.
        per_request: USD per successful request.
        per_second: USD per second of generation.
        currency: the catalog's currency string as sent (``"USD / M Tokens"``).
    """

    input: Optional[float] = None
    output: Optional[float] = None
    per_request: Optional[float] = None
    per_second: Optional[float] = None
    currency: str = "USD / M Tokens"

    @classmethod
    def from_dict(cls, data: Any) -> Pricing:
        """Read a ``pricing`` object; nulls, strings and negative numbers become None."""
        raw = data if isinstance(data, Mapping) else {}
        currency = raw.get("currency")
        return cls(
            input=_price(raw.get("input")),
            output=_price(raw.get("output")),
            per_request=_price(raw.get("per_request")),
            per_second=_price(raw.get("per_second")),
            currency=currency if isinstance(currency, str) else "USD / M Tokens",
        )

    @property
    def known(self) -> bool:
        """Whether any price is set (a model with no price at all cannot be costed)."""
        return any(
            p is not None for p in (self.input, self.output, self.per_request, self.per_second)
        )

    def to_dict(self) -> Dict[str, Any]:
        return {
            "currency": self.currency,
            "input": self.input,
            "output": self.output,
            "per_request": self.per_request,
            "per_second": self.per_second,
        }


@dataclass(frozen=True)
class ModelInfo:
    """One catalog entry.

    Attributes:
        id: the model id to pass as ``model=``.
        provider: who serves it (``"DeepSeek"``), or "" when not given.
        model_type: ``"text"``, ``"image"``... or "" when not given.
        features: e.g. ``("text-to-text",)``.
        pricing: the model's prices.
        api_doc_url: the documentation link, if given.
    """

    id: str
    provider: str = ""
    model_type: str = ""
    features: Tuple[str, ...] = ()
    pricing: Pricing = field(default_factory=Pricing)
    api_doc_url: Optional[str] = None

    @classmethod
    def from_dict(cls, data: Any) -> ModelInfo:
        """Read one entry; unknown fields are ignored.

        Raises:
            ValueError: the entry is not an object or has no string ``id``.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str) or not data["id"]:
            raise ValueError(
                f"a catalog entry needs a non-empty string 'id', got {str(data)[:100]}"
            )
        features = data.get("features")
        doc = data.get("api_doc_url")
        return cls(
            id=data["id"],
            provider=_text(data.get("provider")),
            model_type=_text(data.get("model_type")),
            features=tuple(f for f in features if isinstance(f, str))
            if isinstance(features, list)
            else (),
            pricing=Pricing.from_dict(data.get("pricing")),
            api_doc_url=doc if isinstance(doc, str) else None,
        )

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "model_type": self.model_type,
            "features": list(self.features),
            "pricing": self.pricing.to_dict(),
            "api_doc_url": self.api_doc_url,
        }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def catalog_url(base_url: str) -> str:
    """The catalog's URL: the base URL's origin plus ``/api/models``.

    ``https://api.cometapi.com/v1`` gives ``https://api.cometapi.com/api/models``.
    """
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, "/api/models", "", ""))


def parse_catalog(data: Any) -> Tuple[ModelInfo, ...]:
    """Read a ``GET /api/models`` body; a broken entry is logged and skipped.

    Raises:
        ValueError: the body has no ``data`` list (so it is not a catalog at all).
    """
    entries = data.get("data") if isinstance(data, Mapping) else None
    if not isinstance(entries, list):
        raise ValueError("the catalog body has no 'data' list")
    models: List[ModelInfo] = []
    for position, entry in enumerate(entries):
        try:
            models.append(ModelInfo.from_dict(entry))
        except ValueError as exc:
            logger.warning("catalog entry %d skipped: %s", position, exc)
    return tuple(models)


def filter_catalog(
    models: Iterable[ModelInfo],
    *,
    provider: Optional[str] = None,
    model_type: Optional[str] = None,
    feature: Optional[str] = None,
) -> List[ModelInfo]:
    """The entries matching every given filter (case-insensitive exact matches)."""

    def same(a: str, b: Optional[str]) -> bool:
        return b is None or a.casefold() == b.casefold()

    return [
        m
        for m in models
        if same(m.provider, provider)
        and same(m.model_type, model_type)
        and (feature is None or any(same(f, feature) for f in m.features))
    ]


Loader = Callable[[], Tuple[ModelInfo, ...]]


class CatalogCache:
    """The last catalog loaded, its age, and at most one load at a time.

    Args:
        clock: the client's clock (monotonic time measures the TTL).
        ttl: seconds a loaded catalog stays fresh.
        failure_backoff: after a failed background load (``get_quietly``), seconds before the
            next one is tried, so a down catalog endpoint does not slow every priced call.
    """

    def __init__(
        self, clock: Clock, ttl: float = DEFAULT_CATALOG_TTL, failure_backoff: float = 60.0
    ) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
            raise ConfigError(f"catalog_ttl must be a positive number of seconds, got {ttl!r}")
        self._clock = clock
        self._ttl = float(ttl)
        self._failure_backoff = failure_backoff
        self._lock = threading.Lock()  # guards the fields below
        self._load_lock = threading.Lock()  # one load at a time; others wait for its result
        self._models: Optional[Tuple[ModelInfo, ...]] = None
        self._prices: Dict[str, Pricing] = {}
        self._loaded_at = 0.0
        self._retry_after = -math.inf

    def _fresh(self, now: float) -> bool:
        return self._models is not None and now - self._loaded_at < self._ttl

    def cached(self) -> Optional[Tuple[ModelInfo, ...]]:
        """The last catalog loaded, even past its TTL (prices rarely change); no I/O."""
        with self._lock:
            return self._models

    def prices(self) -> Dict[str, Pricing]:
        """Model id to pricing of the last catalog loaded (empty before the first load)."""
        with self._lock:
            return self._prices

    def get(self, load: Loader, *, refresh: bool = False) -> Tuple[ModelInfo, ...]:
        """The catalog, loaded with ``load`` when missing, past its TTL or ``refresh``.

        Raises:
            Whatever ``load`` raises (the cache keeps its previous catalog).
        """
        with self._lock:
            if not refresh and self._fresh(self._clock.monotonic()):
                assert self._models is not None
                return self._models
            stamp = self._loaded_at
        with self._load_lock:
            with self._lock:
                # Another thread loaded it while this one waited: use that.
                if self._models is not None and self._loaded_at != stamp:
                    return self._models
            models = load()
            with self._lock:
                self._models = models
                self._prices = {m.id: m.pricing for m in models}
                self._loaded_at = self._clock.monotonic()
            return models

    def get_quietly(self, load: Loader) -> Optional[Tuple[ModelInfo, ...]]:
        """Like ``get`` but a failure is logged, returns the stale catalog (or None), and
        holds back further loads for ``failure_backoff`` seconds."""
        with self._lock:
            now = self._clock.monotonic()
            if self._fresh(now) or now < self._retry_after:
                return self._models
        try:
            return self.get(load)
        except Exception as exc:  # pricing is a bonus: it must never fail the call it prices
            with self._lock:
                self._retry_after = self._clock.monotonic() + self._failure_backoff
                models = self._models
            logger.warning(
                "could not load the model catalog, costs stay unknown for %gs: %s",
                self._failure_backoff,
                exc,
            )
            return models
