"""The batch runner behind ``cometsync batch``: JSONL in, one JSONL result per line out.

Input lines use the OpenAI batch format, ``{"custom_id": ..., "body": {chat request}}``
(``method`` and ``url``, when present, must be ``POST`` and a ``/chat/completions`` URL), or
``{"custom_id", "url": "/v1/embeddings", "body": {embedding request}}``; one file may mix them.
Output lines are ``{"custom_id", "response", "error"}``, written and flushed one by one as
requests finish (completion order, as OpenAI's batch output: join on ``custom_id``), so no
worker waits behind a slow line, an interrupted run keeps every finished line and ``resume``
continues it. ``ordered=True`` writes in input order instead (it can pause the workers behind
a slow line; measured within run-to-run noise of completion order: README).

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
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Counter,
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

from ._batch_files import BatchFileError, DoneLines, count_todo, input_lines, read_done
from ._batch_lines import BatchLine, parse_line
from ._client import Client
from ._embedding_types import CreateEmbeddingResponse
from ._errors import APIError, APIStatusError, RequestValidationError
from ._pool import bounded_map, done_future, map_window
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
    ordered: bool = False,
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
        ordered: write the lines in input order (a finished line waits for the earlier ones,
            up to ``max(1024, 8 * max_workers)`` lines held) instead of as they finish.

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
            on_total(count_todo(input_path, done.ids))
        writer = _Writer(handle)
        lines = _todo(input_path, default_model, done.ids, stop, summary)
        for item, outcome in _run_lines(client, lines, ordered):
            _record(item, outcome, summary, writer, report)
            if progress is not None:
                progress(summary)
    return summary


# A line to write: the parsed line, and for one that is not run, its failure kind and message.
_Item = Tuple[BatchLine, Optional[Tuple[str, str]]]
Outcome = Union[Result, Exception, None]


def _todo(
    input_path: str,
    default_model: Optional[str],
    done: Set[str],
    stop: threading.Event,
    summary: BatchSummary,
) -> Iterator[_Item]:
    """The input lines this run handles, read lazily until ``stop`` is set."""
    seen: Set[str] = set()
    for number, text in input_lines(input_path):
        if stop.is_set():
            summary.interrupted = True
            return
        parsed = parse_line(text, number, default_model)
        if parsed.custom_id in seen:
            message = f"line {number}: duplicate custom_id {parsed.custom_id!r} skipped"
            yield parsed, (DUPLICATE, message)
            continue
        seen.add(parsed.custom_id)
        if parsed.custom_id in done:
            summary.skipped += 1
        elif parsed.error is not None:
            yield parsed, (INVALID, parsed.error)
        else:
            yield parsed, None


def _run_lines(
    client: Client, lines: Iterable[_Item], ordered: bool
) -> Iterator[Tuple[_Item, Outcome]]:
    """Each line with its outcome, on the client's pool, in completion (or input) order.

    A line that is not run (malformed, duplicate) is done at once: in completion order it is
    written ahead of lines still running; in input order it waits for its turn like any line.
    """
    pool = client._shared.pool()
    workers = client.max_workers

    def start(item: _Item) -> Future[Tuple[_Item, Outcome]]:
        if item[1] is not None:
            return done_future((item, None))
        return pool.submit(_run_one, client, item)

    results = bounded_map(
        start, lines, window=map_window(workers), ahead=2 * workers, ordered=ordered
    )
    for result in results:
        assert not isinstance(result, BaseException)  # _run_one never raises
        yield result


def _run_one(client: Client, item: _Item) -> Tuple[_Item, Outcome]:
    line = item[0]
    assert line.request is not None
    try:
        if line.kind == "embeddings":
            # Never the client's chat fallbacks: vectors of two models are not comparable.
            embedded: Result = client.embeddings.create(**line.request)
            return item, embedded
        return item, client.chat.completions.create(**line.request)
    except Exception as exc:  # every failure becomes the line's error record
        return item, exc


def _record(
    item: _Item,
    outcome: Outcome,
    summary: BatchSummary,
    writer: _Writer,
    report: Callable[[str], None],
) -> None:
    """Count one line's outcome and write its result line (a duplicate is only reported)."""
    line, refused = item
    custom_id, number = line.custom_id, line.line
    if isinstance(outcome, RequestValidationError):  # refused before any attempt
        refused = (INVALID, f"line {number}: invalid request: {outcome}")
    if refused is not None:
        kind, message = refused
        summary.failures[kind] += 1
        report(message)
        if kind != DUPLICATE:
            writer.write(custom_id, None, {"type": kind, "message": message, "line": number})
    elif isinstance(outcome, (ChatCompletion, CreateEmbeddingResponse)):
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
        assert outcome is not None
        summary.failures[type(outcome).__name__] += 1
        if isinstance(outcome, APIError):
            summary.count(outcome.attempts)
        writer.write(custom_id, None, _error_record(outcome))
