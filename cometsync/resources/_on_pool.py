"""Running a resource's ``create`` on the client's pool: ``submit`` and the lazy ``map``.

One place for both resources (chat completions, embeddings), so an item is checked, started
and windowed the same way whichever endpoint it calls.
"""

from __future__ import annotations

import inspect
from concurrent.futures import Future
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Optional,
    TypeVar,
    Union,
)

from .._pool import bounded_map, failed_future, map_window
from .._validate import _check_map_item

if TYPE_CHECKING:
    from .._client import Client

__all__ = ["map_on_pool", "submit_on_pool"]

R = TypeVar("R")

#: Refuses an item for a reason of its resource (e.g. ``stream=True``): the error, or None.
Refusal = Callable[[Mapping[str, Any]], Optional[BaseException]]


def submit_on_pool(
    client: Client, create: Callable[..., Any], run: Callable[..., R], kwargs: Mapping[str, Any]
) -> Future[R]:
    """Start ``run(**kwargs)`` on the pool; arguments ``create`` refuses fail in the future."""
    pool = client._shared.pool()
    bad = _check_map_item(kwargs, inspect.signature(create), "submit()")
    return pool.submit(lambda: run(**kwargs)) if bad is None else failed_future(bad)


def map_on_pool(
    client: Client,
    create: Callable[..., Any],
    run: Callable[..., R],
    requests: Iterable[Mapping[str, Any]],
    *,
    return_exceptions: bool,
    ordered: bool,
    refuse: Optional[Refusal] = None,
) -> Iterator[Union[R, BaseException]]:
    """``run`` for each request on the pool, lazily; an item ``create`` refuses fails alone."""
    if not isinstance(ordered, bool):
        raise TypeError(f"ordered must be True or False, got {ordered!r}")
    pool = client._shared.pool()
    workers = client.max_workers
    signature = inspect.signature(create)
    read = [0]

    def start(item: Any) -> Future[R]:
        read[0] += 1
        bad: Optional[BaseException] = _check_map_item(
            item, signature, f"map() requests[{read[0] - 1}]"
        )
        if bad is None and refuse is not None:
            bad = refuse(item)
        if bad is not None:
            return failed_future(bad)
        return pool.submit(lambda: run(**item))

    return bounded_map(
        start,
        requests,
        window=map_window(workers),
        ahead=2 * workers,
        ordered=ordered,
        return_exceptions=return_exceptions,
    )
