"""``python -m benchmarks.soak [--quick]``: many requests through ``map`` against the
simulator in its own process, under a fault mix, checked from the simulator's journal.

The client runs a three-model chain against ``python -m simulator`` (a subprocess, so the
server's threads and memory are not counted as the client's) whose models answer 20% 429
with Retry-After, 5% 503, 2% 524, 1% connection resets and 0.2% ``500 invalid_request``,
with a primary outage (503) of 10 s; 1% of the inputs are invalid (400: ``n=2``; 401: a wrong
key). Each input carries an ``x-sim-tag`` header, so the journal (``GET /_sim/journal``)
groups its attempts. Checked:

- every input accounted for exactly once and in order: ``map`` yields one item per input,
  a success is the simulator's own answer to that input's messages (its text is a hash of
  them), and the journal holds that input's attempts and nothing else (one 200 at most, as
  the last, the count equal to the call's ``attempts``);
- the success rate of the valid inputs not hit by an unretryable fault (at least 98%, with
  the default protections: the retry budget ends ~1% of calls early at this fault rate);
- no retry (nor fallback) after a 400, 401 or invalid_request;
- no attempt on a model before the Retry-After of its previous 429 had passed;
- threads, sockets and RSS of the client process: before, at the end with the client open
  (at most one thread and one socket per worker), after ``close()`` (back to before; RSS
  within 64 MB).

Exits 1 when a check fails. ``--quick`` (CI) runs 3,000 inputs with a 3 s outage.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from typing import Any, Dict, Iterator, List, Optional, Tuple

import cometsync
from cometsync import FullJitter, RetryPolicy, Timeout
from simulator.wire import generate_words

__all__ = ["main"]

KEY = "sk-soak-7f3a9c1e5b2d4f6a8c0e"
MODELS = ("soak-a", "soak-b", "soak-c")
RETRY_AFTER = 0.05  # seconds the 429s ask for
TOLERANCE = 0.001  # journal times are rounded to the microsecond; sleeps are never shorter
#: The default protections stay on: at this mix (~28% of attempts fail) the retry budget
#: (20% of calls) runs out now and then and ends ~1% of calls early, by design.
SUCCESS_FLOOR = 0.98


def scenario(seed: int, outage_start: float, outage: float) -> Dict[str, Any]:
    """The fault mix: on every model, plus the primary's outage."""
    faults = [
        {"rate": 0.20, "status": 429, "retry_after": RETRY_AFTER},
        {"rate": 0.05, "status": 503},
        {"rate": 0.02, "status": 524},
        {"rate": 0.01, "fault": "reset"},
        {"rate": 0.002, "status": 500, "code": "invalid_request", "message": "bad input"},
    ]
    models: Dict[str, Any] = {
        m: {"latency_ms": {"dist": "uniform", "low": 0, "high": 2}, "faults": faults}
        for m in MODELS
    }
    models[MODELS[0]]["outages"] = [
        {"start": outage_start, "end": outage_start + outage, "status": 503}
    ]
    return {"seed": seed, "models": models}


def inputs(n: int) -> Iterator[Dict[str, Any]]:
    """The create() arguments of input ``i``: 1% invalid (every 200th a 400, a 401)."""
    for i in range(n):
        kwargs: Dict[str, Any] = {
            "model": MODELS[0],
            "messages": [{"role": "user", "content": f"soak input {i}"}],
            "extra_headers": {"x-sim-tag": str(i)},
        }
        if i % 200 == 37:
            kwargs["n"] = 2  # the simulator answers one choice: 400
        elif i % 200 == 137:
            kwargs["extra_headers"] = {"x-sim-tag": str(i), "Authorization": "Bearer sk-wrong"}
        yield kwargs


def invalid(i: int) -> bool:
    return i % 200 in (37, 137)


