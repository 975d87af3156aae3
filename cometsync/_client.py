"""The client: configuration, resource namespaces, and the driver of the call flow."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    TypeVar,
    Union,
    overload,
)
from urllib.parse import urlsplit

import requests

from ._catalog import (
    DEFAULT_CATALOG_TTL,
    EXPENSIVE_FALLBACK_RATIO,
    CatalogCache,
    CostEstimate,
    ModelInfo,
    call_cost,
    catalog_url,
    estimate_chain,
    expensive_fallbacks,
    filter_catalog,
    parse_catalog,
)
from ._clock import SYSTEM_CLOCK, Clock
from ._errors import (
    APIError,
    APIStatusError,
    ConfigError,
    PoolTimeoutError,
    RequestTypeError,
    RequestValidationError,
)
from ._flow import CallSpec, Send, Sleep, call_flow
from ._guards import Guards, Protections
from ._metrics import log_attempt
from ._policy import ResponseLike, RetryPolicy
from ._pool import failed_future, ordered_map
from ._streaming import Stream, defer_success, open_stream, stream_spec
from ._transport import HTTPRequest, RequestsTransport, Transport
from ._transport_urllib3 import Urllib3Transport
from ._types import Attempt, ChatCompletion, Model, Timeout, TimeoutLike

__all__ = ["DEFAULT_BASE_URL", "Client"]

DEFAULT_BASE_URL = "https://api.cometapi.com/v1"
logger = logging.getLogger("cometsync")
__version__ = "0.1.0"

T = TypeVar("T")
OnAttempt = Callable[[Attempt], None]
_UNSET: Any = object()


@dataclass(frozen=True)
class _Options:
    """Per-client settings; ``with_options`` copies them, the shared state stays shared."""

    api_key: str = field(repr=False)
    base_url: str
    fallback_models: Tuple[str, ...]
    retry: RetryPolicy
    timeout: Timeout
    deadline: Optional[float]
    on_attempt: Optional[OnAttempt]
    default_headers: Mapping[str, str]


class _Shared:
    """What every copy of a client shares: transport, clock, guards, thread pool, catalog."""

    def __init__(
        self,
        transport: Transport,
        owns_transport: bool,
        clock: Clock,
        guards: Guards,
        max_workers: int,
        catalog: CatalogCache,
        price_calls: bool,
    ) -> None:
        self.transport = transport
        self.owns_transport = owns_transport
        self.clock = clock
        self.guards = guards
        self.max_workers = max_workers
        self.catalog = catalog
        self.price_calls = price_calls
        self.warned_pairs: Set[Tuple[str, str]] = set()
        self.lock = threading.Lock()
        self.closed = False
        self.executor: Optional[ThreadPoolExecutor] = None

    def pool(self) -> ThreadPoolExecutor:
        """The thread pool, started on first use (a client that never submits has no threads)."""
        with self.lock:
            if self.closed:
                raise RuntimeError("this cometsync.Client is closed")
            if self.executor is None:
                self.executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix="cometsync")
            return self.executor


def _with_max_retries(retry: Any, max_retries: Optional[int]) -> Any:
    """openai-python's ``max_retries=`` shortcut: the policy (or the default) with that count."""
    if max_retries is None:
        return retry
    if retry is not None and not isinstance(retry, RetryPolicy):
        return retry  # _make_options names the bad policy
    return dataclasses.replace(retry or RetryPolicy(), max_retries=max_retries)


def _check_model_list(value: Any, name: str) -> Tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name} must be a list of model ids, got {value!r}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"{name} must hold non-empty model id strings, got {item!r}")
    return tuple(value)


def _check_deadline(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"deadline must be a positive number of seconds or None, got {value!r}")
    return float(value)


def _check_base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL}, got {value!r}"
        )
    return value.rstrip("/")


