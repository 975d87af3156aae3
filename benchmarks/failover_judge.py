"""The failover scorecard's verdicts, judged from the simulator's journal and the answers.

Conduct (how many attempts each model got, when, and after what) is read from the journal
the simulator kept, never from the client's own account; only the ``fail-over accounting``
case compares that account with the journal.

* ``fail``: a hang (no answer and no error within the watchdog), an answer handed over as
  complete that is not (cut, garbled), a 400 sent again to the model that refused it, any
  attempt after a content filter's 400, or hammering (over ``HAMMER`` attempts on one
  model per request).
* ``pass``: every request got the complete answer (or, for a content filter, a clean error
  after one attempt) and conduct was clean.
* ``partial``: rescued, with an advisory slip: a retry sooner than the server's Retry-After,
  more than one timeout on a silent model, a down model retried on every call, a primary not
  trusted again within ``BACK_WITHIN`` s of its recovery, an account that does not match the
  journal.
* ``safe``: not rescued, but every request ended in a clean, bounded error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from simulator import wire

from .failover_cases import CHAIN, MESSAGES, PRIMARY, Case
from .failover_clients import Answer

__all__ = [
    "BACK_WITHIN",
    "HAMMER",
    "SCORES",
    "Verdict",
    "complete_answers",
    "is_complete",
    "judge",
]

SCORES = ("pass", "partial", "safe", "fail")
#: More attempts than this on one model for one request is hammering.
HAMMER = 6
#: A primary should take traffic again within this many seconds (full scale) of recovering.
BACK_WITHIN = 10.0
#: Slack when comparing the journal's times with a Retry-After (clock rounding, scheduling).
_SLACK = 0.01


@dataclass
class Verdict:
    """One cell: the score, why, and what the journal shows."""

    score: str
    note: str
    slips: List[str] = field(default_factory=list)
    trace: str = ""


def complete_answers(seed: int, chain: Sequence[str] = CHAIN) -> Set[str]:
    """The texts that count as the complete answer: each chain model's whole answer."""
    out: Set[str] = set()
    for model in chain:
        words, _ = wire.generate_words(seed, model, MESSAGES, None)
        out.add(" ".join(words))
    return out


def is_complete(text: str, seed: int, chain: Sequence[str] = CHAIN) -> bool:
    """Whether ``text`` is a whole answer: one model's, or one model's start continued by another.

    A stream recovered on another model by continuation spells the first model's partial text
    and then the second model's continuation of it (the simulator's rule for a prefill that is
    not its own answer's start), so every such splice counts as complete.
    """
    if text in complete_answers(seed, chain):
        return True
    try:
        from simulator.prefill import continuation
    except ImportError:  # a simulator without continuation: whole answers only
        return False
    for first in chain:
        words, _ = wire.generate_words(seed, first, MESSAGES, None)
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        for k in range(1, len(pieces)):
            prefix = "".join(pieces[:k])
            if not text.startswith(prefix):
                break
            for other in chain:
                if other == first:
                    continue
                prefill = [*MESSAGES, {"role": "assistant", "content": prefix}]
                rest, _ = continuation(seed, other, prefill, None)
                if text == prefix + "".join(rest):
                    return True
    return False


def _expected_usage(seed: int, model: str) -> Tuple[int, int]:
    words, _ = wire.generate_words(seed, model, MESSAGES, None)
    return wire.estimate_prompt_tokens(MESSAGES), len(words)


def trace(records: Sequence[Dict[str, Any]]) -> str:
    """The journal in short: ``primary 503 503 503 | fallback 200`` (``-``: no response)."""
    groups: List[Tuple[str, List[str]]] = []
    for r in records:
        status = "-" if r["status"] is None else str(r["status"])
        if groups and groups[-1][0] == r["model"]:
            groups[-1][1].append(status)
        else:
            groups.append((str(r["model"]), [status]))
    return " | ".join(f"{m} {' '.join(s)}" for m, s in groups)


def _hard_faults(case: Case, records: Sequence[Dict[str, Any]]) -> Optional[str]:
    per_model = Counter(r["model"] for r in records)
    for model, n in per_model.items():
        if n > HAMMER * case.requests:
            return f"hammering: {n} attempts on {model} for {case.requests} request(s)"
    refused: Counter[str] = Counter()
    for r in records:
        if r["status"] == 400:
            refused[r["model"]] += 1
            if refused[r["model"]] > 1:
                return f"a 400 sent again to {r['model']}"
    if case.expect_error:
        firsts = [i for i, r in enumerate(records) if r["status"] == 400]
        if firsts and len(records) > firsts[0] + 1:
            after = records[firsts[0] + 1]
            return f"sent the refused request on to {after['model']} after a content-filter 400"
    return None


