"""The input side of ``cometsync batch``: reading and checking JSONL lines, and what an
existing output already holds (for ``--resume``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Mapping, Optional, Set, Tuple, Union

from ._errors import CometError

__all__ = [
    "BatchFileError",
    "BatchLine",
    "DoneLines",
    "count_todo",
    "input_lines",
    "parse_line",
    "read_done",
]


class BatchFileError(CometError, ValueError):
    """An input or output file the batch cannot use (missing, corrupt in the middle, ...)."""


@dataclass(frozen=True)
class BatchLine:
    """One non-blank input line: its request (``create`` keywords) or why it is malformed."""

    line: int
    custom_id: str
    request: Optional[Dict[str, Any]] = None
    error: Optional[str] = None


def _custom_id(data: Mapping[str, Any], line: int) -> Tuple[str, Optional[str]]:
    value = data.get("custom_id")
    if value is None:
        return f"line-{line}", None
    if not isinstance(value, str) or not value.strip():
        return f"line-{line}", f"custom_id must be a non-empty string, got {value!r}"[:200]
    return value, None


def _check_line(data: Any, default_model: Optional[str]) -> Union[Dict[str, Any], str]:
    """The ``create`` keywords of a decoded line, or the problem with it."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    method = data.get("method", "POST")
    if method != "POST":
        return f"method must be POST, got {method!r}"[:200]
    url = data.get("url", "/v1/chat/completions")
    if not isinstance(url, str) or not url.rstrip("/").endswith("/chat/completions"):
        return f"only /v1/chat/completions is supported, got url {url!r}"[:200]
    body = data.get("body")
    if not isinstance(body, dict):
        return "'body' must be a JSON object (the chat request)"
    if body.get("stream"):
        return "'stream' is not supported in a batch"
    if "messages" not in body:
        return "the body has no 'messages'"
    model = body.get("model", default_model)
    if model is None:
        return "the body has no 'model' and no default model (-m) was given"
    rest = {k: v for k, v in body.items() if k not in ("model", "messages", "stream")}
    # Everything else goes through extra_body so a body key can never collide with one of
    # create()'s own keywords (timeout, fallback_models, ...).
    return {"model": model, "messages": body["messages"], "extra_body": rest}


def parse_line(text: str, line: int, default_model: Optional[str] = None) -> BatchLine:
    """Read one input line (never raises: problems become ``BatchLine.error``)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        reason = getattr(exc, "msg", str(exc))
        column = getattr(exc, "colno", None)
        where = f" at column {column}" if column is not None else ""
        return BatchLine(
            line, f"line-{line}", error=f"line {line}: not valid JSON ({reason}{where})"
        )
    if not isinstance(data, dict):
        return BatchLine(
            line,
            f"line-{line}",
            error=f"line {line}: expected a JSON object, got {type(data).__name__}",
        )
    custom_id, problem = _custom_id(data, line)
    checked = problem if problem is not None else _check_line(data, default_model)
    if isinstance(checked, str):
        return BatchLine(line, custom_id, error=f"line {line}: {checked}")
    return BatchLine(line, custom_id, request=checked)


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
        return _custom_id(data, number)[0]
    return f"line-{number}"
