"""``python -m benchmarks failover``: the failover conduct scorecard, over real sockets.

Each cell runs one case of :mod:`benchmarks.failover_cases` (one request, or a sequence for
the outage) through one recipe of :mod:`benchmarks.failover_clients`, against its own
``simulator.Simulator`` on 127.0.0.1, and is scored by :mod:`benchmarks.failover_judge` from
the simulator's journal. A watchdog ends a call that neither answers nor fails: the simulator
is closed under it (which wakes every held connection) and the cell scores ``fail: hang``.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence

from simulator import Simulator

from ._report import format_table
from .failover_cases import CASES, CHAIN, Case, missing_features
from .failover_clients import RECIPES, Answer, Recipe, describe
from .failover_judge import BACK_WITHIN, HAMMER, Verdict, judge

__all__ = ["FAST_SCALE", "WATCHDOG", "markdown", "run", "select", "table"]

#: Seconds (full scale) after which a call with neither an answer nor an error is a hang.
WATCHDOG = 300.0
#: ``--fast``: every wait, timeout, Retry-After and window multiplied by this.
FAST_SCALE = 0.05
#: After the watchdog closed the simulator, how long the call may take to notice (seconds).
_GRACE = 30.0


@dataclass
class Cell:
    """One case through one recipe: the verdict and what it was judged on."""

    case: str
    client: str
    score: str
    note: str
    seconds: float
    trace: str
    slips: List[str]
    answers: List[Dict[str, Any]]
    sequence: bool = False


def select(names: Optional[Sequence[str]], pool: Sequence[Any], what: str) -> List[Any]:
    """The items of ``pool`` whose name is in ``names`` (all when None), or a clear error."""
    if not names:
        return list(pool)
    by_name = {getattr(item, "key", item.name).lower(): item for item in pool}
    chosen = []
    for name in names:
        item = by_name.get(name.strip().lower())
        if item is None:
            known = ", ".join(getattr(i, "key", i.name) for i in pool)
            raise ValueError(f"unknown {what} {name!r}; known: {known}")
        chosen.append(item)
    return chosen


def _drive(
    caller: Any,
    case: Case,
    scale: float,
    origin: float,
    answers: List[Answer],
    state: Dict[str, Any],
) -> None:
    """Send the case's requests in order (a sequence at fixed intervals), recording answers."""
    interval = 0.0 if case.outage is None else case.outage[1] * scale
    # Half an interval late, so the outage ends between two requests, not on one.
    for i in range(case.requests):
        due = origin + (i + 0.5) * interval
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        started = time.monotonic()
        state["started"] = started
        try:
            answer = caller.call(case.stream)
        except Exception as exc:  # the cell records what reached the caller, whatever it is
            answer = Answer(error=describe(exc), attempts=_attempts_of(exc))
        answer.started = started - origin
        answer.elapsed = time.monotonic() - started
        answers.append(answer)
    state["started"] = None


def _attempts_of(exc: BaseException) -> Optional[Any]:
    attempts = getattr(exc, "attempts", None)
    if attempts is None:
        return None
    return tuple((a.model, a.status) for a in attempts)


def run_cell(case: Case, recipe: Recipe, scale: float, seed: int) -> Cell:
    """Run one case through one recipe on a fresh simulator and judge it."""
    missing = recipe.missing() or (
        "the simulator lacks " + ", ".join(missing_features(case))
        if missing_features(case)
        else None
    )
    if missing:
        return Cell(case.name, recipe.name, "n/a", missing, 0.0, "", [], [])
    watchdog = WATCHDOG * scale
    sim = Simulator(case.scenario(scale, hang_s=2 * watchdog + _GRACE), seed=seed)
    caller = None
    answers: List[Answer] = []
    state: Dict[str, Any] = {"started": None}
    hung = False
    try:
        caller = recipe.make(sim.base_url, CHAIN, scale)
        sim.reset()  # time 0 of the scenario (outage windows) is the start of the sequence
        origin = time.monotonic()
        worker = threading.Thread(
            target=_drive, args=(caller, case, scale, origin, answers, state), daemon=True
        )
        worker.start()
        poll = min(0.05, watchdog / 20)
        while worker.is_alive():
            worker.join(poll)
            started = state["started"]
            if started is not None and time.monotonic() - started > watchdog:
                hung = True
                sim.close()  # wakes the held connection; the call then ends with an error
                worker.join(_GRACE)
                break
        seconds = time.monotonic() - origin
        journal = sim.journal()
    finally:
        sim.close()
        if caller is not None:
            caller.close()
    verdict: Verdict = judge(
        case, answers, journal, hung=hung, watchdog=watchdog, scale=scale, seed=seed
    )
    return Cell(
        case.name,
        recipe.name,
        verdict.score,
        verdict.note,
        round(seconds, 3),
        verdict.trace,
        verdict.slips,
        [_public(a) for a in answers],
        sequence=case.requests > 1,
    )


