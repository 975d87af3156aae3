"""Output shared by the benchmark scenarios: terminal tables, JSON files, plots."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

__all__ = ["format_table", "need_matplotlib", "write_json"]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned table (numbers right-aligned, text left-aligned)."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    numeric = [
        all(isinstance(row[i], (int, float)) for row in rows if row[i] is not None)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def write_json(path: str, data: Any) -> None:
    """Write ``data`` as indented JSON (``-`` means standard output)."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    Path(path).write_text(text, encoding="utf-8")


def need_matplotlib() -> Any:
    """``matplotlib.pyplot`` on the non-interactive backend, or a clear error."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit(
            "--plot needs matplotlib: pip install 'cometsync[bench]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def series(
    rows: List[Dict[str, Any]], key: str, x: str, y: str
) -> Dict[str, Tuple[List[Any], List[Any]]]:
    """Rows grouped by ``key`` into ``(xs, ys)`` lists, in row order."""
    out: Dict[str, Tuple[List[Any], List[Any]]] = {}
    for row in rows:
        xs, ys = out.setdefault(str(row[key]), ([], []))
        xs.append(row[x])
        ys.append(row[y])
    return out
