"""``python -m benchmarks failover``: its options and its run (the scorecard in ``failover``)."""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable, List

from ._report import write_json

__all__ = ["add_parser", "main"]


def _names(text: str) -> List[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_parser(sub: Any, positive: Callable[[str], int]) -> None:
    """Add the ``failover`` subcommand to ``sub`` (an argparse subparsers object)."""
    fo = sub.add_parser("failover", help="failover conduct scorecard over loopback sockets")
    fo.add_argument("--fast", action="store_true", help="every wait x0.05, for CI")
    fo.add_argument("--scale", type=float, help="multiply every wait by this (overrides --fast)")
    fo.add_argument("--json", metavar="FILE", help="write the results as JSON ('-': stdout)")
    fo.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    fo.add_argument("--seed", default="0", help="simulator seed (default 0)")
    fo.add_argument("--cases", type=_names, help="a comma-separated subset of the case keys")
    fo.add_argument("--clients", type=_names, help="subset of cometsync,openai,doc-loop")
    fo.add_argument("--jobs", type=positive, default=4, help="cells run at once (default 4)")
    fo.set_defaults(run=main)


def main(args: argparse.Namespace) -> int:
    """Run the scorecard as the options say; print the table (and write the JSON)."""
    from . import failover
    from .failover_cases import CASES
    from .failover_clients import RECIPES

    cases = failover.select(args.cases, CASES, "case")
    recipes = failover.select(args.clients, RECIPES, "client")
    scale = args.scale if args.scale is not None else (failover.FAST_SCALE if args.fast else 1.0)
    if not scale > 0:
        raise ValueError(f"--scale must be a positive number, got {scale}")
    seed = int(args.seed)
    started = time.perf_counter()
    cells = failover.run(cases, recipes, scale=scale, seed=seed, jobs=args.jobs)
    wall = time.perf_counter() - started
    print(
        f"failover conduct scorecard: {len(cases)} cases x {len(recipes)} clients over loopback, "
        f"waits x{scale:g}, watchdog {failover.WATCHDOG * scale:g} s, seed {seed}"
    )
    print(failover.table(cells, recipes))
    for line in failover.summary(cells, recipes):
        print("  " + line)
    print(f"{wall:.1f} s wall, {args.jobs} cell(s) at a time")
    if args.markdown:
        print()
        print(failover.markdown(cells, recipes))
    if args.json:
        write_json(args.json, failover.report(cells, scale, seed))
    return 0