class Client:
    """An OpenAI-shaped, thread-safe client for CometAPI with retries and model fallback.

    Args:
        api_key: the key; default ``COMETAPI_KEY`` from the environment.
        base_url: default ``COMETAPI_BASE_URL``, else ``https://api.cometapi.com/v1``.
        fallback_models: model ids tried, in order, after the requested one.
        retry: the per-model retry policy; None means ``RetryPolicy()``.
        timeout: per attempt: seconds, ``(connect, read)`` or ``Timeout``; None means 5 s / 120 s.
        deadline: seconds for a whole call across every attempt and model, or None.
        max_workers: bound of the thread pool behind ``submit``/``map``; also sizes the
            connection pool.
        session: a ``requests.Session`` to send with (you keep ownership of it).
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
    ) -> None:
        if api_key is not None and not isinstance(api_key, str):
            raise ConfigError(f"api_key must be a string, got {type(api_key).__name__}")
        key = api_key if api_key is not None else os.environ.get("COMETAPI_KEY")
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(
                "no API key: pass api_key=... or set the COMETAPI_KEY environment variable"
            )
        stripped = key.strip()
        if not (stripped.isascii() and stripped.isprintable()) or " " in stripped:
            # Never echo it: a key pasted with a newline would otherwise surface in header
            # errors, which quote the header value.
            raise ConfigError("the API key holds whitespace, control or non-ASCII characters")
        url = base_url if base_url is not None else os.environ.get("COMETAPI_BASE_URL")
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigError(f"max_workers must be an int >= 1, got {max_workers!r}")
        if session is not None and transport is not None:
            raise ConfigError("pass either session= or transport=, not both")
        if session is not None and not isinstance(session, requests.Session):
            raise ConfigError(f"session must be a requests.Session, got {type(session).__name__}")
        if protections is not None and guards is not None:
            raise ConfigError("pass either protections= or guards=, not both")
        if protections is not None and not isinstance(protections, Protections):
            raise ConfigError(f"protections must be a cometsync.Protections, got {protections!r}")
        if guards is not None and not isinstance(guards, Guards):
            raise ConfigError(f"guards must be a cometsync.Guards, got {guards!r}")
        self._options = self._make_options(
            api_key=key.strip(),
            base_url=url or DEFAULT_BASE_URL,
            fallback_models=fallback_models,
            retry=_with_max_retries(retry, max_retries),
            timeout=timeout,
            deadline=deadline,
            on_attempt=on_attempt,
            default_headers=default_headers or {},
        )
        owns = transport is None
        if transport is None and session is not None:
            transport = RequestsTransport(session)  # the caller's Session, used as given
        elif transport is None:
            transport = Urllib3Transport(max_workers, base_url=self._options.base_url)
        clock = clock or SYSTEM_CLOCK
        if guards is None:
            guards = (protections or Protections()).build(ceiling=max_workers, clock=clock)
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

    @staticmethod
    def _make_options(
        *,
        api_key: str,
        base_url: str,
        fallback_models: Any,
        retry: Optional[RetryPolicy],
        timeout: TimeoutLike,
        deadline: Any,
        on_attempt: Any,
        default_headers: Mapping[str, str],
    ) -> _Options:
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigError(f"retry must be a cometsync.RetryPolicy, got {retry!r}")
        if on_attempt is not None and not callable(on_attempt):
            raise ConfigError(f"on_attempt must be callable, got {on_attempt!r}")
        return _Options(
            api_key=api_key,
            base_url=_check_base_url(base_url),
            fallback_models=_check_model_list(fallback_models, "fallback_models"),
            retry=retry or RetryPolicy(),
            timeout=Timeout.coerce(timeout),
            deadline=_check_deadline(deadline),
            on_attempt=on_attempt,
            default_headers=dict(default_headers),
        )

    def _bind(self) -> None:
        self.chat = Chat(self)
        self.models = Models(self)

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
        copy._options = self._make_options(
            api_key=o.api_key,
            base_url=o.base_url,
            fallback_models=o.fallback_models if fallback_models is _UNSET else fallback_models,
            retry=policy,
            timeout=o.timeout if timeout is _UNSET else timeout,
            deadline=o.deadline if deadline is _UNSET else deadline,
            on_attempt=o.on_attempt if on_attempt is _UNSET else on_attempt,
            default_headers=o.default_headers if default_headers is _UNSET else default_headers,
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
        models = self._shared.catalog.get(self._load_catalog, refresh=refresh)
        return filter_catalog(models, provider=provider, model_type=model_type, feature=feature)

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
        self._shared.catalog.get(self._load_catalog)
        return estimate_chain(
            models, prompt_tokens, completion_tokens, self._shared.catalog.prices()
        )

    def _load_catalog(self) -> Tuple[ModelInfo, ...]:
        spec: CallSpec[Tuple[ModelInfo, ...]] = CallSpec(
            method="GET",
            path=catalog_url(self._options.base_url),
            route="/api/models",
            parse=_parse_catalog,
        )
        return self._call(spec, [None], auth=False)

    def _price(self, result: ChatCompletion, chain: Sequence[str]) -> ChatCompletion:
        """``result`` with its cost when the prices are known (a copy; nothing shared changes)."""
        shared = self._shared
        if shared.price_calls:
            shared.catalog.get_quietly(self._load_catalog)
        prices = shared.catalog.prices()
        if not prices:
            return result
        self._warn_expensive(chain, prices)
        answer = result.attempts[-1] if result.attempts else None
        model = answer.model if answer is not None and answer.model else result.model
        pricing = prices.get(model) or prices.get(result.model)
        if pricing is None:
            return result
        seconds = None if answer is None else (answer.duration or answer.latency)
        usd = call_cost(
            pricing, result.usage.prompt_tokens, result.usage.completion_tokens, seconds
        )
        if usd is None:
            return result
        add_cost = getattr(self._options.on_attempt, "add_cost", None)
        if callable(add_cost):
            try:
                add_cost(model, usd)
            except Exception:  # an observer's bug must not lose the call's result
                logger.exception("on_attempt.add_cost raised; the call goes on")
        return dataclasses.replace(result, cost=usd)

    def _warn_expensive(self, chain: Sequence[str], prices: Mapping[str, Any]) -> None:
        for fallback in expensive_fallbacks(chain, prices):
            pair = (chain[0], fallback)
            with self._shared.lock:
                if pair in self._shared.warned_pairs:
                    continue
                self._shared.warned_pairs.add(pair)
            logger.warning(
                "fallback model %s costs over %gx the primary %s per call: check "
                "client.estimate_cost(%r, ...) before relying on it",
                fallback,
                EXPENSIVE_FALLBACK_RATIO,
                chain[0],
                list(chain),
            )

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

    # -- the driver ------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        key = self._options.api_key
        return text.replace(key, "[redacted]") if key and key in text else text

    def _headers(self, extra: Optional[Mapping[str, str]], auth: bool = True) -> Dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._options.api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"cometsync/{__version__} python-requests/{requests.__version__}",
        }
        headers.update(self._options.default_headers)
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
        """Drive one call's flow with the real transport and clock; ``auth=False`` sends no key."""
        if self._shared.closed:
            raise RuntimeError("this cometsync.Client is closed")
        options = self._options
        shared = self._shared
        headers = self._headers(extra_headers, auth)
        flow = call_flow(
            spec,
            chain,
            options.retry,
            clock=shared.clock,
            timeout=timeout or options.timeout,
            deadline=options.deadline,
            guards=shared.guards,
            on_attempt=defer_success(self._on_attempt) if spec.stream else self._on_attempt,
            scrub=self._scrub,
        )
        try:
            action = next(flow)
            while True:
                if isinstance(action, Send):
                    outcome: Any = self._send(action, headers)
                else:
                    assert isinstance(action, Sleep)
                    shared.clock.sleep(action.seconds)
                    outcome = None
                action = flow.send(outcome)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        except APIError as error:
            self._scrub_error(error)
            raise
        finally:
            flow.close()

    def _send(self, action: Send, headers: Mapping[str, str]) -> Any:
        body = None
        if action.body is not None:
            body = json.dumps(action.body, separators=(",", ":"), ensure_ascii=False).encode()
        request = HTTPRequest(action.method, self._url(action.path), headers, body, action.stream)
        # The wait for a slot is bounded like the attempt itself (already cut to the
        # deadline's remainder), so a congested model fails as a timeout, never hangs.
        wait = max(action.timeout.connect, action.timeout.read)
        clock = self._shared.clock
        try:
            with self._shared.guards.slot(action.model, wait):
                timeout = action.timeout
                if action.stop_at is not None:  # the slot wait came out of the deadline
                    left = action.stop_at - clock.monotonic()
                    if left <= 0:
                        raise PoolTimeoutError(
                            "the call's deadline passed while waiting for a slot"
                        )
                    timeout = timeout.capped(left)
                response = self._shared.transport.send(request, timeout)
                # Read a stream up to its first chunk here, so failures before it are retried.
                return open_stream(response, action.model) if action.stream else response
        except APIError as error:
            return error

    def _scrub_error(self, error: APIError) -> None:
        """Remove the key from an error a server may have echoed it into (message and body)."""
        if error.args and isinstance(error.args[0], str):
            error.args = (self._scrub(error.args[0]), *error.args[1:])
        error.message = self._scrub(error.message)
        if isinstance(error, APIStatusError):
            error.body = _scrub_json(error.body, self._scrub)

    def _url(self, path: str) -> str:
        # A flow path is relative to base_url, except an absolute URL: the catalog lives at
        # the origin (/api/models), outside base_url's /v1.
        if path.startswith(("http://", "https://")):
            return path
        return self._options.base_url + path

    def _route(self, path: str) -> str:
        return urlsplit(self._options.base_url).path + path


