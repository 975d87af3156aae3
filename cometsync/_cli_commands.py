"""The ``chat``, ``models`` and ``estimate`` sub-commands, the exit codes, the client factory."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any, Dict, List

from ._batch import success_record
from ._cli_render import _err, _money, _print_estimate, _print_models, _show_attempts
from ._client import Client
from ._errors import APIError, ConfigError
from ._policy import RetryPolicy
from ._types import ChatCompletion
from ._validate import _chain

__all__ = [
    "EXIT_BATCH_FAILURES",
    "EXIT_BROKEN_PIPE",
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "_client",
    "_cmd_chat",
    "_cmd_estimate",
    "_cmd_models",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_BATCH_FAILURES = 4
EXIT_INTERRUPTED = 128 + int(signal.SIGINT)
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE (signal.SIGPIPE does not exist on Windows)

# models/estimate only read the catalog, which is fetched without the key.
_CATALOG_ONLY_KEY = "catalog-needs-no-key"


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
                result = _stream_answer(client, args.model, messages, params, args.verbose)
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
    client: Client,
    model: str,
    messages: List[Dict[str, Any]],
    params: Dict[str, Any],
    verbose: int = 0,
) -> ChatCompletion:
    """Print the answer as it arrives; return it whole, priced when the catalog is known.

    A stream broken mid-answer is continued seamlessly; a restart from scratch (a model that
    cannot continue) ends the cut line and says so on stderr before the new answer prints.

    Raises:
        APIError: the chain failed before the first chunk; APIStreamError: the stream broke
            after it and could not be recovered (what arrived is already printed).
    """

    def restarting(discarded: str) -> None:
        print(flush=True)
        _err(f"the answer broke after {len(discarded)} characters; it starts over below")

    with client.chat.completions.create(
        model=model,
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},  # the usage prices the answer
        **params,
    ) as stream:
        stream.on_restart(restarting)
        try:
            for chunk in stream:
                if chunk.choices:
                    print(chunk.choices[0].delta.content or "", end="", flush=True)
            final = stream.get_final_completion()
        finally:
            print(flush=True)
        if verbose and stream.recoveries:
            _err(
                f"the stream broke and was recovered {stream.recoveries} time(s) "
                f"({stream.restarts} restart(s)); finished by {stream.model}"
            )
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
