"""Waiting for an attempt's turn under a shared rate limit: reserve it once, sleep, send.

Kept apart from ``SharedGuards`` so the loop reads as one rule: the store reserves a turn
due within what is left of the caller's wait (``admission``'s ``"queued"``), so callers are
served in the order they asked, across threads and processes, and nobody polls.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Deque, Dict, Optional, Tuple

from .._clock import Clock
from .._errors import PoolTimeoutError
from . import admission as model_

__all__ = ["Turns", "pace"]

#: How far ahead an attempt without a timeout may reserve its turn (a day).
FOREVER = 86400.0

Ask = Callable[[int, float], Tuple[str, float]]


def pace(
    ask: Ask,
    clock: Clock,
    forfeit: Callable[[], None],
    model: Optional[str],
    give_up_at: Optional[float],
) -> None:
    """Return when the attempt may be sent; raise PoolTimeoutError when it may not in time.

    ``ask(mode, ahead)`` runs one admission (SEND, or PEEK) in the store. A ``"queued"``
    turn is slept to; on waking, one PEEK checks that no hold or cooldown began meanwhile:
    either forfeits the turn (``forfeit`` refunds its tokens; its request slot is not
    refunded), a cooldown gives the attempt up, a hold makes it queue again after the hold.
    A hold (or a turn beyond ``give_up_at``) reserves nothing: the hold is slept out and
    asked again, the late turn refused at once.
    """
    while True:
        now = clock.monotonic()
        ahead = FOREVER if give_up_at is None else max(0.0, give_up_at - now)
        verdict, wait = ask(model_.SEND, ahead)
        if verdict == "go":
            return
        if verdict == "queued":
            clock.sleep(wait)
            seen, left = ask(model_.PEEK, 0.0)
            if seen not in ("hold", "cooldown"):
                return
            forfeit()
            if seen == "hold":
                continue
            verdict, wait = seen, left
        if verdict == "cooldown":
            raise PoolTimeoutError(
                f"model {model}: cooling down for {wait:.3g}s more (shared); the attempt "
                "was not sent"
            )
        if give_up_at is not None and now + wait > give_up_at:
            raise PoolTimeoutError(
                f"model {model}: the rate limit ({verdict}) allows no request before the "
                f"attempt's timeout (next in {wait:.3g}s)"
            )
        clock.sleep(wait)


class Turns:
    """Turns the store reserved for a virtual-time driver's sends, per model, in order.

    A driver that must never block (``try_acquire``) cannot sleep to its turn: it notes the
    turn here and comes back when it is due; any send of that model that comes back then
    takes it (the process's turns are interchangeable).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._due: Dict[Optional[str], Deque[float]] = {}

    def add(self, model: Optional[str], at: float) -> None:
        """A turn reserved for ``model`` at ``at`` (monotonic seconds)."""
        with self._lock:
            self._due.setdefault(model, deque()).append(at)

    def take(self, model: Optional[str], now: float) -> bool:
        """Take the earliest turn of ``model`` if it is due by ``now``."""
        with self._lock:
            turns = self._due.get(model)
            if turns and turns[0] <= now + model_.EPSILON:
                turns.popleft()
                return True
            return False
