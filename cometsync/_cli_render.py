"""What the ``cometsync`` command prints: errors, attempts, the model table, estimates."""

from __future__ import annotations

import sys
from typing import Optional, Sequence, TextIO

from ._catalog import ModelInfo
from ._pricing import CostEstimate
from ._types import Attempt

__all__ = ["_err", "_money", "_print_estimate", "_print_models", "_show_attempts"]


def _err(message: str) -> None:
    print(f"cometsync: {message}", file=sys.stderr)


def _money(value: Optional[float]) -> str:
    return "unknown" if value is None else f"${value:.6f}"


def _price(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:g}"


def _show_attempts(attempts: Sequence[Attempt], out: TextIO) -> None:
    for a in attempts:
        parts = [
            f"attempt {a.attempt}",
            f"model={a.model}",
            f"status={a.status if a.status is not None else '-'}",
            f"latency={a.latency:.3f}s",
            f"decision={a.decision}",
        ]
        if a.queued >= 0.0005:  # shown when it rounds to something
            parts.insert(3, f"queued={a.queued:.3f}s")
        if a.duration is not None and a.duration != a.latency:
            parts.append(f"duration={a.duration:.3f}s")  # a stream: latency is to 1st chunk
        if a.delay is not None:
            parts.append(f"delay={a.delay:.3f}s")
        if a.reason:
            parts.append(f"reason={a.reason!r}")
        if a.error:
            parts.append(f"error={a.error}")
        print("  " + " ".join(parts), file=out)


def _print_models(models: Sequence[ModelInfo]) -> None:
    rows = [("model", "provider", "type", "input/M", "output/M", "per request", "per second")]
    for m in models:
        p = m.pricing
        rows.append(
            (
                m.id,
                m.provider or "-",
                m.model_type or "-",
                _price(p.input),
                _price(p.output),
                _price(p.per_request),
                _price(p.per_second),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        left = "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths[:3]))
        right = "  ".join(cell.rjust(w) for cell, w in zip(row[3:], widths[3:]))
        print(f"{left}  {right}")
    currencies = sorted({m.pricing.currency for m in models})
    print(f"{len(models)} models; prices in {', '.join(currencies) or 'USD / M Tokens'}")


def _print_estimate(est: CostEstimate) -> None:
    print(f"one request of {est.prompt_tokens} prompt + {est.completion_tokens} completion tokens:")
    width = max(len(m) for m, _ in est.per_model)
    for i, (model, cost) in enumerate(est.per_model):
        role = "primary " if i == 0 else "fallback"
        note = ""
        if cost is None:
            note = "  (not in the catalog or no usable price)"
        elif model in est.expensive_fallbacks:
            note = "  (over 3x the primary)"
        print(f"  {role}  {model.ljust(width)}  {_money(cost):>12}{note}")
    print(f"  primary answers:              {_money(est.primary):>12}")
    print(f"  priciest single model:        {_money(est.max_single):>12}")
    print(f"  worst case, each billed once: {_money(est.worst_case):>12}")
    for model in est.expensive_fallbacks:
        print(f"warning: fallback {model} costs over 3x the primary per request")
