"""The record of one HTTP attempt, in a module of its own so that both the errors (which carry
the attempt history) and the response types can import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

__all__ = ["Attempt"]


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt of a call, as recorded in ``.attempts`` and passed to ``on_attempt``.

    Attributes:
        model: the model the attempt asked for (None for routes without a model).
        route: the request path, e.g. ``/v1/chat/completions``.
        status: the HTTP status, or None when no response arrived.
        latency: seconds from sending to the response (first chunk for streams): the
            exchange alone, without the time counted in ``queued``.
        attempt: 1-based number of this attempt on its model.
        error: ``"ClassName: message"`` when the attempt failed, else None.
        delay: seconds slept after this attempt before the next one, or None.
        decision: ``success``, ``retry``, ``fallback`` or ``raise``.
        reason: why, when the decision is not the obvious one (budget, deadline, cooldown...).
        duration: for streams, seconds until the stream ended; else equal to ``latency``.
        queued: seconds the attempt waited in the client before it was sent: for a limiter
            slot (the in-flight limit, a rate limit's pacing, the server's hold), or for a
            cooling model of the chain to come back. A retry's backoff is not in it (that is
            the previous attempt's ``delay``).
    """

    model: Optional[str]
    route: str
    status: Optional[int]
    latency: float
    attempt: int
    error: Optional[str] = None
    delay: Optional[float] = None
    decision: str = "success"
    reason: str = ""
    duration: Optional[float] = None
    queued: float = 0.0

    @classmethod
    def _record(
        cls,
        model: Optional[str],
        route: str,
        status: Optional[int],
        latency: float,
        attempt: int,
        error: Optional[str],
        delay: Optional[float],
        decision: str,
        reason: str,
        queued: float = 0.0,
    ) -> Attempt:
        """Build a record without the frozen ``__init__`` (eleven ``object.__setattr__`` calls).

        The flow makes one per attempt and the virtual-time engine runs millions of attempts;
        the result is an ordinary, equal, still-frozen ``Attempt``.
        """
        record = object.__new__(cls)
        record.__dict__.update(
            model=model,
            route=route,
            status=status,
            latency=latency,
            attempt=attempt,
            error=error,
            delay=delay,
            decision=decision,
            reason=reason,
            duration=None,
            queued=queued,
        )
        return record

    def to_dict(self) -> Dict[str, Any]:
        return {
            "model": self.model,
            "route": self.route,
            "status": self.status,
            "latency": self.latency,
            "attempt": self.attempt,
            "error": self.error,
            "delay": self.delay,
            "decision": self.decision,
            "reason": self.reason,
            "duration": self.duration,
            "queued": self.queued,
        }
