"""The failover scorecard: its verdict rules on hand-written journals, and a ``--fast`` smoke."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from benchmarks.__main__ import main
from benchmarks.failover_cases import CASES, FALLBACK, PRIMARY, Case
from benchmarks.failover_clients import Answer, scaled
from benchmarks.failover_judge import complete_answers, judge

SEED = 0
BY_NAME = {case.name: case for case in CASES}
GOOD = {model: next(t for t in complete_answers(SEED, (model,))) for model in (PRIMARY, FALLBACK)}


def rec(
    model: str, status: Optional[int], t: float = 0.0, latency_ms: float = 0.0
) -> Dict[str, Any]:
    return {
        "model": model,
        "status": status,
        "t": t,
        "latency_ms": latency_ms,
        "route": "/v1/chat/completions",
    }


def verdict(
    case: Case, answers: List[Answer], journal: List[Dict[str, Any]], hung: bool = False
) -> Any:
    return judge(case, answers, journal, hung=hung, watchdog=300.0, scale=1.0, seed=SEED)


def test_a_complete_answer_with_clean_conduct_passes() -> None:
    """A retry on the primary after its 429 waited the full Retry-After: pass."""
    case = BY_NAME["429 + Retry-After"]
    journal = [rec(PRIMARY, 429, 0.0, 1.0), rec(PRIMARY, 200, 3.2)]
    v = verdict(case, [Answer(text=GOOD[PRIMARY], model=PRIMARY)], journal)
    assert (v.score, v.trace) == ("pass", "primary 429 200")


def test_a_retry_before_retry_after_is_a_partial() -> None:
    """A rescued call that retried 1 s into a 3 s Retry-After is only a partial."""
    case = BY_NAME["429 + Retry-After"]
    journal = [rec(PRIMARY, 429, 0.0), rec(PRIMARY, 200, 1.0)]
    v = verdict(case, [Answer(text=GOOD[PRIMARY], model=PRIMARY)], journal)
    assert v.score == "partial" and "Retry-After of 3 s" in v.note


def test_a_400_sent_again_fails_even_when_rescued() -> None:
    """Resending a context-length 400 to the same model is a fail, whatever came after."""
    case = BY_NAME["context length"]
    journal = [rec(PRIMARY, 400), rec(PRIMARY, 400, 0.5), rec(FALLBACK, 200, 1.0)]
    v = verdict(case, [Answer(text=GOOD[FALLBACK], model=FALLBACK)], journal)
    assert v.score == "fail" and "400 sent again to primary" in v.note


def test_falling_back_after_a_content_filter_fails() -> None:
    """A content-filter 400 hidden by the fallback's answer is a fail; the clean error passes."""
    case = BY_NAME["content filter"]
    hidden = verdict(
        case,
        [Answer(text=GOOD[FALLBACK], model=FALLBACK)],
        [rec(PRIMARY, 400), rec(FALLBACK, 200, 0.1)],
    )
    assert hidden.score == "fail"
    clean = verdict(case, [Answer(error="BadRequestError: filtered")], [rec(PRIMARY, 400)])
    assert clean.score == "pass"


def test_a_cut_answer_handed_over_fails_and_an_error_is_safe() -> None:
    """Half the answer returned as if complete fails; raising instead is safe."""
    case = BY_NAME["end without [DONE]"]
    journal = [rec(PRIMARY, 200)]
    cut = verdict(case, [Answer(text=GOOD[PRIMARY][:10], model=PRIMARY)], journal)
    assert cut.score == "fail" and "cut answer" in cut.note
    raised = verdict(case, [Answer(error="APIStreamError: cut")], journal)
    assert raised.score == "safe"


def test_hangs_and_hammering_fail() -> None:
    """The watchdog firing, or 7 attempts on one model for one request, are fails."""
    case = BY_NAME["503 persistent"]
    assert verdict(case, [], [rec(PRIMARY, None)], hung=True).score == "fail"
    many = [rec(PRIMARY, 503, i) for i in range(7)] + [rec(FALLBACK, 200, 8)]
    v = verdict(case, [Answer(text=GOOD[FALLBACK], model=FALLBACK)], many)
    assert v.score == "fail" and v.note.startswith("hammering")


