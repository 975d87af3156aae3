"""Per-attempt metrics: the logging line, and an aggregating ``on_attempt`` recorder."""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter, defaultdict
from typing import Any, DefaultDict, Dict, List, Optional, Sequence, Tuple

from ._types import Attempt

__all__ = ["MetricsRecorder", "log_attempt", "percentile"]

logger = logging.getLogger("cometsync")

Key = Tuple[str, Optional[str], Optional[int]]


def log_attempt(attempt: Attempt) -> None:
    """Log one attempt: DEBUG when it succeeded, INFO when it led to a retry or fallback."""
    level = logging.DEBUG if attempt.decision == "success" else logging.INFO
    if not logger.isEnabledFor(level):
        return
    logger.log(
        level,
        "%s model=%s status=%s latency=%.3fs attempt=%d decision=%s%s%s%s%s",
        attempt.route,
        attempt.model,
        attempt.status,
        attempt.latency,
        attempt.attempt,
        attempt.decision,
        f" queued={attempt.queued:.3f}s" if attempt.queued else "",
        f" delay={attempt.delay:.3f}s" if attempt.delay is not None else "",
        f" duration={attempt.duration:.3f}s" if attempt.duration is not None else "",
        f" reason={attempt.reason!r}" if attempt.reason else "",
    )


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100); NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class MetricsRecorder:
    """An ``on_attempt`` hook that aggregates attempts per (route, model, status).

    Thread-safe. Keeps every latency sample (8 bytes each); call ``reset()`` between runs of
    a long-lived process. ``snapshot()`` gives rows with count and p50/p95/p99 latency (the
    exchange alone: time to first chunk for streams); ``queued_snapshot()`` the same of the
    time attempts waited in the client before they were sent (limiter slot, pacing, server
    hold); ``duration_snapshot()`` the same of streams' total durations.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latencies: DefaultDict[Key, List[float]] = defaultdict(list)
        self._durations: DefaultDict[Key, List[float]] = defaultdict(list)
        self._queued: DefaultDict[Key, List[float]] = defaultdict(list)
        self._decisions: Counter[str] = Counter()
        self._cost: DefaultDict[Optional[str], float] = defaultdict(float)

    def __call__(self, attempt: Attempt) -> None:
        key = (attempt.route, attempt.model, attempt.status)
        with self._lock:
            self._latencies[key].append(attempt.latency)
            self._queued[key].append(attempt.queued)
            if attempt.duration is not None:
                self._durations[key].append(attempt.duration)
            self._decisions[attempt.decision] += 1

    def add_cost(self, model: Optional[str], usd: float) -> None:
        """Add the price of a finished call to ``model``'s total."""
        with self._lock:
            self._cost[model] += usd

    def snapshot(self) -> List[Dict[str, Any]]:
        """One row per (route, model, status), sorted: count and latency percentiles (s)."""
        return self._rows(self._latencies)

    def queued_snapshot(self) -> List[Dict[str, Any]]:
        """Like ``snapshot()``, of the seconds attempts waited in the client before sending."""
        return self._rows(self._queued)

    def duration_snapshot(self) -> List[Dict[str, Any]]:
        """Like ``snapshot()``, of streams' total durations (request sent to the stream's end)."""
        return self._rows(self._durations)

    def _rows(self, samples: DefaultDict[Key, List[float]]) -> List[Dict[str, Any]]:
        with self._lock:
            items = [(k, sorted(v)) for k, v in samples.items()]
        rows = []
        for (route, model, status), values in sorted(items, key=lambda kv: _sort_key(kv[0])):
            rows.append(
                {
                    "route": route,
                    "model": model,
                    "status": status,
                    "count": len(values),
                    "p50": percentile(values, 50),
                    "p95": percentile(values, 95),
                    "p99": percentile(values, 99),
                }
            )
        return rows

    def decisions(self) -> Dict[str, int]:
        """How many attempts ended in each decision (success, retry, fallback, raise)."""
        with self._lock:
            return dict(self._decisions)

    def cost_by_model(self) -> Dict[Optional[str], float]:
        """USD spent per model (calls whose price was known)."""
        with self._lock:
            return dict(self._cost)

    def reset(self) -> None:
        with self._lock:
            self._latencies.clear()
            self._durations.clear()
            self._queued.clear()
            self._decisions.clear()
            self._cost.clear()

    def summary(self) -> str:
        """A plain-text table of ``snapshot()`` (latency) beside ``queued_snapshot()``."""
        lines = [
            f"{'route':<24} {'model':<28} {'status':>6} {'count':>7} "
            f"{'p50':>8} {'p95':>8} {'p99':>8} {'queued p50':>10} {'queued p95':>10}"
        ]
        queued = {(r["route"], r["model"], r["status"]): r for r in self.queued_snapshot()}
        for row in self.snapshot():
            wait = queued.get((row["route"], row["model"], row["status"]))
            q50, q95 = (wait["p50"], wait["p95"]) if wait else (math.nan, math.nan)
            lines.append(
                f"{row['route']:<24} {row['model'] or '-':<28} {row['status'] or '-':>6} "
                f"{row['count']:>7} {row['p50'] * 1000:>6.1f}ms {row['p95'] * 1000:>6.1f}ms "
                f"{row['p99'] * 1000:>6.1f}ms {q50 * 1000:>8.1f}ms {q95 * 1000:>8.1f}ms"
            )
        return "\n".join(lines)


def _sort_key(key: Key) -> Tuple[str, str, int]:
    route, model, status = key
    return (route, model or "", status if status is not None else -1)
