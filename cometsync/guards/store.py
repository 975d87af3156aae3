"""Where the shared protections keep their state: this process's memory, or Redis.

Both stores answer the same three operations with the decisions of ``admission`` (the
memory store calls the Python functions under a lock; the Redis store runs their Lua twins,
one atomic script per operation). When Redis is unreachable or slow, ``RedisStore`` answers
from its own memory store (so the client keeps its per-process protections), logs one
WARNING, tries Redis again every ``retry_every`` seconds and logs at INFO when it is back.

Redis keys: ``<namespace>:{<key id>}:m:<model>`` (one hash per key and model) and
``<namespace>:{<key id>}:budget``; the key id is a hash of the API key, never the key; the
braces are a Redis Cluster hash tag, so all of a key's state sits in one slot; every write
sets an expiry, so the key count stays bounded by the (key, model) pairs in use.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, TypeVar
from urllib.parse import urlsplit

from .._clock import Clock
from .._errors import ConfigError
from . import admission as model_
from ._lua import ADMIT_LUA, BUDGET_LUA, OBSERVE_LUA

__all__ = ["MemoryStore", "RedisStore", "Store", "key_id"]

logger = logging.getLogger("cometsync")

T = TypeVar("T")

#: How long one Redis command may take before the client falls back to local state.
REDIS_TIMEOUT = 0.05
#: Seconds between two attempts to reach Redis while it is down.
REDIS_RETRY_EVERY = 3.0


def key_id(api_key: str) -> str:
    """A short, stable, non-reversible id of an API key (the key never reaches Redis or logs)."""
    return hashlib.sha256(b"cometsync-key-id:" + api_key.encode()).hexdigest()[:20]


class Store:
    """The three atomic operations every store answers (this base keeps nothing)."""

    def admit(self, scope: str, model: Optional[str], argv: Sequence[float]) -> Tuple[str, float]:
        """``admission.admit`` on the (scope, model) state (and the scope's budget)."""
        return "go", 0.0

    def observe(self, scope: str, model: Optional[str], argv: Sequence[float]) -> Tuple[str, float]:
        """``admission.observe`` on the (scope, model) state."""
        return "", 0.0

    def budget(self, scope: str, argv: Sequence[float]) -> bool:
        """``admission.budget`` on the scope's retry budget."""
        return True

    #: Whether several clients may share this store, so that breaker and retry budget are
    #: kept in it too (else they stay with each client's local protections only).
    fleet = False

    @property
    def shared(self) -> bool:
        """Whether the clients sharing this store see its state right now (not a fallback)."""
        return self.fleet

    def describe(self) -> Dict[str, Any]:
        """What the store is and how it fares (plain data, for ``Client.stats()``)."""
        return {"backend": "none"}

    def close(self) -> None:
        """Release connections the store opened."""


class MemoryStore(Store):
    """State in this process's memory: per-process rate limits, and the fallback of Redis.

    With ``fleet=True`` it stands for a store several clients share (the model of Redis a
    virtual-time engine gives every simulated process, or clients of one process): breaker
    and retry budget are then kept in it as well, exactly as ``RedisStore`` keeps them.
    """

    def __init__(self, *, fleet: bool = False) -> None:
        self.fleet = fleet
        self._lock = threading.Lock()
        self._models: Dict[Tuple[str, Optional[str]], model_.State] = {}
        self._budgets: Dict[str, model_.State] = {}

    def admit(self, scope: str, model: Optional[str], argv: Sequence[float]) -> Tuple[str, float]:
        with self._lock:
            state = self._models.setdefault((scope, model), {})
            return model_.admit(state, argv, self._budgets.setdefault(scope, {}))

    def observe(self, scope: str, model: Optional[str], argv: Sequence[float]) -> Tuple[str, float]:
        with self._lock:
            return model_.observe(self._models.setdefault((scope, model), {}), argv)

    def budget(self, scope: str, argv: Sequence[float]) -> bool:
        with self._lock:
            return model_.budget(self._budgets.setdefault(scope, {}), argv)

    def describe(self) -> Dict[str, Any]:
        return {"backend": "memory", "fleet": self.fleet} if self.fleet else {"backend": "memory"}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _where(url: str) -> str:
    """A Redis URL without its credentials, for logs."""
    parts = urlsplit(url)
    return f"redis://{parts.hostname or '127.0.0.1'}:{parts.port or 6379}{parts.path or ''}"


class RedisStore(Store):
    """State in Redis, shared by every process that uses the same namespace and API key.

    Args:
        target: a ``redis://`` URL (the store opens a pool with 50 ms socket timeouts and no
            retries, and closes it), or a ``redis.Redis`` the caller owns and configures.
        namespace: prefix of every key, to separate applications on one Redis.
        clock: monotonic time for the down-circuit.
        timeout: socket timeout of the store's own connections, seconds.
        retry_every: while Redis is down, seconds between two tries.

    Raises:
        ConfigError: the ``redis`` package is missing, or ``target`` is neither.
    """

    def __init__(
        self,
        target: Any,
        namespace: str,
        clock: Clock,
        *,
        timeout: float = REDIS_TIMEOUT,
        retry_every: float = REDIS_RETRY_EVERY,
    ) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:  # pragma: no cover - the [redis] extra is installed for tests
            raise ConfigError(
                "shared_state needs the redis package: pip install 'cometsync[redis]'"
            ) from None
        if not isinstance(namespace, str) or not namespace or "{" in namespace:
            raise ConfigError(
                f"shared_namespace must be a non-empty string without braces, got {namespace!r}"
            )
        self._errors: Tuple[Type[BaseException], ...] = (redis.RedisError, OSError)
        self._redis: Any
        if isinstance(target, str):
            if not target.startswith(("redis://", "rediss://", "unix://")):
                raise ConfigError(
                    f"shared_state must be a redis:// URL or a redis.Redis, got {target!r}"
                )
            self._where = _where(target)
            self._redis = redis.Redis.from_url(
                target,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
            )
            self._owns = True
        elif isinstance(target, (redis.Redis, getattr(redis, "RedisCluster", redis.Redis))):
            kwargs = getattr(getattr(target, "connection_pool", None), "connection_kwargs", {})
            self._where = f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
            self._redis = target
            self._owns = False
        else:
            raise ConfigError(
                f"shared_state must be a redis:// URL or a redis.Redis, got {type(target).__name__}"
            )
        self.namespace = namespace
        self.fleet = True
        self._clock = clock
        self._retry_every = retry_every
        self._admit = self._redis.register_script(ADMIT_LUA)
        self._observe = self._redis.register_script(OBSERVE_LUA)
        self._budget = self._redis.register_script(BUDGET_LUA)
        self.local = MemoryStore()
        self._lock = threading.Lock()
        self._down = False
        self._next_try = 0.0
        self.failures = 0

    def model_key(self, scope: str, model: Optional[str]) -> str:
        """The Redis key of one (API key, model) pair's state."""
        return f"{self.namespace}:{{{scope}}}:m:{'-' if model is None else model}"

    def budget_key(self, scope: str) -> str:
        """The Redis key of an API key's retry budget."""
        return f"{self.namespace}:{{{scope}}}:budget"

    def _run(self, call: Callable[[], T], fallback: Callable[[], T]) -> T:
        now = self._clock.monotonic()
        with self._lock:
            if self._down:
                if now < self._next_try:
                    return fallback()
                self._next_try = now + self._retry_every  # one caller tries; the rest wait
        try:
            result = call()
        except self._errors as exc:
            self._went_down(exc, now)
            return fallback()
        if self._down:
            with self._lock:
                was_down, self._down = self._down, False
            if was_down:
                logger.info(
                    "Redis shared state at %s is back; protections are shared again", self._where
                )
        return result

    def _went_down(self, exc: BaseException, now: float) -> None:
        with self._lock:
            self.failures += 1
            first, self._down = not self._down, True
            self._next_try = now + self._retry_every
        if first:
            logger.warning(
                "Redis shared state at %s is unreachable or slow (%s); using per-process "
                "protections, trying Redis again every %gs",
                self._where,
                type(exc).__name__,
                self._retry_every,
            )

    def admit(self, scope: str, model: Optional[str], argv: Sequence[float]) -> Tuple[str, float]:
        def call() -> Tuple[str, float]:
            keys = [self.model_key(scope, model), self.budget_key(scope)]
            out: List[Any] = self._admit(keys=keys, args=list(argv))
            return _text(out[0]), float(_text(out[1]))

        return self._run(call, lambda: self.local.admit(scope, model, argv))

    def observe(self, scope: str, model: Optional[str], argv: Sequence[float]) -> Tuple[str, float]:
        def call() -> Tuple[str, float]:
            out: List[Any] = self._observe(keys=[self.model_key(scope, model)], args=list(argv))
            return _text(out[0]), float(_text(out[1]))

        return self._run(call, lambda: self.local.observe(scope, model, argv))

    def budget(self, scope: str, argv: Sequence[float]) -> bool:
        def call() -> bool:
            return bool(int(self._budget(keys=[self.budget_key(scope)], args=list(argv))))

        return self._run(call, lambda: self.local.budget(scope, argv))

    @property
    def shared(self) -> bool:
        return not self._down

    def describe(self) -> Dict[str, Any]:
        return {
            "backend": "redis",
            "where": self._where,
            "namespace": self.namespace,
            "reachable": not self._down,
            "failures": self.failures,
        }

    def close(self) -> None:
        if self._owns:
            self._redis.close()