def _scrub_json(value: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_json(v, scrub) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_json(v, scrub) for v in value]
    return value


def _validate_messages(messages: Any) -> None:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, (list, tuple)):
        raise RequestTypeError(
            f"messages must be a list of {{'role': ..., 'content': ...}} dicts, "
            f"got {type(messages).__name__}"
        )
    if not messages:
        raise RequestValidationError("messages must not be empty")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise RequestTypeError(f"messages[{i}] must be a dict, got {type(message).__name__}")
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise RequestValidationError(f"messages[{i}] needs a non-empty string 'role'")
        content = message.get("content", _UNSET)
        if content is _UNSET:
            if role == "assistant" and ("tool_calls" in message or "function_call" in message):
                continue
            raise RequestValidationError(f"messages[{i}] ({role}) needs a 'content' key")
        if content is not None and not isinstance(content, (str, list)):
            raise RequestTypeError(
                f"messages[{i}].content must be a string, a list of parts or None, "
                f"got {type(content).__name__}"
            )


# Client settings an openai-python user may pass to create(); sent as body fields they would
# be silently ignored by the gateway, so they are refused with the way to set them.
_CLIENT_SETTINGS = frozenset(
    {
        "api_key",
        "base_url",
        "catalog_ttl",
        "clock",
        "deadline",
        "default_headers",
        "guards",
        "max_retries",
        "max_workers",
        "on_attempt",
        "price_calls",
        "protections",
        "retry",
        "session",
        "transport",
    }
)


