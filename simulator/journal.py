"""The journal (one record per request, newest kept) and the stats (every request counted).

Not locked by itself: :class:`simulator.core.Core` calls it under its lock. Keys are journaled
redacted.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any, Deque, Dict, List, Optional, Tuple

from .auth import redact
from .replies import Reply

__all__ = ["Journal", "as_dicts", "summarize"]

_FIELDS = ("seq", "t", "key", "model", "route", "status", "fault", "latency_ms", "stream")


class Journal:
    """The newest ``limit`` records and the counts by model and status, cause and fault."""

    def __init__(self, limit: int) -> None:
        self._records: Deque[List[Any]] = deque(maxlen=limit)
        self._stats: Counter[Tuple[str, str]] = Counter()

    def clear(self) -> None:
        """Forget every record and count."""
        self._records.clear()
        self._stats = Counter()

    def record(
        self,
        reply: Reply,
        seq: int,
        t: float,
        key: Optional[str],
        model: Optional[str],
        route: str,
        stream: bool,
        cause: str,
        prefill: bool = False,
    ) -> None:
        """Journal a reply planned ``t`` seconds after the origin, and count it.

        ``prefill``: the request ended with an assistant message (a continuation asked for).
        """
        reply.seq = seq
        reply.cause = cause
        record = [
            seq,
            round(t, 6),
            redact(key),
            model,
            route[:200],
            reply.status,
            reply.fault,
            round(reply.latency * 1000, 3),
            stream,
            cause,
            prefill,
        ]
        reply._record = record
        self._records.append(record)
        m = model if model is not None else "-"
        self._stats[(m, "none" if reply.status is None else str(reply.status))] += 1
        self._stats[("\x00cause", cause)] += 1
        if reply.fault is not None:
            self._stats[("\x00fault", reply.fault)] += 1

    def undelivered(self, reply: Reply) -> None:
        """Mark a journaled reply as never answered: its status becomes None (``none``)."""
        record = reply._record
        if record is not None and record[5] is not None:
            old = record[5]
            record[5] = None
            m = record[3] or "-"
            self._stats[(m, str(old))] -= 1
            self._stats[(m, "none")] += 1

    def rows(self, since: int) -> List[List[Any]]:
        """Copies of the records with ``seq > since``, oldest first."""
        return [list(r) for r in self._records if r[0] > since]

    def counts(self) -> List[Tuple[Tuple[str, str], int]]:
        """A copy of the raw counts."""
        return list(self._stats.items())


def as_dicts(rows: List[List[Any]]) -> List[Dict[str, Any]]:
    """Journal rows as the dicts :meth:`simulator.Core.journal` returns."""
    return [
        {
            **dict(zip(_FIELDS, row)),
            "cause": row[9],
            "prefill": row[10],
            "tag": row[11] if len(row) > 11 else None,
        }
        for row in rows
    ]


def summarize(items: List[Tuple[Tuple[str, str], int]], total: int) -> Dict[str, Any]:
    """Counts of requests by model and status, by cause and by fault."""
    by_model: Dict[str, Dict[str, int]] = {}
    by_status: Counter[str] = Counter()
    by_cause: Counter[str] = Counter()
    by_fault: Counter[str] = Counter()
    for (model, status), count in items:
        if model == "\x00cause":
            by_cause[status] += count
            continue
        if model == "\x00fault":
            by_fault[status] += count
            continue
        by_model.setdefault(model, {})
        by_model[model][status] = by_model[model].get(status, 0) + count
        by_status[status] += count
    return {
        "total": total,
        "by_model": by_model,
        "by_status": dict(by_status),
        "by_cause": dict(by_cause),
        "by_fault": dict(by_fault),
    }
