"""The ``batch`` sub-command: progress bar, graceful stop on signals, the resume hint."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import signal
import sys
import threading
from typing import Any, Callable, List, Tuple

from ._batch import BatchFileError, BatchSummary, run_batch
from ._cli_commands import EXIT_BATCH_FAILURES, EXIT_OK, EXIT_USAGE, _client
from ._cli_render import _err

__all__ = ["_cmd_batch"]


class _Progress:
    """A tqdm bar on stderr when tqdm is installed; otherwise nothing (after a one-line note)."""

    def __init__(self, enabled: bool) -> None:
        self._bar: Any = None
        self._enabled = enabled
        self._redirected: List[Tuple[logging.StreamHandler[Any], Any]] = []

    def start(self, total: int) -> None:
        if not self._enabled or total == 0:  # nothing to run: an empty bar says nothing
            return
        try:
            # Imported here: tqdm is the [cli] extra, and the core package must not need it.
            tqdm = importlib.import_module("tqdm")
        except ImportError:
            _err("no progress bar: install cometsync[cli] (tqdm) for one")
            return
        self._bar = tqdm.tqdm(total=total, unit="req", file=sys.stderr, dynamic_ncols=True)
        # A warning logged while the bar runs (a fallback's cost) goes above it, not inside it.
        for handler in logging.getLogger("cometsync").handlers:
            if getattr(handler, "_cometsync_cli", False) and isinstance(
                handler, logging.StreamHandler
            ):
                self._redirected.append((handler, handler.setStream(_AboveBar(self._bar))))

    def update(self, summary: BatchSummary) -> None:
        if self._bar is None:
            return
        done = summary.succeeded + summary.failed
        counts = {
            "ok": summary.succeeded,
            "failed": summary.failed,
            "retries": summary.retries,
            "fallbacks": summary.fallbacks,
        }
        self._bar.set_postfix(counts, refresh=False)  # a dict keeps this order; kwargs sort
        self._bar.update(done - self._bar.n)

    def report(self, message: str) -> None:
        """A message on stderr that does not break the bar."""
        if self._bar is None:
            _err(message)
        else:
            self._bar.write(f"cometsync: {message}", file=sys.stderr)

    def close(self) -> None:
        for handler, stream in self._redirected:
            handler.setStream(stream)
        self._redirected.clear()
        if self._bar is not None:
            self._bar.close()


class _AboveBar:
    """A log handler's stream that writes each line above the progress bar (tqdm.write)."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar

    def write(self, text: str) -> None:
        text = text.rstrip("\n")
        if text:
            self._bar.write(text, file=sys.stderr)

    def flush(self) -> None:
        """Nothing to flush: tqdm.write wrote the line already."""


class _Stop:
    """Set by the first SIGINT/SIGTERM; remembers which, for the exit code."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum = int(signal.SIGINT)


def _install_stop(stop: _Stop) -> Callable[[], None]:
    """First SIGINT/SIGTERM: start no new request; the second: leave at once. Returns undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: Any) -> None:
        # os.write, not print: the handler may interrupt a write to sys.stderr (reentrancy).
        if stop.event.is_set():
            os.write(2, b"\ncometsync: abandoning the requests in flight\n")
            os._exit(128 + signum)  # every finished line is already flushed
        stop.signum = signum
        stop.event.set()
        os.write(
            2,
            b"\ncometsync: stopping: finishing the requests in flight "
            b"(press Ctrl-C again to abandon them)\n",
        )

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def undo() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    return undo


def _cmd_batch(args: argparse.Namespace) -> int:
    stop = _Stop()
    progress = _Progress(enabled=not args.no_progress)
    with _client(args, max_workers=args.workers, price_calls=True) as client:
        undo = _install_stop(stop)
        try:
            summary = run_batch(
                client,
                args.input,
                args.output,
                default_model=args.model,
                resume=args.resume,
                stop=stop.event,
                report=progress.report,
                progress=progress.update,
                on_total=progress.start,
                ordered=args.in_order,
            )
        except BatchFileError as error:
            _err(str(error))
            return EXIT_USAGE
        finally:
            progress.close()
            undo()
    if summary.skipped and not (summary.succeeded or summary.failed or summary.interrupted):
        failed = f" ({summary.previous_failed} failed)" if summary.previous_failed else ""
        print(
            f"nothing to do: all {summary.skipped} custom_ids of {args.input} are already "
            f"in {args.output}{failed}",
            file=sys.stderr,
        )
    else:
        for line in summary.lines():
            print(line, file=sys.stderr)
    if summary.interrupted:
        _err(
            f"interrupted; every finished line is in {args.output}. Resume with:\n"
            f"  {_resume_command(args)}"
        )
        return 128 + stop.signum
    if summary.failed or summary.previous_failed:
        return EXIT_BATCH_FAILURES
    return EXIT_OK


def _resume_command(args: argparse.Namespace) -> str:
    """The command that continues this batch (the key stays in the environment, unshown)."""
    words = ["cometsync", "batch", args.input, "-o", args.output]
    if args.model:
        words += ["-m", args.model]
    for model in args.fallback:
        words += ["-f", model]
    if args.base_url:
        words += ["--base-url", args.base_url]
    words += ["--workers", str(args.workers), "--resume"]
    if args.in_order:
        words.append("--in-order")
    return " ".join(shlex.quote(w) for w in words)
