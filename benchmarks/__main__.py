"""``python -m benchmarks SCENARIO [--quick] [--json FILE] [--plot FILE.png]``.

Scenarios: ``brooker`` (Brooker's backoff experiment), ``gateway``, ``outage`` and ``overload``
(retry strategies against the simulator's fault model, in virtual time), ``throughput`` (per-call
speed against peers over loopback sockets), ``first-token`` (what a first-token limit costs on
slow-but-healthy streams), ``redis_rtt`` (what shared state on Redis costs per call),
``real-fleet`` (real processes on one key, with and without Redis), ``fleet`` (N processes x M
threads sharing one key: per-process protections vs shared state, in virtual time), ``failover``
(the failover conduct scorecard over loopback sockets).
``python -m benchmarks SCENARIO --help`` for options.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from . import brooker, failover_cli
from ._report import write_json

__all__ = ["main"]


def _int_list(text: str) -> List[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas, got {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a small version in a few seconds")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON ('-': stdout)")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the results (needs matplotlib)")
    parser.add_argument("--seed", default="0", help="run seed (default 0); same seed, same numbers")


def _default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _brooker(args: argparse.Namespace) -> int:
    clients = args.clients or ([10, 50, 100] if args.quick else [10, 20, 50, 100, 190])
    runs = args.runs or (5 if args.quick else 100)
    strategies = args.strategies or list(brooker.STRATEGIES)
    started = time.perf_counter()
    rows, events = brooker.sweep(
        clients, runs, strategies=strategies, seed=args.seed, workers=args.workers
    )
    wall = time.perf_counter() - started
    print(
        f"Brooker's OCC experiment on cometsync's call flow: {runs} runs per point, "
        f"seed {args.seed}"
    )
    print(brooker.table(rows, strategies))
    print(
        f"engine: {events:,} events in {wall:.2f} s wall with {args.workers} worker(s): "
        f"{events / wall:,.0f} events/s"
    )
    _headline(rows)
    if args.reference:
        started = time.perf_counter()
        ref_rows, ref_events = brooker.reference_sweep(clients, runs, strategies, args.seed)
        ref_wall = time.perf_counter() - started
        print("\nreference model (the blog's single-purpose simulator, 1 process):")
        print(brooker.table(ref_rows, strategies))
        print(
            f"reference: {ref_events:,} events in {ref_wall:.2f} s: "
            f"{ref_events / ref_wall:,.0f} events/s; "
            f"engine/reference wall time = {wall / ref_wall:.2f}"
        )
    if args.json:
        write_json(args.json, rows)
    if args.plot:
        brooker.plot(
            rows,
            args.plot,
            f"Brooker's experiment on cometsync's flow ({runs} runs per point, seed {args.seed})",
        )
    return 0


def _fault(args: argparse.Namespace) -> int:
    from . import scenarios

    scenario = scenarios.SCENARIOS[args.scenario]
    runs = args.runs or (1 if args.quick else 5)
    started = time.perf_counter()
    rows = scenarios.compare(args.scenario, args.seed, runs, workers=args.workers)
    wall = time.perf_counter() - started
    events = sum(row["events"] * runs for row in rows)
    print(f"{args.scenario}: {scenario.title}")
    print(
        f"{rows[0]['calls']:.0f} calls per run, {runs} run(s), seed {args.seed}, "
        f"per-attempt timeout {scenario.timeout.read:g} s"
    )
    print(scenarios.table(rows))
    print(f"engine: {events:,.0f} events in {wall:.2f} s wall ({events / wall:,.0f} events/s)")
    for line in scenarios.verdict(rows):
        print("  " + line)
    if args.json:
        write_json(args.json, rows)
    if args.plot:
        scenarios.plot(rows, args.plot, f"{args.scenario}: {runs} run(s), seed {args.seed}")
    return 0


def _throughput(args: argparse.Namespace) -> int:
    from . import throughput
    from ._report import format_table

    rounds = args.rounds or (3 if args.quick else 7)
    calls = args.calls or (50 if args.quick else 300)
    rows = throughput.measure(
        rounds=rounds, calls=calls, workers=args.workers, latency_ms=args.latency_ms
    )
    print(
        f"throughput over loopback: {rounds} interleaved rounds of {calls} calls, "
        f"{args.workers} thread(s), simulator latency {args.latency_ms:g} ms"
    )
    print(
        format_table(
            ["client", "calls/s (median)", "min", "max", "x cometsync", "client CPU µs/call"],
            [
                [
                    r["client"],
                    r["calls_per_s"],
                    r["min"],
                    r["max"],
                    r["vs_cometsync"],
                    r["cpu_us_per_call"],
                ]
                for r in rows
            ],
        )
    )
    print("medians of this run" + ("" if args.workers == 1 else " (the targets are for 1 thread)"))
    for line in throughput.verdict(rows):
        print("  " + line)
    if args.json:
        write_json(args.json, rows)
    return 0


def _redis_rtt(args: argparse.Namespace) -> int:
    from . import redis_rtt
    from ._report import format_table

    calls = args.calls or (300 if args.quick else 3000)
    rows = redis_rtt.run(args.url, calls)
    print(f"Redis round trips on loopback, {calls} samples each (microseconds)")
    print(
        format_table(
            ["what", "median", "p99"], [[r["what"], r["median_us"], r["p99_us"]] for r in rows]
        )
    )
    slow = [r for r in rows if r.get("redis_timeouts")]
    for r in slow:
        print(
            f"warning: Redis timed out {r['redis_timeouts']} time(s) during '{r['what']}': "
            "those calls ran on local state for 3 s each; rerun on a quieter machine"
        )
    if args.json:
        write_json(args.json, rows)
    return 1 if slow else 0


def _first_token(args: argparse.Namespace) -> int:
    from . import first_token

    calls = args.calls or (20 if args.quick else 60)
    budgets = first_token.BUDGETS if not args.quick else (None, 10.0)
    rows = first_token.measure(
        calls=calls, threads=args.threads, scale=args.scale, seed=int(args.seed), budgets=budgets
    )
    print(
        f"first-token limits on slow-but-healthy models: {calls} streams per row over loopback, "
        f"{args.threads} threads, times scaled by {args.scale:g} (shown unscaled)"
    )
    print(first_token.table(rows))
    if args.json:
        write_json(args.json, rows)
    return 0


def _fleet(args: argparse.Namespace) -> int:
    from . import fleet

    processes = args.processes or list(fleet.QUICK_PROCESSES if args.quick else fleet.PROCESSES)
    from cometsync import Timeout

    duration = (10.0 if args.quick else 60.0) if args.duration is None else args.duration
    warmup = min(5.0, duration / 4) if args.warmup is None else args.warmup
    if args.rtt_ms < 0:
        raise ValueError(f"--rtt-ms must be >= 0, got {args.rtt_ms:g}")
    if not duration > 0:
        raise ValueError(f"--duration must be > 0 seconds, got {duration:g}")
    if not args.latency_ms >= 0:
        raise ValueError(f"--latency-ms must be >= 0, got {args.latency_ms:g}")
    timeout = Timeout() if args.timeout is None else Timeout.coerce(args.timeout)
    started = time.perf_counter()
    rows = fleet.run(
        processes,
        args.threads,
        rpm=args.rpm,
        duration=duration,
        rtt=args.rtt_ms / 1000,
        warmup=warmup,
        seed=args.seed,
        latency_ms=args.latency_ms,
        timeout=timeout,
    )
    wall = time.perf_counter() - started
    print(
        f"fleet: N processes x {args.threads} threads on one key limited to {args.rpm} rpm "
        f"(simulator token bucket, its burst spent), each process RateLimit(rpm={args.rpm}) and "
        f"default protections; {duration:g} s of calls, rates from {warmup:g} s; shared store "
        f"round trip {args.rtt_ms:g} ms; model latency {args.latency_ms:g} ms (median); "
        f"attempt timeout {max(timeout.connect, timeout.read):g} s; seed {args.seed}"
    )
    print(fleet.table(rows))
    events = sum(r["events"] for r in rows)
    print(f"engine: {events:,} events in {wall:.2f} s wall ({events / wall:,.0f} events/s)")
    if args.json:
        write_json(args.json, rows)
    if args.plot:
        fleet.plot(
            rows,
            args.plot,
            f"{args.threads} threads per process on one key at {args.rpm} rpm, seed {args.seed}",
        )
    return 0


def _real_fleet(args: argparse.Namespace) -> int:
    from . import real_fleet, redis_rtt
    from ._report import format_table

    seconds = 3.0 if args.quick else args.seconds

    def go(url: str) -> List[Dict[str, Any]]:
        return real_fleet.measure(
            url,
            processes=args.processes,
            threads=args.threads,
            rpm=args.rpm,
            seconds=seconds,
            timeout=args.timeout,
        )

    if args.url:
        rows = go(args.url)
    else:
        with redis_rtt.redis_server() as url:
            rows = go(url + "?socket_timeout=1")
    print(
        f"real fleet: {args.processes} processes x {args.threads} threads, one key limited to "
        f"{args.rpm} rpm by the simulator (burst spent first), {seconds:g} s per run, "
        f"timeout {args.timeout:g} s"
    )
    headers = ["fleet", "requests", "429s", "steady rpm", "calls ok", "calls failed"]
    headers += ["ok per process", "slowest call s"]
    keys = ["fleet", "requests", "rate_limited", "steady_rpm", "calls_ok", "calls_failed"]
    keys += ["ok_per_process", "slowest_call_s"]
    table = [[r[k] if k != "ok_per_process" else _spread(r[k]) for k in keys] for r in rows]
    print(format_table(headers, table))
    if args.json:
        write_json(args.json, rows)
    return 0


def _spread(values: List[int]) -> str:
    """Per-process counts as ``min-max``, how evenly the fleet shared the limit."""
    return f"{min(values)}-{max(values)}" if values else "-"


def _headline(rows: List[Dict[str, Any]]) -> None:
    points = {(r["clients"], r["strategy"]): r["calls"] for r in rows}
    for n in sorted({r["clients"] for r in rows}):
        full, expo = points.get((n, "full")), points.get((n, "exponential"))
        if full is not None and expo:
            print(f"  {n} clients: full jitter makes {full / expo:.2f}x the calls of exponential")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="scenario", metavar="SCENARIO", required=True)
    b = sub.add_parser("brooker", help="Brooker's 2015 OCC backoff experiment")
    _common(b)
    b.add_argument("--clients", type=_int_list, help="client counts (default 10,20,50,100,190)")
    b.add_argument("--runs", type=_positive, help="runs per point (default 100)")
    b.add_argument(
        "--strategies",
        type=lambda s: s.split(","),
        help=f"subset of {','.join(brooker.STRATEGIES)}",
    )
    b.add_argument(
        "--workers",
        type=_positive,
        default=_default_workers(),
        help="processes (default: up to 2); results do not depend on it",
    )
    b.add_argument(
        "--reference",
        action="store_true",
        help="also run the single-purpose reference model and compare wall time",
    )
    b.set_defaults(run=_brooker)
    for name, text in (
        ("gateway", "a rate-limited gateway with a burst"),
        ("outage", "a three-model chain whose primary goes down and comes back"),
        ("overload", "a load-dependent server hit by a short capacity drop"),
    ):
        f = sub.add_parser(name, help=text)
        _common(f)
        f.add_argument("--runs", type=_positive, help="seeded runs averaged (default 5)")
        f.add_argument(
            "--workers",
            type=_positive,
            default=_default_workers(),
            help="processes (default: up to 2); results do not depend on it",
        )
        f.set_defaults(run=_fault)
    ft = sub.add_parser("first-token", help="what a first-token limit costs on slow models")
    _common(ft)
    ft.add_argument("--calls", type=_positive, help="streams per row (default 60)")
    ft.add_argument("--threads", type=_positive, default=8, help="concurrent streams (default 8)")
    ft.add_argument(
        "--scale", type=float, default=0.05, help="time scale (default 0.05: 3 s runs as 0.15 s)"
    )
    ft.set_defaults(run=_first_token)
    failover_cli.add_parser(sub, _positive)
    t = sub.add_parser("throughput", help="per-call throughput vs requests, urllib3, openai")
    t.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    t.add_argument("--json", metavar="FILE", help="write the results as JSON ('-': stdout)")
    t.add_argument("--workers", type=_positive, default=1, help="threads per client (default 1)")
    t.add_argument("--latency-ms", type=float, default=0.0, help="simulated model latency")
    t.add_argument("--rounds", type=_positive, help="interleaved rounds (default 7)")
    t.add_argument("--calls", type=_positive, help="calls per client per round (default 300)")
    t.set_defaults(run=_throughput)
    fl = sub.add_parser("fleet", help="N processes sharing one key: per-process vs shared state")
    _common(fl)
    fl.add_argument("--processes", type=_int_list, help="fleet sizes (default 1,4,16,64)")
    fl.add_argument("--threads", type=_positive, default=8, help="threads per process (default 8)")
    fl.add_argument("--rpm", type=_positive, default=600, help="the key's limit (default 600)")
    fl.add_argument("--duration", type=float, help="virtual seconds of calls (default 60)")
    fl.add_argument(
        "--rtt-ms", type=float, default=0.3, help="shared store round trip (default 0.3 ms)"
    )
    fl.add_argument("--warmup", type=float, help="rates measured from here (default 5 s)")
    fl.add_argument(
        "--latency-ms", type=float, default=800.0, help="model latency median (0: instant)"
    )
    fl.add_argument("--timeout", type=float, help="attempt timeout, s (default: Timeout())")
    fl.set_defaults(run=_fleet)
    r = sub.add_parser("redis_rtt", help="what shared state on Redis costs per call (loopback)")
    _common(r)
    r.add_argument("--calls", type=_positive, help="samples per measurement (default 3000)")
    r.add_argument("--url", help="an existing Redis (default: start redis-server on a free port)")
    r.set_defaults(run=_redis_rtt)
    rf = sub.add_parser("real-fleet", help="real processes sharing one key, with and without Redis")
    _common(rf)
    rf.add_argument("--processes", type=_positive, default=4, help="processes (default 4)")
    rf.add_argument("--threads", type=_positive, default=8, help="threads each (default 8)")
    rf.add_argument("--rpm", type=_positive, default=600, help="the key's limit (default 600)")
    rf.add_argument("--seconds", type=float, default=6.0, help="seconds per run (default 6)")
    rf.add_argument(
        "--timeout", type=float, default=30.0, help="each client's timeout, s (default 30)"
    )
    rf.add_argument("--url", help="an existing Redis (default: start redis-server on a free port)")
    rf.set_defaults(run=_real_fleet)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    # Thousands of simulated calls would flood the terminal with the SDK's own warnings
    # (cooldowns, retries); the tables carry what matters. Restored after, for in-process use.
    logger = logging.getLogger("cometsync")
    level = logger.level
    logger.setLevel(logging.ERROR)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        logger.setLevel(level)


if __name__ == "__main__":
    sys.exit(main())
