"""The batch runner behind ``cometsync batch``: JSONL in, one JSONL result per line out.

Input lines use the OpenAI batch format, ``{"custom_id": ..., "body": {chat request}}``
(``method`` and ``url``, when present, must be ``POST`` and a ``/chat/completions`` URL), or
``{"custom_id", "url": "/v1/embeddings", "body": {embedding request}}``; one file may mix them.
Output lines are ``{"custom_id", "response", "error"}``, written and flushed one by one as
requests finish, so an interrupted run keeps every finished line and ``resume`` continues it.

Decisions:
- a line without ``custom_id`` gets ``line-<N>`` (its 1-based line number), stable as long as
  the input file does not change;
- a malformed line (bad JSON, not an object, bad ``custom_id``/``body``/``url``, no model,
  ``stream``), or one the client refuses before sending it (``messages`` not a list, a
  parameter that is not JSON...), becomes an error line of type ``invalid_input`` naming its
  line number, and the batch goes on;
- a duplicate ``custom_id`` (its second and later lines) is reported with its line number,
  counted as a failure, and NOT written: the output keeps each ``custom_id`` once, so joins
  and ``--resume`` stay unambiguous;
- the body's ``model`` wins; the default model fills in lines without one (embedding lines
  too: give embedding lines their model when the default is a chat model);
- embedding lines never fall back to the client's chat fallback models (vectors of two models
  are not comparable); a line's own ``fallback_models`` is not read either;
- resume skips every ``custom_id`` already in the output, failures included.
"""

from __future__ import annotations

import collections
import json
import os
import threading
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Counter,
    Deque,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Set,
    TextIO,
    Tuple,
    Union,
)

from ._batch_lines import BatchLine, custom_id_of, parse_line
from ._client import Client
from ._embedding_types import CreateEmbeddingResponse
from ._errors import APIError, APIStatusError, CometError, RequestValidationError
from ._pool import ordered_map
from ._types import Attempt, ChatCompletion

__all__ = [
    "BatchFileError",
    "BatchLine",
    "BatchSummary",
    "parse_line",
    "read_done",
    "run_batch",
    "success_record",
]

INVALID = "invalid_input"
DUPLICATE = "duplicate_custom_id"


class BatchFileError(CometError, ValueError):
    """An input or output file the batch cannot use (missing, corrupt in the middle, ...)."""


def _input_lines(path: str) -> Iterator[Tuple[int, str]]:
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


@dataclass
class BatchSummary:
    """Counts of one run; ``previous_*`` describe what the output held before it.

    ``skipped`` counts the input lines not run because their custom_id was already there.
    """

    succeeded: int = 0
    failures: Counter[str] = field(default_factory=collections.Counter)
    attempts: int = 0
    retries: int = 0
    fallbacks: int = 0
    cost_by_model: Dict[str, float] = field(default_factory=dict)
    unpriced: int = 0
    previous_done: int = 0
    previous_failed: int = 0
    skipped: int = 0
    interrupted: bool = False

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def count(self, attempts: Iterable[Attempt]) -> None:
        for attempt in attempts:
            self.attempts += 1
            self.retries += attempt.decision == "retry"
            self.fallbacks += attempt.decision == "fallback"

    def lines(self) -> List[str]:
        """The closing summary, as plain lines."""
        failures = ", ".join(f"{k}: {v}" for k, v in sorted(self.failures.items()))
        out = [
            f"{self.succeeded} succeeded, {self.failed} failed"
            + (f" ({failures})" if failures else ""),
            f"{self.attempts} attempts, {self.retries} retries, {self.fallbacks} fallbacks",
        ]
        if self.cost_by_model:
            total = sum(self.cost_by_model.values())
            per = ", ".join(f"{m} ${c:.6f}" for m, c in sorted(self.cost_by_model.items()))
            out.append(f"cost ${total:.6f} ({per})")
        if self.unpriced:
            out.append(f"cost unknown for {self.unpriced} successful requests (no catalog price)")
        if self.previous_done:
            out.append(
                f"{self.previous_done} lines were already in the output "
                f"({self.previous_failed} failed); skipped"
            )
        return out


def _error_record(error: BaseException) -> Dict[str, Any]:
    record: Dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, APIStatusError):
        record.update(status_code=error.status_code, code=error.code, request_id=error.request_id)
    if isinstance(error, APIError):
        record["attempts"] = [a.to_dict() for a in error.attempts]
    return record


Result = Union[ChatCompletion, CreateEmbeddingResponse]


def success_record(result: Result) -> Dict[str, Any]:
    return {
        "status_code": 200,
        "body": result.to_dict(),
        "cost": result.cost,
        "attempts": [a.to_dict() for a in result.attempts],
    }


class _Writer:
    """Appends result lines, each flushed at once (a kill loses at most the line being written)."""

    def __init__(self, handle: TextIO) -> None:
        self._handle = handle

    def write(self, custom_id: str, response: Any, error: Any) -> None:
        line = json.dumps(
            {"custom_id": custom_id, "response": response, "error": error}, ensure_ascii=False
        )
        self._handle.write(line + "\n")
        self._handle.flush()


Outcome = Union[Result, BaseException]
Progress = Callable[[BatchSummary], None]