def _refuse_client_settings(params: Mapping[str, Any]) -> None:
    for name in params:
        if name in _CLIENT_SETTINGS:
            raise RequestTypeError(
                f"create() got {name}=, a client setting that would be sent to the gateway as "
                f"a body field; use client.with_options({name}=...) for this call instead"
            )
        if name == "fallback_model":
            raise RequestTypeError("create() got fallback_model=; did you mean fallback_models=?")


def _check_json(body: Mapping[str, Any]) -> None:
    """The body must be strict JSON (no NaN/Infinity); name the parameter that is not."""
    try:
        json.dumps(body, allow_nan=False)
    except (TypeError, ValueError):
        for key, value in body.items():
            try:
                json.dumps(value, allow_nan=False)
            except TypeError as exc:
                raise RequestTypeError(f"{key} is not JSON-serialisable: {exc}") from None
            except ValueError as exc:
                raise RequestValidationError(f"{key} is not valid JSON: {exc}") from None
        raise


def _chain(model: Any, fallback: Sequence[str]) -> Tuple[str, ...]:
    if not isinstance(model, str):
        raise RequestTypeError(f"model must be a string, got {type(model).__name__}")
    if not model.strip():
        raise RequestValidationError("model must be a non-empty model id")
    seen: List[str] = []
    for m in (model, *fallback):
        if m not in seen:
            seen.append(m)
    return tuple(seen)


