"""The files of ``cometsync batch``: the input read lazily, line by line, and what an existing
output already holds (for ``--resume``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator, Set, Tuple

from ._batch_lines import custom_id_of
from ._errors import CometError

__all__ = ["BatchFileError", "DoneLines", "count_todo", "input_lines", "read_done"]


class BatchFileError(CometError, ValueError):
    """An input or output file the batch cannot use (missing, corrupt in the middle, ...)."""


def input_lines(path: str) -> Iterator[Tuple[int, str]]:
    """(line number, text) of each non-blank line; the file is read lazily."""
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise BatchFileError(f"cannot read the input {path}: {exc.strerror or exc}") from None
    with handle:
        try:
            for number, text in enumerate(handle, start=1):
                if text.strip():
                    yield number, text
        except UnicodeDecodeError as exc:
            raise BatchFileError(f"the input {path} is not UTF-8 text: {exc}") from None


@dataclass(frozen=True)
class DoneLines:
    """What an existing output already holds."""

    ids: Set[str]
    failed: int
    dropped_partial_line: bool


def read_done(path: str, *, repair: bool = True) -> DoneLines:
    """The custom_ids already in ``path``; a truncated last line (a hard kill) is cut off.

    Raises:
        BatchFileError: a complete line that is not a result line: the file is not ours, or
            was edited; nothing is changed so no data is lost.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return DoneLines(set(), 0, False)
    except OSError as exc:
        raise BatchFileError(f"cannot read the output {path}: {exc.strerror or exc}") from None
    complete, _, tail = data.rpartition(b"\n")
    ids: Set[str] = set()
    failed = 0
    for number, raw in enumerate(complete.split(b"\n") if complete else [], start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            custom_id = record["custom_id"]
            if not isinstance(custom_id, str):
                raise TypeError("custom_id is not a string")
        except (ValueError, KeyError, TypeError) as exc:
            raise BatchFileError(
                f"the output {path} line {number} is not a result line ({exc}); "
                "fix or remove it, or write to another output file"
            ) from None
        ids.add(custom_id)
        failed += record.get("error") is not None
    if tail and repair:
        # The last write was cut short: drop the partial line so the rewrite is clean.
        with open(path, "r+b") as handle:
            handle.truncate(len(data) - len(tail))
    return DoneLines(ids, failed, bool(tail))


def count_todo(input_path: str, done: Set[str]) -> int:
    """How many input lines this run will process (for the progress bar's total)."""
    seen: Set[str] = set()
    todo = 0
    for number, text in input_lines(input_path):
        custom_id = _quick_id(text, number)
        # A duplicate is reported (and counted) even when its first line is already done.
        if custom_id in seen or custom_id not in done:
            todo += 1
        seen.add(custom_id)
    return todo


def _quick_id(text: str, number: int) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return f"line-{number}"
    if isinstance(data, dict):
        return custom_id_of(data, number)[0]
    return f"line-{number}"