def _retry_after_slips(case: Case, records: Sequence[Dict[str, Any]], scale: float) -> List[str]:
    if case.retry_after is None:
        return []
    status, seconds = case.retry_after
    wait = seconds * scale
    slips = []
    for i, r in enumerate(records):
        if r["model"] != PRIMARY or r["status"] != status:
            continue
        answered = r["t"] + r["latency_ms"] / 1000.0
        later = [n for n in records[i + 1 :] if n["model"] == PRIMARY]
        if later and later[0]["t"] - answered < wait - max(_SLACK, 0.02 * wait):
            gap = later[0]["t"] - answered
            slips.append(f"retried {PRIMARY} {gap:.2f} s after a Retry-After of {wait:g} s")
    return slips


def _outage_slips(
    case: Case, records: Sequence[Dict[str, Any]], answers: Sequence[Answer], scale: float
) -> Tuple[List[str], str]:
    """The outage's slips, and its facts in words (attempts while down, time to trust again)."""
    assert case.outage is not None
    down = case.outage[0] * scale
    calls_down = sum(1 for a in answers if a.started < down)
    tries_down = sum(1 for r in records if r["model"] == PRIMARY and r["t"] < down)
    slips = []
    if calls_down and tries_down > calls_down:
        slips.append(f"{tries_down} attempts on the down primary for {calls_down} calls")
    back = [r["t"] - down for r in records if r["model"] == PRIMARY and r["status"] == 200]
    later = [a for a in answers if a.started >= down]
    bound = BACK_WITHIN * scale
    if later and not back:
        slips.append("the primary got no traffic after it recovered")
    elif back and back[0] > bound:
        slips.append(f"the primary took traffic again {back[0]:.2f} s after it recovered")
    facts = f"{tries_down} attempts on the down primary for {calls_down} calls"
    if back:
        facts += f", primary answering again {back[0]:.2f} s after it recovered"
    return slips, facts


def _account_slips(records: Sequence[Dict[str, Any]], answer: Answer, seed: int) -> List[str]:
    answered = [r["model"] for r in records if r["status"] == 200]
    slips = []
    if answered and answer.model != answered[-1]:
        slips.append(f"reports model {answer.model!r}, the journal shows {answered[-1]!r}")
    if answered and answer.usage is not None:
        expected = _expected_usage(seed, answered[-1])
        if answer.usage != expected:
            slips.append(f"reports usage {answer.usage}, the answer had {expected}")
    if answer.attempts is not None:
        journal = tuple((r["model"], r["status"]) for r in records)
        if answer.attempts != journal:
            slips.append(f"reports attempts {list(answer.attempts)}, the journal {list(journal)}")
    return slips


def judge(
    case: Case,
    answers: Sequence[Answer],
    journal: Sequence[Dict[str, Any]],
    *,
    hung: bool,
    watchdog: float,
    scale: float,
    seed: int,
) -> Verdict:
    """Score one cell (see the module docstring for the rules)."""
    records = [r for r in journal if str(r["route"]).startswith("/v1/chat/completions")]
    shown = trace(records) if case.outage is None else _outage_trace(records)
    if hung:
        return Verdict("fail", f"hang: neither an answer nor an error in {watchdog:g} s", [], shown)
    hard = _hard_faults(case, records)
    if hard is not None:
        return Verdict("fail", hard, [], shown)
    complete = complete_answers(seed)
    for a in answers:
        if a.text is not None and not is_complete(a.text, seed):
            what = "garbled" if len(a.text) > min(map(len, complete)) else "cut"
            return Verdict(
                "fail", f"a {what} answer handed over as complete: {a.text!r}", [], shown
            )
    errors = [a.error for a in answers if a.error is not None]
    if case.expect_error:
        if errors and len(records) == 1:
            return Verdict("pass", f"clean error after one attempt ({errors[0]})", [], shown)
        return Verdict("fail", "the refused request was answered", [], shown)
    if errors:
        first = errors[0]
        count = f"{len(errors)}/{len(answers)} calls failed: " if len(answers) > 1 else ""
        return Verdict("safe", f"not rescued: {count}{first}", [], shown)
    slips = _retry_after_slips(case, records, scale)
    if case.silent:
        waited = sum(1 for r in records if r["model"] == PRIMARY)
        if waited > 1:
            slips.append(f"waited out {waited} timeouts on the silent primary")
    facts = ""
    if case.outage is not None:
        more, facts = _outage_slips(case, records, answers, scale)
        slips.extend(more)
    if case.accounting:
        slips.extend(_account_slips(records, answers[0], seed))
    for a in answers:
        if a.final_text is not None and a.final_text != a.text:
            slips.append("get_final_completion() differs from the streamed text")
            break
    models = sorted({a.model or "?" for a in answers})
    how = f"answered by {', '.join(models)}"
    if any(a.restarted for a in answers):
        how += " after a signalled restart"
    if facts and not slips:
        how += f" ({facts})"
    if slips:
        return Verdict("partial", f"{how}; " + "; ".join(slips), slips, shown)
    return Verdict("pass", how, [], shown)


def _outage_trace(records: Sequence[Dict[str, Any]]) -> str:
    by: Dict[Tuple[str, str], int] = Counter(
        (str(r["model"]), "-" if r["status"] is None else str(r["status"])) for r in records
    )
    return ", ".join(f"{m} {s} x{n}" for (m, s), n in sorted(by.items()))