def _check_stream_fields(body: Mapping[str, Any], stream: bool) -> None:
    if not stream and body.get("stream"):
        raise RequestValidationError("to stream, pass stream=True (not in extra_body)")
    if not stream and body.get("stream_options") is not None:
        raise RequestValidationError("stream_options is only allowed with stream=True")


def _parse_completion(response: ResponseLike, model: Optional[str]) -> ChatCompletion:
    return ChatCompletion.from_dict(response.json(), requested_model=model or "")


def _attach(result: ChatCompletion, attempts: Sequence[Attempt]) -> ChatCompletion:
    return dataclasses.replace(result, attempts=tuple(attempts))


class Completions:
    """``client.chat.completions``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        fallback_models: Optional[Sequence[str]] = None,
        stream: Literal[False] = False,
        timeout: TimeoutLike = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **params: Any,
    ) -> ChatCompletion: ...

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        fallback_models: Optional[Sequence[str]] = None,
        stream: Literal[True],
        timeout: TimeoutLike = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **params: Any,
    ) -> Stream: ...

    def create(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        fallback_models: Optional[Sequence[str]] = None,
        stream: bool = False,
        timeout: TimeoutLike = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **params: Any,
    ) -> Union[ChatCompletion, Stream]:
        """Create a chat completion, retrying and falling back as the client's policy says.

        Args:
            model: the model to try first.
            messages: the conversation, OpenAI format.
            fallback_models: replaces the client's chain for this call; never sent.
            stream: True returns a ``Stream`` of chunks; retry and fallback apply until its
                first chunk arrives, after which a failure raises ``APIStreamError``.
            timeout: per-attempt timeout for this call.
            extra_headers: headers added to this call's requests.
            extra_body: fields merged into the JSON body as they are.
            **params: every other OpenAI chat parameter, passed through unchanged.

        Raises:
            TypeError, RequestValidationError: the request cannot be valid (nothing sent).
            APIError: the chain failed; the last error, with ``.attempts``.
        """
        client = self._client
        _refuse_client_settings(params)
        fallback = (
            client._options.fallback_models
            if fallback_models is None
            else _check_model_list(fallback_models, "fallback_models")
        )
        chain = _chain(model, fallback)
        _validate_messages(messages)
        if not isinstance(stream, bool):
            raise RequestTypeError(f"stream must be True or False, got {stream!r}")
        body: Dict[str, Any] = {"messages": list(messages), **params}
        if extra_body:
            body.update(extra_body)
        body.pop("model", None)
        _check_stream_fields(body, stream)
        _check_json(body)
        per_call_timeout = None if timeout is None else Timeout.coerce(timeout)
        if stream:
            stream_call = stream_spec(
                client._route("/chat/completions"),
                body,
                clock=client._shared.clock,
                emit=client._on_attempt,
                scrub=client._scrub,
            )
            headers = {"Accept": "text/event-stream", **(extra_headers or {})}
            return client._call(stream_call, chain, timeout=per_call_timeout, extra_headers=headers)
        spec: CallSpec[ChatCompletion] = CallSpec(
            method="POST",
            path="/chat/completions",
            route=client._route("/chat/completions"),
            parse=_parse_completion,
            body=body,
            attach=_attach,
        )
        result = client._call(
            spec,
            chain,
            timeout=per_call_timeout,
            extra_headers=extra_headers,
        )
        return client._price(result, chain)

    def submit(self, **create_kwargs: Any) -> Future[ChatCompletion]:
        """Run ``create(**create_kwargs)`` on the client's bounded thread pool.

        Returns:
            A future of the ChatCompletion; every failure of the call, including a request
            that cannot be valid, is raised by ``future.result()``.

        Raises:
            RequestValidationError: ``stream=True`` (a stream belongs to the thread reading it).
            RuntimeError: the client is closed.
        """
        _refuse_stream(create_kwargs, "submit")
        return self._client._shared.pool().submit(self._run, create_kwargs)

    def map(
        self, requests: Iterable[Mapping[str, Any]], *, return_exceptions: bool = False
    ) -> Iterator[Union[ChatCompletion, BaseException]]:
        """Run many ``create`` calls on the thread pool; yield their results in input order.

        ``requests`` is read lazily, at most twice ``max_workers`` items ahead of what has been
        yielded, so an endless generator runs in bounded memory and no worker idles behind
        one slow request. An item that is not a valid request (not a dict, no ``model``,
        ``stream=True``) fails alone, like an item whose call failed.

        Args:
            requests: ``create`` keyword dicts.
            return_exceptions: yield a failed item's exception in its place.

        Raises:
            BaseException: without ``return_exceptions``, the first failure in input order,
                after cancelling every item not yet started. On KeyboardInterrupt, or when
                you stop iterating, the items not yet started are cancelled.
        """
        pool = self._client._shared.pool()

        def start(item: Any) -> Future[ChatCompletion]:
            if not isinstance(item, Mapping):
                return failed_future(
                    TypeError(
                        f"each request must be a dict of create() arguments, "
                        f"got {type(item).__name__}"
                    )
                )
            try:
                _refuse_stream(item, "map")
            except RequestValidationError as exc:
                return failed_future(exc)
            return pool.submit(self._run, item)

        return ordered_map(
            start,
            requests,
            window=2 * self._client.max_workers,
            return_exceptions=return_exceptions,
        )

    def _run(self, kwargs: Mapping[str, Any]) -> ChatCompletion:
        result: ChatCompletion = self.create(**kwargs)  # stream=True was refused before
        return result


def _refuse_stream(kwargs: Mapping[str, Any], where: str) -> None:
    if kwargs.get("stream"):
        raise RequestValidationError(
            f"stream=True cannot be used with {where}(): read streams with create() "
            "in the thread that consumes them"
        )


class Chat:
    """``client.chat``."""

    def __init__(self, client: Client) -> None:
        self.completions = Completions(client)


def _parse_models(response: ResponseLike, model: Optional[str]) -> List[Model]:
    data = response.json()
    entries = data.get("data") if isinstance(data, Mapping) else None
    if not isinstance(entries, list):
        raise ValueError("the body has no 'data' list")
    return [Model.from_dict(entry) for entry in entries]


def _parse_catalog(response: ResponseLike, model: Optional[str]) -> Tuple[ModelInfo, ...]:
    return parse_catalog(response.json())


class Models:
    """``client.models``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> List[Model]:
        """The models the gateway serves (``GET /v1/models``), retried like any call."""
        spec: CallSpec[List[Model]] = CallSpec(
            method="GET",
            path="/models",
            route=self._client._route("/models"),
            parse=_parse_models,
        )
        return self._client._call(spec, [None])