# -- process measurements -----------------------------------------------------------------
def sockets() -> int:
    """Open sockets of this process (-1 where /proc is missing)."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return -1
    count = 0
    for fd in fds:
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def rss_mb() -> float:
    """Resident memory of this process in MB (peak where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure() -> Dict[str, float]:
    return {"threads": threading.active_count(), "sockets": sockets(), "rss_mb": rss_mb()}


# -- the simulator process ----------------------------------------------------------------
class SimProcess:
    """``python -m simulator`` on a free port, stopped on exit."""

    def __init__(self, doc: Dict[str, Any]) -> None:
        fd, self._path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        cmd = [sys.executable, "-m", "simulator", "--port", "0", "--api-key", KEY]
        self.proc = subprocess.Popen(
            [*cmd, "--scenario", self._path],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.close()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.url = line[len("listening on ") :]

    def admin(self, route: str, body: Optional[bytes] = None) -> Any:
        req = urllib.request.Request(self.url + route, data=body, method="POST" if body else "GET")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def close(self) -> str:
        """Stop the process; its stderr (tracebacks would show there)."""
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        os.unlink(self._path)
        return err or ""


# -- the run ------------------------------------------------------------------------------
Outcome = Tuple[Optional[str], int, Optional[str]]  # (model of a success, attempts, error class)


def run(
    url: str, n: int, workers: int, seed: int
) -> Tuple[List[Outcome], List[str], float, Dict[str, float]]:
    """Drive ``n`` inputs through map: per input (success model, attempts, error), problems,
    seconds, and the process's threads/sockets/RSS at the end with the client still open."""
    client = cometsync.Client(
        api_key=KEY,
        base_url=url + "/v1",
        fallback_models=list(MODELS[1:]),
        max_workers=workers,
        retry=RetryPolicy(max_retries=2, backoff=FullJitter(base=0.02, cap=0.25)),
        timeout=Timeout(connect=2.0, read=10.0),
    )
    outcomes: List[Outcome] = []
    problems: List[str] = []
    started = time.monotonic()
    with client:
        for i, item in enumerate(client.chat.completions.map(inputs(n), return_exceptions=True)):
            if isinstance(item, cometsync.ChatCompletion):
                messages = [{"role": "user", "content": f"soak input {i}"}]
                words, _ = generate_words(seed, item.model, messages, None)
                if item.choices[0].message.content != " ".join(words):
                    problems.append(f"input {i}: the answer is not this input's")
                outcomes.append((item.model, len(item.attempts), None))
            else:
                attempts = len(getattr(item, "attempts", ()))
                outcomes.append((None, attempts, type(item).__name__))
        seconds = time.monotonic() - started
        still_open = measure()
    return outcomes, problems, seconds, still_open


def check_journal(
    journal: List[Dict[str, Any]], outcomes: List[Outcome]
) -> Tuple[List[str], Dict[str, int]]:
    """The journal's view of every input; problems found, and counts."""
    problems: List[str] = []
    by_tag: Dict[int, List[Dict[str, Any]]] = defaultdict(list)
    for row in journal:
        tag = row.get("tag")
        if tag is None or not str(tag).isdigit() or int(tag) >= len(outcomes):
            problems.append(f"a journal row belongs to no input: {row}")
            continue
        by_tag[int(tag)].append(row)
    counts = {"retries_after_unretryable": 0, "early_after_retry_after": 0, "expected_fail": 0}
    counts["retry_after_waits_checked"] = 0
    for i, (model, attempts, error) in enumerate(outcomes):
        rows = sorted(by_tag.get(i, []), key=lambda r: r["seq"])
        if len(rows) != attempts:
            problems.append(f"input {i}: {len(rows)} journal rows, {attempts} attempts")
        wins = [r for r in rows if r["status"] == 200]
        if model is not None and (len(wins) != 1 or rows[-1] is not wins[0]):
            problems.append(f"input {i}: succeeded but the journal has {len(wins)} answers")
        if model is not None and wins and wins[0]["model"] != model:
            problems.append(f"input {i}: answered by {model}, journaled {wins[0]['model']}")
        if model is None and wins:
            problems.append(f"input {i}: failed ({error}) though the journal has a 200")
        for k, row in enumerate(rows):
            final = row["status"] in (400, 401) or (
                row["status"] == 500 and row["cause"] == "fault"
            )
            if final:
                counts["expected_fail"] += k == len(rows) - 1
                if k != len(rows) - 1:
                    counts["retries_after_unretryable"] += 1
                    problems.append(f"input {i}: attempt after a {row['status']}: {rows}")
            if row["status"] == 429:
                later = [r for r in rows[k + 1 :] if r["model"] == row["model"]]
                if later:
                    counts["retry_after_waits_checked"] += 1
                    earliest = row["t"] + row["latency_ms"] / 1000 + RETRY_AFTER - TOLERANCE
                    if later[0]["t"] < earliest:
                        counts["early_after_retry_after"] += 1
                        problems.append(f"input {i}: retried {row['model']} before Retry-After")
    return problems, counts


def main(argv: Optional[List[str]] = None) -> int:
    """Run the soak, print its figures, return 1 when a check fails."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="3,000 inputs, a 3 s outage (CI)")
    parser.add_argument("--requests", type=int, default=None, help="inputs (default 10,000)")
    parser.add_argument("--workers", type=int, default=32, help="client max_workers (32)")
    parser.add_argument("--outage", type=float, default=None, help="primary outage seconds (10)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    n = args.requests or (3000 if args.quick else 10_000)
    outage = args.outage if args.outage is not None else (3.0 if args.quick else 10.0)
    sim = SimProcess(scenario(args.seed, 1.0, outage))
    problems: List[str] = []
    try:
        # Warm up (imports, pool threads, connections) so "before" is the steady state.
        warm = cometsync.Client(api_key=KEY, base_url=sim.url + "/v1", max_workers=args.workers)
        with warm:
            list(
                warm.chat.completions.map(
                    [{"model": MODELS[1], "messages": [{"role": "user", "content": "w"}]}] * 50,
                    return_exceptions=True,
                )
            )
        before = measure()
        sim.admin("/_sim/reset", b"{}")  # the outage starts 1 s from here
        outcomes, found, seconds, still_open = run(sim.url, n, args.workers, args.seed)
        problems += found
        after = measure()
        journal = sim.admin("/_sim/journal")
        stats = sim.admin("/_sim/stats")
    finally:
        stderr = sim.close()
    if "Traceback" in stderr:
        problems.append("the simulator logged a traceback:\n" + stderr[-2000:])
    if len(outcomes) != n:
        problems.append(f"map yielded {len(outcomes)} items for {n} inputs")
    found, counts = check_journal(journal, outcomes)
    problems += found
    succeeded = sum(1 for model, _, _ in outcomes if model is not None)
    invalid_inputs = sum(1 for i in range(n) if invalid(i))
    expected_fail = counts["expected_fail"]
    rate = succeeded / max(1, n - expected_fail)
    if rate < SUCCESS_FLOOR:
        problems.append(f"success rate {rate:.4f} of the inputs that could succeed, too low")
    if still_open["threads"] > before["threads"] + args.workers:
        problems.append(f"{still_open['threads']} threads for {args.workers} workers")
    if still_open["sockets"] > args.workers:
        problems.append(f"{still_open['sockets']} sockets for {args.workers} workers")
    if after["threads"] > before["threads"]:
        problems.append(f"threads grew: {before['threads']} -> {after['threads']}")
    if before["sockets"] >= 0 and after["sockets"] > before["sockets"]:
        problems.append(f"sockets grew: {before['sockets']} -> {after['sockets']}")
    if after["rss_mb"] - before["rss_mb"] > 64:
        problems.append(f"RSS grew {after['rss_mb'] - before['rss_mb']:.1f} MB")
    figures = {
        "inputs": n,
        "requests": len(journal),
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(journal) / seconds, 1),
        "succeeded": succeeded,
        "invalid_inputs": invalid_inputs,
        "unretryable_failures": expected_fail,
        "success_rate_of_the_rest": round(rate, 5),
        "by_status": stats.get("by_status"),
        "by_model": {m: sum(v.values()) for m, v in (stats.get("by_model") or {}).items()},
        "failures": dict(sorted(_classes(outcomes).items())),
        "retries_after_400_401_invalid_request": counts["retries_after_unretryable"],
        "attempts_before_retry_after": counts["early_after_retry_after"],
        "retry_after_waits_checked": counts["retry_after_waits_checked"],
        "before": before,
        "open_after_run": still_open,
        "after_close": after,
        "problems": len(problems),
    }
    print(json.dumps(figures, indent=2))
    for problem in problems[:20]:
        print("FAIL:", problem, file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    print("soak:", "FAILED" if problems else "passed", file=sys.stderr)
    return 1 if problems else 0


def _classes(outcomes: List[Outcome]) -> Dict[str, int]:
    found: Dict[str, int] = defaultdict(int)
    for _, _, error in outcomes:
        if error is not None:
            found[error] += 1
    return found


if __name__ == "__main__":
    sys.exit(main())
