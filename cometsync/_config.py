"""A client's settings (copied by ``with_options``) and the state its copies share."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Set, Tuple

from ._catalog import CatalogCache
from ._clock import Clock
from ._errors import ClientClosedError, ConfigError
from ._policy import RetryPolicy
from ._transport import Transport
from ._types import Attempt, Timeout, TimeoutLike
from ._validate import _check_base_url, _check_deadline, _check_model_list
from .guards import Guards

__all__ = ["OnAttempt", "_Options", "_Shared", "_make_options", "_with_max_retries"]

OnAttempt = Callable[[Attempt], None]


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
    stream_recovery: bool = True


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
                raise ClientClosedError("this cometsync.Client is closed")
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
    stream_recovery: Any = True,
) -> _Options:
    """Check and normalise the settings a client is built or copied with."""
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigError(f"retry must be a cometsync.RetryPolicy, got {retry!r}")
    if on_attempt is not None and not callable(on_attempt):
        raise ConfigError(f"on_attempt must be callable, got {on_attempt!r}")
    if not isinstance(stream_recovery, bool):
        raise ConfigError(f"stream_recovery must be True or False, got {stream_recovery!r}")
    return _Options(
        api_key=api_key,
        base_url=_check_base_url(base_url),
        fallback_models=_check_model_list(fallback_models, "fallback_models"),
        retry=retry or RetryPolicy(),
        timeout=Timeout.coerce(timeout),
        deadline=_check_deadline(deadline),
        on_attempt=on_attempt,
        default_headers=dict(default_headers),
        stream_recovery=stream_recovery,
    )
