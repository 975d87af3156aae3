"""The bounded executor's lazy ``map``: every worker kept busy, memory bounded by a window.

Two bounds, both independent of the input's length:

- ``ahead``: items submitted to the pool and not finished (running, or queued behind the
  running ones). Twice the pool is enough to keep every worker busy while the consumer works
  on a result, and small enough that a stop starts little more.
- ``window``: items read and not yet yielded. In input order, the results finished behind a
  slow head wait here, so the workers go on with later items until the window is full;
  in completion order nothing waits, and only ``ahead`` applies.
"""

from __future__ import annotations

import queue
from concurrent.futures import Future
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Set, TypeVar, Union

__all__ = ["MAP_WINDOW", "bounded_map", "done_future", "failed_future", "map_window", "ordered_map"]

T = TypeVar("T")
R = TypeVar("R")

#: The least number of items ``map`` holds between reading one and yielding its result.
MAP_WINDOW = 1024


def map_window(max_workers: int) -> int:
    """``map``'s window for a pool of ``max_workers``: ``max(MAP_WINDOW, 8 * max_workers)``."""
    return max(MAP_WINDOW, 8 * max_workers)


def failed_future(error: BaseException) -> Future[R]:
    """A future that already holds ``error`` (a bad item fails alone, without a thread)."""
    future: Future[R] = Future()
    future.set_exception(error)
    return future


def done_future(result: R) -> Future[R]:
    """A future that already holds ``result``."""
    future: Future[R] = Future()
    future.set_result(result)
    return future


def bounded_map(
    submit: Callable[[T], Future[R]],
    items: Iterable[T],
    *,
    window: int,
    ahead: Optional[int] = None,
    ordered: bool = True,
    return_exceptions: bool = False,
) -> Iterator[Union[R, BaseException]]:
    """Yield each item's result, in input or completion order, reading ``items`` lazily.

    A new item is read (and submitted) each time one finishes, also while the consumer waits
    for a slow head in input order: the workers never idle behind it until ``window`` items
    are held. Memory is bounded by ``window`` (items read and not yet yielded), so a
    generator of a million requests runs in constant memory.

    Args:
        submit: starts one item and returns its future (called in the consumer's thread).
        items: the inputs, read lazily in the consumer's thread.
        window: the most items read and not yet yielded (>= 1).
        ahead: the most items submitted and not finished; default ``window``.
        ordered: True yields in input order; False as the items finish.
        return_exceptions: yield a failed item's exception in its place instead of raising.

    Raises:
        BaseException: without ``return_exceptions``, the first failure (in the order of
            yielding), after cancelling every item that has not started. Also on
            KeyboardInterrupt or when the consumer stops early, what has not started is
            cancelled.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    limit = window if ahead is None else min(ahead, window)
    if limit < 1:
        raise ValueError(f"ahead must be >= 1, got {ahead}")
    source = iter(items)
    finished: queue.SimpleQueue[int] = queue.SimpleQueue()  # indices, as they finish
    futures: Dict[int, Future[R]] = {}  # read and not yielded, by input index
    ready: Set[int] = set()  # finished and not yielded (input order only)
    broken: List[Exception] = []  # why reading stopped: an input error is re-raised at the end
    count = [0, 0]  # items read so far; items submitted and not seen to finish

    def refill() -> None:
        while not broken and count[1] < limit and len(futures) < window:
            try:
                item = next(source)
            except StopIteration:
                broken.append(_Exhausted())
                return
            except Exception as exc:  # the calls already started are paid for: finish them
                broken.append(exc)
                return
            index = count[0]
            future = submit(item)
            count[0] += 1
            count[1] += 1
            futures[index] = future
            future.add_done_callback(_announce(finished, index))

    def wait_one() -> int:
        index = finished.get()  # blocks; KeyboardInterrupt lands here
        count[1] -= 1
        future = futures[index]
        if not return_exceptions and (future.cancelled() or future.exception() is not None):
            # This failure will be raised once its turn comes: what follows it is never
            # yielded, so read no more.
            broken.append(_Exhausted())
        refill()  # a worker is free: give it the next item before anything else
        return index

    head = 0
    try:
        refill()
        while futures:
            if ordered:
                while head not in ready:
                    ready.add(wait_one())
                ready.discard(head)
                index, head = head, head + 1
            else:
                index = wait_one()
            future = futures.pop(index)
            error = future.exception()  # already finished: does not block
            if error is not None and not return_exceptions:
                raise error
            refill()  # the window has room again
            yield future.result() if error is None else error
        if broken and not isinstance(broken[0], _Exhausted):
            raise broken[0]
    finally:
        for future in futures.values():
            future.cancel()


def _announce(finished: queue.SimpleQueue[int], index: int) -> Callable[[Future[R]], None]:
    """A done-callback that puts ``index`` on ``finished`` (runs in the finishing thread)."""
    return lambda _: finished.put(index)


class _Exhausted(Exception):
    """The input has no more items (kept apart from an error the input raised)."""


def ordered_map(
    submit: Callable[[T], Future[R]],
    items: Iterable[T],
    *,
    window: int,
    return_exceptions: bool = False,
) -> Iterator[Union[R, BaseException]]:
    """``bounded_map`` in input order with at most ``window`` items read ahead."""
    return bounded_map(submit, items, window=window, return_exceptions=return_exceptions)