def test_timeouts_on_a_silent_model_are_a_partial() -> None:
    """Two timeouts on a silent primary before the fallback answers: rescued, but partial."""
    case = BY_NAME["silent model"]
    journal = [rec(PRIMARY, None), rec(PRIMARY, None, 120), rec(FALLBACK, 200, 241)]
    v = verdict(case, [Answer(text=GOOD[FALLBACK], model=FALLBACK)], journal)
    assert v.score == "partial" and "2 timeouts" in v.note


def test_a_primary_trusted_late_after_an_outage_is_a_partial() -> None:
    """All calls answered, but the primary back 20 s after the outage (bound 10 s): partial."""
    case = BY_NAME["primary down, then healthy"]
    answers = [Answer(text=GOOD[FALLBACK], model=FALLBACK, started=4.0 * i) for i in range(20)]
    journal = [rec(PRIMARY, 503, 0.0)] + [rec(FALLBACK, 200, 4.0 * i) for i in range(20)]
    journal.append(rec(PRIMARY, 200, 80.0))
    v = verdict(case, answers, journal)
    assert v.score == "partial" and "20.00 s after it recovered" in v.note


def test_an_account_that_differs_from_the_journal_is_a_partial() -> None:
    """A client reporting fewer attempts than the journal shows scores partial."""
    case = BY_NAME["fail-over accounting"]
    journal = [rec(PRIMARY, 502), rec(PRIMARY, None), rec(PRIMARY, 503), rec(FALLBACK, 200)]
    honest = ((PRIMARY, 502), (PRIMARY, None), (PRIMARY, 503), (FALLBACK, 200))
    good = Answer(text=GOOD[FALLBACK], model=FALLBACK, attempts=honest)
    assert verdict(case, [good], journal).score == "pass"
    short = Answer(text=GOOD[FALLBACK], model=FALLBACK, attempts=honest[2:])
    assert verdict(case, [short], journal).score == "partial"


def test_scaled_multiplies_durations_only() -> None:
    """--fast scales cometsync's durations (timeouts, backoff, cooldowns), not counts or ratios."""
    import cometsync

    policy = scaled(cometsync.RetryPolicy(), 0.1)
    assert policy.max_retries == 2
    assert policy.backoff.base == pytest.approx(0.05)
    protections = scaled(cometsync.Protections(), 0.1)
    assert protections.cooldown is not None and protections.cooldown.failures == 5
    assert protections.budget is not None and protections.budget.ratio == pytest.approx(0.2)
    assert scaled(cometsync.Timeout(), 0.1).read == pytest.approx(12.0)


def test_fast_smoke_on_a_subset(tmp_path: Path) -> None:
    """--fast on quick cases: JSON shape, cometsync passes each, openai's cut stream fails."""
    out = tmp_path / "failover.json"
    cases = "429-retry-after,500-once,content-filter,no-done,stream-cut,accounting"
    args = ["failover", "--fast", "--cases", cases, "--jobs", "4", "--json", str(out)]
    assert main(args) == 0
    data = json.loads(out.read_text())
    cells = {(c["case"], c["client"]): c for c in data["cells"]}
    assert len(cells) == 18 and data["scale"] == 0.05
    assert all(c["score"] in ("pass", "partial", "safe", "fail", "n/a") for c in cells.values())
    comet = {case: c["score"] for (case, client), c in cells.items() if client == "cometsync"}
    assert set(comet.values()) == {"pass"}, comet
    if cells[("end without [DONE]", "openai")]["score"] != "n/a":
        assert cells[("end without [DONE]", "openai")]["score"] == "fail"


def test_unknown_case_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown case name is refused with exit status 2 and a message naming it."""
    assert main(["failover", "--fast", "--cases", "bogus"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_a_splice_by_continuation_is_complete_and_a_repeat_is_not() -> None:
    """The primary's start continued by the fallback is whole; the start repeated is not."""
    from benchmarks.failover_cases import MESSAGES
    from benchmarks.failover_judge import is_complete
    from simulator.prefill import continuation

    start = " ".join(GOOD[PRIMARY].split(" ")[:3])
    prefill = [*MESSAGES, {"role": "assistant", "content": start}]
    rest = "".join(continuation(SEED, FALLBACK, prefill, None)[0])
    assert is_complete(start + rest, SEED)
    assert not is_complete(start + GOOD[PRIMARY], SEED)
    assert not is_complete(start, SEED)
