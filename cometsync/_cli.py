"""The ``cometsync`` command: chat, batch, models, estimate.

Exit codes: 0 success; 1 the request failed (chat, models, estimate); 2 bad usage (argparse's,
and unusable batch files); 3 missing key or bad configuration; 4 a batch finished with failed
lines; 128 + the signal number when interrupted (130 for Ctrl-C, 143 for SIGTERM); 141 when
stdout is a pipe closed early (``cometsync models --json | head``), as for a command killed by
SIGPIPE. An interruption or a closed pipe prints at most one short line, never a traceback.

Settings come from flags first, then ``COMETAPI_KEY`` and ``COMETAPI_BASE_URL``. The API key
is never printed. ``models`` and ``estimate`` need no key (the catalog route takes none).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shlex
import signal
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

from ._batch import BatchFileError, BatchSummary, run_batch, success_record
from ._catalog import CostEstimate, ModelInfo
from ._client import Client, _chain
from ._errors import APIError, ConfigError, RequestValidationError
from ._policy import RetryPolicy
from ._types import Attempt, ChatCompletion

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_BATCH_FAILURES = 4
EXIT_INTERRUPTED = 128 + int(signal.SIGINT)
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE (signal.SIGPIPE does not exist on Windows)

# models/estimate only read the catalog, which is fetched without the key.
_CATALOG_ONLY_KEY = "catalog-needs-no-key"


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_count = _int_at_least(0)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one sub-command per action)."""
    common = argparse.ArgumentParser(add_help=False)
    conn = common.add_argument_group("connection")
    conn.add_argument("--api-key", help="API key (default: $COMETAPI_KEY; prefer the variable)")
    conn.add_argument(
        "--base-url", help="API base URL (default: $COMETAPI_BASE_URL, else CometAPI's /v1)"
    )
    conn.add_argument("--timeout", type=_seconds, help="seconds per attempt (connect and read)")
    conn.add_argument("--max-retries", type=_count, help="retries per model (default 2)")
    conn.add_argument("--deadline", type=_seconds, help="seconds for a whole call, all attempts")
    common.add_argument(
        "-v", "--verbose", action="count", default=0, help="show attempts (-vv: debug logging)"
    )
    chain = argparse.ArgumentParser(add_help=False)
    chain.add_argument(
        "-f",
        "--fallback",
        action="append",
        default=[],
        metavar="MODEL",
        help="fallback model, tried in the order given (repeatable)",
    )

    parser = argparse.ArgumentParser(
        prog="cometsync",
        description="A resilient command line for CometAPI: retries, model fallback, cost.",
        epilog="exit codes: 0 ok, 1 request failed, 2 bad usage, 3 missing key or bad "
        "configuration, 4 batch with failed lines, 130 interrupted (128 + the signal number), "
        "141 stdout closed early",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    chat = commands.add_parser(
        "chat", parents=[common, chain], help="send one prompt and print the answer"
    )
    chat.add_argument("prompt", help="the user message ('-' reads it from stdin)")
    chat.add_argument("-m", "--model", required=True, help="the model to try first")
    chat.add_argument("-s", "--system", help="a system message sent before the prompt")
    chat.add_argument("--max-tokens", type=_positive_int, help="max_tokens of the answer")
    chat.add_argument("--temperature", type=float, help="sampling temperature")
    chat.add_argument(
        "--stream", action="store_true", help="print the answer as it arrives (no --json)"
    )
    chat.add_argument("--json", action="store_true", help="print the whole response as JSON")
    chat.set_defaults(run=_cmd_chat)

    batch = commands.add_parser(
        "batch",
        parents=[common, chain],
        help="run a JSONL file of chat requests, one result line per input line",
    )
    batch.add_argument("input", metavar="INPUT.jsonl", help='lines {"custom_id", "body"}')
    batch.add_argument("-o", "--output", required=True, metavar="OUTPUT.jsonl")
    batch.add_argument("-m", "--model", help="model for lines whose body has none")
    batch.add_argument("--workers", type=_positive_int, default=8, help="requests in flight")
    batch.add_argument(
        "--resume", action="store_true", help="continue OUTPUT, skipping custom_ids it holds"
    )
    batch.add_argument("--no-progress", action="store_true", help="no progress bar")
    batch.set_defaults(run=_cmd_batch)

    models = commands.add_parser(
        "models", parents=[common], help="list the catalog's models with prices"
    )
    models.add_argument("--provider", help="only this provider (case-insensitive)")
    models.add_argument("--type", dest="model_type", help="only this model type (text, image...)")
    models.add_argument("--feature", help="only models with this feature")
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.set_defaults(run=_cmd_models)

    estimate = commands.add_parser(
        "estimate", parents=[common, chain], help="price one request through a fallback chain"
    )
    estimate.add_argument("-m", "--model", required=True, help="the primary model")
    estimate.add_argument("--prompt-tokens", type=_count, required=True)
    estimate.add_argument("--completion-tokens", type=_count, required=True)
    estimate.add_argument("--json", action="store_true", help="print JSON instead of text")
    estimate.set_defaults(run=_cmd_estimate)
    return parser


def _client(args: argparse.Namespace, *, need_key: bool = True, **kwargs: Any) -> Client:
    key = args.api_key or os.environ.get("COMETAPI_KEY")
    if not key and need_key:
        raise ConfigError("no API key: set COMETAPI_KEY (or pass --api-key)")
    if not key:
        key = _CATALOG_ONLY_KEY
    retry = None if args.max_retries is None else RetryPolicy(max_retries=args.max_retries)
    return Client(
        api_key=key,
        base_url=args.base_url,
        fallback_models=getattr(args, "fallback", ()),
        retry=retry,
        timeout=args.timeout,
        deadline=args.deadline,
        **kwargs,
    )


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
        if a.duration is not None and a.duration != a.latency:
            parts.append(f"duration={a.duration:.3f}s")  # a stream: latency is to 1st chunk
        if a.delay is not None:
            parts.append(f"delay={a.delay:.3f}s")
        if a.reason:
            parts.append(f"reason={a.reason!r}")
        if a.error:
            parts.append(f"error={a.error}")
        print("  " + " ".join(parts), file=out)


def _cmd_chat(args: argparse.Namespace) -> int:
    if args.stream and args.json:
        _err("--stream and --json do not go together: --json prints the whole answer at the end")
        return EXIT_USAGE
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    messages: List[Dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    params: Dict[str, Any] = {}
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        params["temperature"] = args.temperature
    # Pricing costs one catalog GET: only when the cost will be shown.
    with _client(args, price_calls=bool(args.verbose or args.json)) as client:
        try:
            if args.stream:
                result = _stream_answer(client, args.model, messages, params)
            else:
                result = client.chat.completions.create(
                    model=args.model, messages=messages, **params
                )
        except APIError as error:
            _err(f"{type(error).__name__}: {error}")
            if args.verbose:
                _show_attempts(error.attempts, sys.stderr)
            return EXIT_FAILED
    if args.json:
        print(json.dumps(success_record(result), indent=2, ensure_ascii=False))
    elif not args.stream:
        print(result.choices[0].message.content if result.choices else "")
    if args.verbose:
        answered = result.attempts[-1].model if result.attempts else result.model
        print(f"answered by {answered}; cost {_money(result.cost)}", file=sys.stderr)
        _show_attempts(result.attempts, sys.stderr)
    return EXIT_OK


def _stream_answer(
    client: Client, model: str, messages: List[Dict[str, Any]], params: Dict[str, Any]
) -> ChatCompletion:
    """Print the answer as it arrives; return it whole, priced when the catalog is known.

    Raises:
        APIError: the chain failed before the first chunk; APIStreamError: the stream broke
            after it (what arrived is already printed; a newline ends it).
    """
    with client.chat.completions.create(
        model=model,
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},  # the usage prices the answer
        **params,
    ) as stream:
        try:
            for chunk in stream:
                if chunk.choices:
                    print(chunk.choices[0].delta.content or "", end="", flush=True)
            final = stream.get_final_completion()
        finally:
            print(flush=True)
    return client._price(final, _chain(model, client.fallback_models))


def _cmd_models(args: argparse.Namespace) -> int:
    with _client(args, need_key=False) as client:
        try:
            models = client.catalog(
                provider=args.provider, model_type=args.model_type, feature=args.feature
            )
        except APIError as error:
            _err(f"could not load the catalog: {type(error).__name__}: {error}")
            return EXIT_FAILED
    models = sorted(models, key=lambda m: (m.provider.casefold(), m.id))
    if args.json:
        print(json.dumps([m.to_dict() for m in models], indent=2, ensure_ascii=False))
        return EXIT_OK
    _print_models(models)
    return EXIT_OK


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


def _cmd_estimate(args: argparse.Namespace) -> int:
    chain = [args.model, *args.fallback]
    with _client(args, need_key=False) as client:
        try:
            est = client.estimate_cost(chain, args.prompt_tokens, args.completion_tokens)
        except APIError as error:
            _err(f"could not load the catalog: {type(error).__name__}: {error}")
            return EXIT_FAILED
    if args.json:
        print(json.dumps(est.to_dict(), indent=2))
    else:
        _print_estimate(est)
    return EXIT_OK


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


class _Progress:
    """A tqdm bar on stderr when tqdm is installed; otherwise nothing (after a one-line note)."""

    def __init__(self, enabled: bool) -> None:
        self._bar: Any = None
        self._enabled = enabled

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
        if self._bar is not None:
            self._bar.close()


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
    return " ".join(shlex.quote(w) for w in words)


def _setup_logging(verbose: int) -> None:
    logger = logging.getLogger("cometsync")
    if not any(getattr(h, "_cometsync_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("cometsync: %(levelname)s: %(message)s"))
        handler._cometsync_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _setup_logging(args.verbose)
    try:
        code = int(args.run(args))
        sys.stdout.flush()  # here, so a closed pipe is caught below, not at interpreter exit
        return code
    except ConfigError as error:
        _err(str(error))
        return EXIT_CONFIG
    except RequestValidationError as error:
        _err(f"invalid request: {error}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    """Point stdout at devnull: the reader left, and the flush at exit must not fail again.

    The recipe of the ``signal`` module's documentation ("Note on SIGPIPE").
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (embedded, captured): nothing to flush
        pass
