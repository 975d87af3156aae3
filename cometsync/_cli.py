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
import logging
import os
import sys
from typing import Callable, Optional, Sequence

from ._cli_batch import _cmd_batch
from ._cli_commands import (
    EXIT_BROKEN_PIPE,
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    _cmd_chat,
    _cmd_estimate,
    _cmd_models,
)
from ._cli_render import _err
from ._errors import ConfigError, RequestValidationError

__all__ = ["main"]


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
        help="run a JSONL file of chat or embedding requests, one result line per input line",
    )
    batch.add_argument("input", metavar="INPUT.jsonl", help='lines {"custom_id", "body"}')
    batch.add_argument("-o", "--output", required=True, metavar="OUTPUT.jsonl")
    batch.add_argument("-m", "--model", help="model for lines whose body has none")
    batch.add_argument("--workers", type=_positive_int, default=8, help="requests in flight")
    batch.add_argument(
        "--resume", action="store_true", help="continue OUTPUT, skipping custom_ids it holds"
    )
    batch.add_argument("--no-progress", action="store_true", help="no progress bar")
    batch.add_argument(
        "--in-order",
        action="store_true",
        help="write lines in input order, not as they finish (slower behind a slow line)",
    )
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
