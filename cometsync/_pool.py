"""The bounded executor's ordered, lazy ``map`` with a bounded window of work in progress."""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from typing import Callable, Deque, Iterable, Iterator, List, TypeVar, Union

__all__ = ["failed_future", "ordered_map"]

T = TypeVar("T")
R = TypeVar("R")


def failed_future(error: BaseException) -> Future[R]:
    """A future that already holds ``error`` (a bad item fails alone, without a thread)."""
    future: Future[R] = Future()
    future.set_exception(error)
    return future


def ordered_map(
    submit: Callable[[T], Future[R]],
    items: Iterable[T],
    *,
    window: int,
    return_exceptions: bool = False,
) -> Iterator[Union[R, BaseException]]:
    """Yield each item's result in input order, with at most ``window`` items submitted ahead.

    The input is read lazily: item ``n + window`` is read only once result ``n`` is taken, so
    a generator of a million requests runs in memory bounded by ``window``. A window larger
    than the pool keeps the workers busy while one slow item holds up the head.

    Args:
        submit: starts one item and returns its future.
        items: the inputs, read lazily.
        window: the most items submitted and not yet yielded (>= 1).
        return_exceptions: yield a failed item's exception in its place instead of raising.

    Raises:
        BaseException: without ``return_exceptions``, the first failure in input order, after
            cancelling every item that has not started. Also on KeyboardInterrupt or when the
            consumer stops early, what has not started is cancelled.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    source = iter(items)
    pending: Deque[Future[R]] = deque()
    broken: List[Exception] = []  # what the input itself raised, re-raised once drained

    def refill() -> None:
        while not broken and len(pending) < window:
            try:
                item = next(source)
            except StopIteration:
                return
            except Exception as exc:  # the calls already started are paid for: finish them
                broken.append(exc)
                return
            pending.append(submit(item))

    try:
        refill()
        while pending:
            head = pending[0]  # stays in pending until done, so an interrupt cancels it too
            error = head.exception()  # blocks; KeyboardInterrupt lands here
            pending.popleft()
            if error is not None and not return_exceptions:
                raise error
            refill()  # start the next item before the consumer works on this result
            yield head.result() if error is None else error
        if broken:
            raise broken[0]
    finally:
        for future in pending:
            future.cancel()
