"""The client: its configuration, its shared state, and what its calls are sent with.

The driver of the call flow is in ``_driver``; the resource namespaces (``chat.completions``,
``models``, the catalog) are in ``cometsync.resources``; what makes a request impossible is in
``_validate``; the cost model is in ``_pricing``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3

from ._catalog import DEFAULT_CATALOG_TTL, CatalogCache, ModelInfo
from ._clock import SYSTEM_CLOCK, Clock
from ._config import OnAttempt, _make_options, _Shared, _with_max_retries
from ._driver import Driver
from ._errors import ConfigError
from ._flow import CallSpec
from ._metrics import log_attempt
from ._policy import RetryPolicy
from ._pricing import CostEstimate, Priced
from ._redact import Redactor
from ._transport import RequestsTransport, Transport
from ._transport_urllib3 import Urllib3Transport
from ._types import Attempt, Timeout, TimeoutLike
from ._validate import DEFAULT_BASE_URL, _check_api_key, _check_parts
from .guards import Guards, Protections
from .guards.shared import SharedGuards, build_guards
from .resources import Catalog, Chat, Embeddings, Models

__all__ = ["DEFAULT_BASE_URL", "Client"]

__version__ = "0.1.0"
# The library that speaks HTTP on the default path (a caller's Session also sends through it).
_USER_AGENT = f"cometsync/{__version__} python-urllib3/{getattr(urllib3, '__version__', '')}"

T = TypeVar("T")
_UNSET: Any = object()


class Client:
    """An OpenAI-shaped, thread-safe client for CometAPI with retries and model fallback.

    Args:
        api_key: the key; default ``COMETAPI_KEY`` from the environment.
        base_url: default ``COMETAPI_BASE_URL``, else ``https://api.cometapi.com/v1``.
        fallback_models: model ids tried, in order, after the requested one.
        retry: the per-model retry policy; None means ``RetryPolicy()``.
        timeout: per attempt: seconds, ``(connect, read)`` or ``Timeout``; None means 5 s / 120 s.
            ``Timeout(first_token=...)`` also bounds a stream's wait for its first content.
        deadline: seconds for a whole call across every attempt and model, or None.
        max_workers: bound of the thread pool behind ``submit``/``map``; also sizes the
            connection pool.
        session: a ``requests.Session`` to send with (you keep ownership of it); None (the
            default) sends with urllib3 directly (``Urllib3Transport``).
        on_attempt: called with every ``Attempt`` (after logging) from the calling thread.
        transport: a custom transport (tests, simulators); excludes ``session``.
        clock: a custom clock (tests, simulations).
        protections: the shared protections (retry budget, adaptive limiter, model
            cooldowns); None means the defaults, ``Protections.off()`` none.
        guards: a low-level ``Guards`` implementation used instead of ``protections``.
        default_headers: extra headers sent with every request.
        price_calls: load the catalog (one ``GET {origin}/api/models`` per ``catalog_ttl``)
            on the first call, so every ``ChatCompletion`` carries its ``cost``. Without it,
            ``cost`` is known once ``catalog()`` or ``estimate_cost()`` has loaded the catalog.
        catalog_ttl: seconds the catalog is kept before it is fetched again.
        max_retries: openai-python's shortcut: ``retry`` (or the default policy) with this
            many retries per model.
        stream_recovery: a stream broken after its first chunk is asked again (continued
            from its partial answer) under the same retry policy, budget, guards and
            deadline; False raises ``APIStreamError`` at once. See the README's Streaming.
        rate_limit: the key's client-side limit, a ``RateLimit`` for every model or a dict
            ``{model: RateLimit}``; paced (burst: one second's worth). Limits the server
            announces in ``x-ratelimit-limit-*`` headers are learned and paced to as well.
        shared_state: a ``redis://`` URL or a ``redis.Redis`` you own: rate limits, server
            holds, cooldowns and the retry budget are then shared by every client of this key
            using it (``pip install 'cometsync[redis]'``). None: per process.
        shared_namespace: prefix of the Redis keys, to separate applications.

    Once prices are known, each priced call is reported to the ``on_attempt`` hook's
    ``add_cost(model, usd)`` when it has one (``MetricsRecorder`` does), and a fallback model
    whose reference call costs over 3x the primary's is logged as a warning, once per pair.

    Raises:
        ConfigError: a missing key or a setting that cannot work.
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        fallback_models: Sequence[str] = (),
        retry: Optional[RetryPolicy] = None,
        timeout: TimeoutLike = None,
        deadline: Optional[float] = None,
        max_workers: int = 8,
        session: Optional[requests.Session] = None,
        on_attempt: Optional[OnAttempt] = None,
        *,
        transport: Optional[Transport] = None,
        clock: Optional[Clock] = None,
        guards: Optional[Guards] = None,
        default_headers: Optional[Mapping[str, str]] = None,
        protections: Optional[Protections] = None,
        price_calls: bool = False,
        catalog_ttl: float = DEFAULT_CATALOG_TTL,
        max_retries: Optional[int] = None,
        stream_recovery: bool = True,
        rate_limit: Any = None,
        shared_state: Any = None,
        shared_namespace: str = "cometsync",
    ) -> None:
        key = _check_api_key(api_key, os.environ.get("COMETAPI_KEY"))
        url = base_url if base_url is not None else os.environ.get("COMETAPI_BASE_URL")
        _check_parts(max_workers, session, transport, protections, guards)
        self._options = _make_options(
            api_key=key,
            base_url=url or DEFAULT_BASE_URL,
            fallback_models=fallback_models,
            retry=_with_max_retries(retry, max_retries),
            timeout=timeout,
            deadline=deadline,
            on_attempt=on_attempt,
            default_headers=default_headers or {},
            stream_recovery=stream_recovery,
        )
        owns = transport is None
        if transport is None and session is not None:
            transport = RequestsTransport(session)  # the caller's Session, used as given
        elif transport is None:
            transport = Urllib3Transport(max_workers, base_url=self._options.base_url)
        clock = clock or SYSTEM_CLOCK
        if guards is None:
            protections = protections or Protections()
            guards = build_guards(
                protections.build(ceiling=max_workers, clock=clock),
                protections,
                api_key=self._options.api_key,
                rate_limit=rate_limit,
                shared_state=shared_state,
                shared_namespace=shared_namespace,
                ceiling=max_workers,
                clock=clock,
            )
        elif rate_limit is not None or shared_state is not None:
            raise ConfigError("rate_limit= and shared_state= need the built-in guards, not guards=")
        self._shared = _Shared(
            transport,
            owns,
            clock,
            guards,
            max_workers,
            CatalogCache(clock, catalog_ttl),
            bool(price_calls),
        )
        self._bind()

    def _bind(self) -> None:
        # One redactor for every path (plain calls, streams, errors, attempts, logs).
        self._redactor = Redactor(self._options.api_key)
        self.chat = Chat(self)
        self.embeddings = Embeddings(self)
        self.models = Models(self)
        self._catalog = Catalog(self)
        self._driver = Driver(
            self._options, self._shared, self._redactor, self._headers, self._url, self._on_attempt
        )

    # -- public settings, read-only ------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self._options.base_url

    @property
    def fallback_models(self) -> Tuple[str, ...]:
        return self._options.fallback_models

    @property
    def retry(self) -> RetryPolicy:
        return self._options.retry

    @property
    def timeout(self) -> Timeout:
        return self._options.timeout

    @property
    def deadline(self) -> Optional[float]:
        return self._options.deadline

    @property
    def stream_recovery(self) -> bool:
        return self._options.stream_recovery

    @property
    def max_workers(self) -> int:
        return self._shared.max_workers

    def with_options(
        self,
        *,
        fallback_models: Any = _UNSET,
        retry: Any = _UNSET,
        max_retries: Any = _UNSET,
        timeout: Any = _UNSET,
        deadline: Any = _UNSET,
        on_attempt: Any = _UNSET,
        default_headers: Any = _UNSET,
        stream_recovery: Any = _UNSET,
    ) -> Client:
        """A copy with other call settings that shares this client's pools and protections.

        ``max_retries=`` is a shortcut for ``retry=replace(retry, max_retries=...)``. Closing
        either the copy or the original closes the shared pools.
        """
        o = self._options
        policy = o.retry if retry is _UNSET else retry
        if max_retries is not _UNSET:
            if not isinstance(policy, RetryPolicy):
                raise ConfigError(f"retry must be a cometsync.RetryPolicy, got {policy!r}")
            policy = dataclasses.replace(policy, max_retries=max_retries)
        copy = object.__new__(Client)
        copy._options = _make_options(
            api_key=o.api_key,
            base_url=o.base_url,
            fallback_models=o.fallback_models if fallback_models is _UNSET else fallback_models,
            retry=policy,
            timeout=o.timeout if timeout is _UNSET else timeout,
            deadline=o.deadline if deadline is _UNSET else deadline,
            on_attempt=o.on_attempt if on_attempt is _UNSET else on_attempt,
            default_headers=o.default_headers if default_headers is _UNSET else default_headers,
            stream_recovery=o.stream_recovery if stream_recovery is _UNSET else stream_recovery,
        )
        copy._shared = self._shared
        copy._bind()
        return copy

    def stats(self) -> Dict[str, Any]:
        """A snapshot of the shared protections: retry budget, adaptive limits, cooldowns."""
        return self._shared.guards.stats()

    # -- catalog and cost -----------------------------------------------------------------
    def catalog(
        self,
        *,
        provider: Optional[str] = None,
        model_type: Optional[str] = None,
        feature: Optional[str] = None,
        refresh: bool = False,
    ) -> List[ModelInfo]:
        """The models with their prices from ``GET {origin}/api/models``, cached for the TTL.

        Filters match case-insensitively; ``refresh=True`` ignores the cache. The request is
        retried like any call and carries no API key (the route needs none).

        Raises:
            APIError: the catalog could not be fetched (the cache keeps the previous one).
        """
        return self._catalog.list(
            provider=provider, model_type=model_type, feature=feature, refresh=refresh
        )

    def estimate_cost(
        self, models: Sequence[str], prompt_tokens: int, completion_tokens: int
    ) -> CostEstimate:
        """Price one request of the given size through a fallback chain (primary first).

        Loads the catalog if it is not cached. Models missing from the catalog, or without a
        usable price, are reported in ``.unknown`` and make the chain totals None.

        Raises:
            ConfigError: an empty chain or negative token counts.
            APIError: the catalog could not be fetched.
        """
        return self._catalog.estimate_cost(models, prompt_tokens, completion_tokens)

    def _price(self, result: Priced, chain: Sequence[str]) -> Priced:
        """``result`` with its cost when the prices are known (a copy; nothing shared changes)."""
        return self._catalog.price(result, chain)

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Stop the thread pool (cancelling what has not started), release the connections.

        Idempotent. Calls already running finish first (each within its own timeouts).
        """
        with self._shared.lock:
            if self._shared.closed:
                return
            self._shared.closed = True
            executor = self._shared.executor
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        if self._shared.owns_transport:
            self._shared.transport.close()
        if isinstance(self._shared.guards, SharedGuards):
            self._shared.guards.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        o = self._options
        return (
            f"Client(base_url={o.base_url!r}, fallback_models={list(o.fallback_models)!r}, "
            f"retry={o.retry!r}, timeout={o.timeout!r}, deadline={o.deadline!r}, "
            f"max_workers={self._shared.max_workers})"
        )

    # -- what the driver and the resources use --------------------------------------------
    def _scrub(self, text: str) -> str:
        return self._redactor.text(text)

    def _headers(self, extra: Optional[Mapping[str, str]], auth: bool = True) -> Dict[str, str]:
        base: Optional[Dict[str, str]] = getattr(self, "_base_headers", None)
        if base is None:  # once per client (copies included): the options never change
            base = self._base_headers = {
                "Authorization": f"Bearer {self._options.api_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": _USER_AGENT,
                **self._options.default_headers,
            }
        headers = dict(base)
        if extra:
            headers.update(extra)
        if not auth:
            headers.pop("Authorization", None)
        return headers

    def _on_attempt(self, attempt: Attempt) -> None:
        log_attempt(attempt)
        hook = self._options.on_attempt
        if hook is not None:
            hook(attempt)

    def _call(
        self,
        spec: CallSpec[T],
        chain: Sequence[Optional[str]],
        *,
        timeout: Optional[Timeout] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        auth: bool = True,
    ) -> T:
        """Drive one call's flow (``_driver.Driver``); ``auth=False`` sends no key."""
        return self._driver.call(
            spec, chain, timeout=timeout, extra_headers=extra_headers, auth=auth
        )

    def _url(self, path: str) -> str:
        # A flow path is relative to base_url, except an absolute URL: the catalog lives at
        # the origin (/api/models), outside base_url's /v1.
        if path.startswith(("http://", "https://")):
            return path
        return self._options.base_url + path

    def _route(self, path: str) -> str:
        return urlsplit(self._options.base_url).path + path
