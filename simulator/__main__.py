"""``python -m simulator`` / ``cometsync-simulator``: serve a simulated CometAPI until stopped."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading
from typing import List, Optional

from .scenario import PRESETS, ScenarioError, load_scenario
from .server import Simulator

__all__ = ["main"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cometsync-simulator",
        description="Serve a fake CometAPI (OpenAI-compatible) that injects faults on demand.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port, 0 = any free (default 8000)")
    parser.add_argument("--seed", type=int, default=None, help="seed of every random draw")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=sorted(PRESETS), help="a built-in scenario")
    source.add_argument("--scenario", metavar="FILE", help="a scenario file (.json or .toml)")
    parser.add_argument("--api-key", default=None, help="accept only this bearer key")
    parser.add_argument(
        "--max-connections", type=int, default=1000, help="open connections (default 1000)"
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds to receive a request's headers (default 10)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=60.0,
        help="seconds a kept-alive connection may idle (default 60)",
    )
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the server; print ``listening on http://HOST:PORT`` first; exit 0 on SIGINT/SIGTERM."""
    args = _parser().parse_args(argv)
    try:
        scenario = load_scenario(args.scenario or args.preset)
    except ScenarioError as exc:
        print(f"cometsync-simulator: invalid scenario: {exc}", file=sys.stderr)
        return 2
    if not _is_loopback(args.host):
        print(
            f"cometsync-simulator: warning: binding {args.host}, not loopback: anyone who can "
            "reach this interface can use the simulator",
            file=sys.stderr,
            flush=True,
        )
    try:
        sim = Simulator(
            scenario,
            args.seed,
            args.host,
            args.port,
            api_key=args.api_key,
            max_connections=args.max_connections,
            header_timeout=args.header_timeout,
            idle_timeout=args.idle_timeout,
        )
    except ValueError as exc:
        print(f"cometsync-simulator: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"cometsync-simulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with sim:
        print(f"listening on {sim.url}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