def run_batch(
    client: Client,
    input_path: str,
    output_path: str,
    *,
    default_model: Optional[str] = None,
    resume: bool = False,
    stop: Optional[threading.Event] = None,
    report: Callable[[str], None] = lambda message: None,
    progress: Optional[Progress] = None,
    on_total: Optional[Callable[[int], None]] = None,
) -> BatchSummary:
    """Run every line of ``input_path`` not yet in ``output_path``; append one line per result.

    Args:
        client: the client; its fallback chain, retries, protections and catalog apply to
            every line, and its ``max_workers`` is how many requests are in flight.
        input_path: the JSONL requests.
        output_path: the JSONL results; must not exist (or be empty) unless ``resume``.
        default_model: the model of lines whose body has none.
        resume: continue an existing output, skipping its custom_ids.
        stop: once set, no new request starts; those in flight finish and are written.
        report: receives one message per malformed or duplicate line.
        progress: called after each written line with the running summary.
        on_total: called once with the number of lines this run will process.

    Raises:
        BatchFileError: an unusable input or output file (nothing is overwritten).
    """
    stop = stop or threading.Event()
    if not os.path.isfile(input_path):
        raise BatchFileError(f"the input {input_path} does not exist or is not a file")
    both_exist = os.path.exists(output_path) and os.path.exists(input_path)
    if both_exist and os.path.samefile(input_path, output_path):
        raise BatchFileError("the output file must not be the input file")
    if not resume and os.path.exists(output_path) and os.path.getsize(output_path) > 0:
        raise BatchFileError(
            f"the output {output_path} already holds results: pass --resume to continue it, "
            "or choose another file"
        )
    done = read_done(output_path) if resume else DoneLines(set(), 0, False)
    if done.dropped_partial_line:
        report("the output's last line was incomplete (interrupted write); it was removed")
    summary = BatchSummary(previous_done=len(done.ids), previous_failed=done.failed)
    try:
        # Opened before the first request: an unwritable output costs nothing.
        handle = open(output_path, "a", encoding="utf-8")  # noqa: SIM115 (closed by the with)
    except OSError as exc:
        raise BatchFileError(f"cannot write {output_path}: {exc.strerror or exc}") from None
    with handle:
        if on_total is not None:
            on_total(_count_todo(input_path, done.ids))
        writer = _Writer(handle)
        in_flight: Deque[Tuple[str, int]] = collections.deque()

        def fail(custom_id: str, kind: str, message: str, line: int) -> None:
            summary.failures[kind] += 1
            report(message)
            if kind != DUPLICATE:
                writer.write(custom_id, None, {"type": kind, "message": message, "line": line})
            if progress is not None:
                progress(summary)

        def requests() -> Iterator[Tuple[str, Dict[str, Any]]]:
            # Runs in this (the consumer's) thread, so writing invalid lines here is safe.
            seen: Set[str] = set()
            for number, text in _input_lines(input_path):
                if stop.is_set():
                    summary.interrupted = True
                    return
                parsed = parse_line(text, number, default_model)
                if parsed.custom_id in seen:
                    fail(
                        parsed.custom_id,
                        DUPLICATE,
                        f"line {number}: duplicate custom_id {parsed.custom_id!r} skipped",
                        number,
                    )
                    continue
                seen.add(parsed.custom_id)
                if parsed.custom_id in done.ids:
                    summary.skipped += 1
                    continue
                if parsed.error is not None:
                    fail(parsed.custom_id, INVALID, parsed.error, number)
                    continue
                assert parsed.request is not None
                in_flight.append((parsed.custom_id, number))
                yield parsed.kind, parsed.request

        def start(item: Tuple[str, Dict[str, Any]]) -> Any:
            kind, request = item
            resource = client.embeddings if kind == "embeddings" else client.chat.completions
            return resource.submit(**request)

        # In input order, at most 2 x max_workers ahead; requests() is read lazily, so once
        # `stop` is set nothing new starts and what is in flight is still written.
        window = 2 * client.max_workers
        for outcome in ordered_map(start, requests(), window=window, return_exceptions=True):
            custom_id, number = in_flight.popleft()
            if isinstance(outcome, RequestValidationError):  # refused before any attempt
                fail(custom_id, INVALID, f"line {number}: invalid request: {outcome}", number)
                continue
            if isinstance(outcome, (ChatCompletion, CreateEmbeddingResponse)):
                summary.succeeded += 1
                summary.count(outcome.attempts)
                if outcome.cost is None:
                    summary.unpriced += 1
                else:
                    model = outcome.attempts[-1].model if outcome.attempts else None
                    key = model or outcome.model
                    summary.cost_by_model[key] = summary.cost_by_model.get(key, 0.0) + outcome.cost
                writer.write(custom_id, success_record(outcome), None)
            else:
                summary.failures[type(outcome).__name__] += 1
                if isinstance(outcome, APIError):
                    summary.count(outcome.attempts)
                writer.write(custom_id, None, _error_record(outcome))
            if progress is not None:
                progress(summary)
    return summary


def _count_todo(input_path: str, done: Set[str]) -> int:
    """How many input lines this run will process (for the progress bar's total)."""
    seen: Set[str] = set()
    todo = 0
    for number, text in _input_lines(input_path):
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