def _public(answer: Answer) -> Dict[str, Any]:
    data = asdict(answer)
    data["started"] = round(answer.started, 3)
    data["elapsed"] = round(answer.elapsed, 3)
    if data["attempts"] is not None:
        data["attempts"] = [list(a) for a in data["attempts"]]
    return data


def run(
    cases: Sequence[Case],
    recipes: Sequence[Recipe],
    *,
    scale: float = 1.0,
    seed: int = 0,
    jobs: int = 4,
) -> List[Cell]:
    """Every case through every recipe, ``jobs`` cells at a time, in table order."""
    pairs = [(case, recipe) for case in cases for recipe in recipes]
    with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="scorecard") as pool:
        futures = [pool.submit(run_cell, c, r, scale, seed) for c, r in pairs]
        return [f.result() for f in futures]


def _grid(cells: Sequence[Cell], recipes: Sequence[Recipe]) -> List[List[Any]]:
    rows: Dict[str, Dict[str, Cell]] = {}
    for cell in cells:
        rows.setdefault(cell.case, {})[cell.client] = cell
    out = []
    for case, by in rows.items():
        row: List[Any] = [case]
        for recipe in recipes:
            c = by.get(recipe.name)
            row.append("" if c is None else _short(c))
        out.append(row)
    return out


def _short(cell: Cell) -> str:
    if cell.score == "n/a":
        return "n/a"
    return f"{cell.score.upper()} {cell.seconds:.1f}s"


def table(cells: Sequence[Cell], recipes: Sequence[Recipe]) -> str:
    """The scorecard as a terminal table, then one line per cell that is not a plain pass."""
    lines = [format_table(["case", *[r.name for r in recipes]], _grid(cells, recipes))]
    notes = [c for c in cells if c.score != "pass" or c.sequence]
    if notes:
        lines.append("")
        lines.extend(f"  {c.case} / {c.client}: {c.score}: {c.note}" for c in notes)
    return "\n".join(lines)


def _md_row(values: Sequence[Any]) -> str:
    return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"


def markdown(cells: Sequence[Cell], recipes: Sequence[Recipe]) -> str:
    """Markdown: the scorecard, the journal of each cell, the notes of cells that did not pass."""
    head = ["case", *[r.name for r in recipes]]
    rule = "|" + "---|" * len(head)
    lines = [_md_row(head), rule, *(_md_row(row) for row in _grid(cells, recipes))]
    lines += [
        "",
        "What the simulator's journal shows (statuses per model, in order; `-`: none):",
        "",
    ]
    lines += [_md_row(head), rule]
    by: Dict[str, Dict[str, Cell]] = {}
    for cell in cells:
        by.setdefault(cell.case, {})[cell.client] = cell
    for case, row in by.items():
        traces = [f"`{row[r.name].trace}`" if r.name in row else "" for r in recipes]
        lines.append(_md_row([case, *traces]))
    notes = [c for c in cells if c.score != "pass" or c.sequence]
    if notes:
        lines.append("")
        for c in notes:
            note = c.note if len(c.note) <= 110 else c.note[:107] + "..."
            lines.append(f"- **{c.case} / {c.client}**: {c.score}: {note}")
    return "\n".join(lines)


def summary(cells: Sequence[Cell], recipes: Sequence[Recipe]) -> List[str]:
    """One line per recipe: how many cells scored each way."""
    out = []
    for recipe in recipes:
        mine = [c.score for c in cells if c.client == recipe.name]
        counts = ", ".join(f"{mine.count(s)} {s}" for s in ("pass", "partial", "safe", "fail"))
        extra = f", {mine.count('n/a')} n/a" if "n/a" in mine else ""
        out.append(f"{recipe.name}: {counts}{extra}  ({recipe.label})")
    return out


def report(cells: Sequence[Cell], scale: float, seed: int) -> Dict[str, Any]:
    """The JSON document of a run."""
    return {
        "scale": scale,
        "seed": seed,
        "watchdog_s": WATCHDOG * scale,
        "hammer_attempts_per_model": HAMMER,
        "back_within_s": BACK_WITHIN * scale,
        "cases": {c.name: c.title for c in CASES},
        "clients": {r.name: r.label for r in RECIPES},
        "cells": [asdict(c) for c in cells],
    }
