"""The shared protections' decisions, as pure functions over a state dict (the model).

Every store runs exactly these decisions: the in-memory store calls them under a lock, the
Redis store runs their line-for-line Lua twins (``_redis_scripts``) atomically, and a
virtual-time engine may call them directly. A test replays one sequence of operations against
this model and a real Redis and asserts identical answers, so the three cannot drift apart.

Conventions the Lua twins share: times are seconds on the callers' wall clock (``now`` is an
argument, never read here, so a fake clock works and every process of a fleet compares the
same scale); a missing field means "never set"; arguments arrive as one flat list of numbers
(the script's ARGV), built by the ``*_argv`` helpers.

State of one (key, model) pair, the fields of one Redis hash:
``rt``/``tt`` request/token GCRA theoretical arrival times; ``hold`` the server's hold (a
Retry-After) ends; ``open`` the breaker's cooldown ends (absent: closed); ``probe`` a probe is
out until then; ``fails``/``lastf``/``hint``/``cool``/``trips`` the breaker's streak;
``lrpm``/``ltpm`` the limits the server announced.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = [
    "ALL",
    "EPSILON",
    "FAIL",
    "GATE",
    "NEUTRAL",
    "NO_HEALTH",
    "OK",
    "PEEK",
    "SEND",
    "admit",
    "admit_argv",
    "budget",
    "budget_argv",
    "observe",
    "observe_argv",
]

State = Dict[str, float]

GATE = 0  # before a model is tried: the breaker and a long server hold (takes the probe)
SEND = 1  # before an attempt leaves: the server's hold, then the request and token GCRA
ALL = 2  # both in one round trip: GATE, then SEND's checks; reserves when it can go now
PEEK = 3  # the breaker's state only, changing nothing: may a failed call retry the model?

# Observe kinds: says nothing of health (frees a stale probe), a success, a failure, and
# no news for the breaker at all (a token settlement).
NEUTRAL, OK, FAIL, NO_HEALTH = 0, 1, 2, 3

#: A wait shorter than this is no wait: sums of emission intervals are not exact in binary
#: floating point (ten times 0.1 s exceeds 1 s by 2e-16; at wall-clock magnitudes, by 1e-7).
EPSILON = 1e-6


def admit_argv(
    now: float,
    mode: int,
    rpm: float,
    tpm: float,
    tokens: float,
    probe_timeout: float,
    probe_poll: float,
    skip_after: float,
    ttl: float,
    settle: float = 0.0,
    count_call: bool = False,
    ratio: float = 0.0,
    floor: float = 0.0,
    window: float = 10.0,
    ahead: float = 0.0,
) -> List[float]:
    """ARGV of the admission script (0 stands for "no limit").

    ``settle`` tokens (negative: a refund) correct earlier reservations first; with
    ``count_call`` the call is also counted in the retry budget (``ratio``, ``floor``,
    ``window``), so a call's start, its first admission and its settlements cost one trip.
    ``ahead`` (SEND only) is how long the caller may wait for its turn: a turn due within it
    is reserved now (``"queued"``), which is what keeps the callers of a fleet in line.
    """
    return [
        now,
        mode,
        rpm,
        tpm,
        tokens,
        probe_timeout,
        probe_poll,
        skip_after,
        ttl,
        settle,
        1 if count_call else 0,
        ratio,
        floor,
        window,
        ahead,
    ]


def _limit(configured: float, learned: float) -> float:
    """The tighter of two limits, 0 meaning none."""
    if configured > 0 and learned > 0:
        return min(configured, learned)
    return configured if configured > 0 else learned


def admit(
    state: State, argv: Sequence[float], budget_state: Optional[State] = None
) -> Tuple[str, float]:
    """One admission: ``("go"|"probe", 0)``, ``("wait"|"probe-wait", s)`` or ``(reason, s)``.

    First the bookkeeping that holds whatever the answer: ``settle`` tokens are added to the
    token bucket, and with ``count_call`` the call is counted in ``budget_state``.

    GATE checks the breaker and the server's hold: an open breaker refuses (``"cooldown"``)
    until its cooldown ends, then lets one caller through as the probe (``"probe"``) and
    refuses the others while the probe is out (``"probing"``); a hold longer than
    ``skip_after`` refuses (``"hold"``; a shorter one is waited out before sending). SEND
    checks the hold, then both GCRA buckets (see ``ratelimit``): ``"go"`` records the request
    and reserves ``tokens``; ``"hold"``/``"rate"`` reserve nothing. ALL runs GATE, then
    SEND's checks: ``"go"``/``"probe"`` are admitted and reserved, ``"wait"``/``"probe-wait"``
    are admitted but must wait that long and pace with SEND before sending. PEEK answers
    ``"go"``, ``"cooldown"`` or ``"half-open"`` (a probe is one attempt: no retry), or
    ``"hold"`` while the server's hold lasts.

    Scheduling ahead (SEND with ``ahead`` > 0): while the breaker cools down SEND refuses
    (``"cooldown"``, nothing reserved); when the rates let the request go in ``wait`` seconds
    and ``wait`` <= ``ahead``, both buckets are charged now as if it went and the answer is
    ``("queued", wait)``: the caller sleeps that long and sends without asking again, and
    whoever asks next queues behind it (first come, first served across processes). A wait
    beyond ``ahead``, or a hold, reserves nothing.
    """
    now, mode, rpm, tpm, tokens, probe_timeout, probe_poll, skip_after = argv[:8]
    settle, count_call, ratio, floor, window = argv[9:14]
    ahead = argv[14] if len(argv) > 14 else 0.0
    if count_call and budget_state is not None:
        budget(budget_state, budget_argv(now, False, ratio, floor, window))
    t_limit = _limit(tpm, state.get("ltpm", 0.0))
    if settle != 0 and t_limit > 0 and "tt" in state:
        state["tt"] = state["tt"] + settle * 60.0 / t_limit
    if mode == PEEK:
        opened = state.get("open")
        if opened is None:
            hold = state.get("hold", 0.0)
            return ("hold", hold - now) if now < hold else ("go", 0.0)
        return ("cooldown", opened - now) if now < opened else ("half-open", 0.0)
    hold = state.get("hold", 0.0)
    probed = False
    if mode == SEND and ahead > 0:
        opened = state.get("open")
        if opened is not None and now < opened:
            return "cooldown", opened - now
    if mode != SEND:
        opened = state.get("open")
        if opened is not None and now < opened:
            return "cooldown", opened - now
        probe = state.get("probe", 0.0)
        if opened is not None and now < probe:
            return "probing", min(probe_poll, probe - now)
        if hold - now > skip_after:
            return "hold", hold - now
        if opened is not None:
            state["probe"] = now + probe_timeout
            probed = True
        if mode == GATE:
            return ("probe" if probed else "go"), 0.0
    if now < hold:
        if mode == SEND:
            return "hold", hold - now
        return ("probe-wait" if probed else "wait"), hold - now
    wait = 0.0
    new_rt = None
    new_tt = None
    r_limit = _limit(rpm, state.get("lrpm", 0.0))
    if r_limit > 0:
        interval = 60.0 / r_limit
        new_rt = max(state.get("rt", now), now) + interval
        wait = max(wait, new_rt - max(1.0, interval) - now)
    if tokens > 0 and t_limit > 0:
        cost = tokens * 60.0 / t_limit
        new_tt = max(state.get("tt", now), now) + cost
        wait = max(wait, new_tt - max(1.0, cost) - now)
    queued = mode == SEND and EPSILON < wait <= ahead
    if wait > EPSILON and not queued:
        if mode == SEND:
            return "rate", wait
        return ("probe-wait" if probed else "wait"), wait
    if new_rt is not None:
        state["rt"] = new_rt
    if new_tt is not None:
        state["tt"] = new_tt
    if queued:
        return "queued", wait
    return ("probe" if probed else "go"), 0.0


def observe_argv(
    now: float,
    kind: int,
    retry_after: float,
    hold: float,
    learned_rpm: float,
    learned_tpm: float,
    settle: float,
    tpm: float,
    failures: float,
    cooldown: float,
    max_cooldown: float,
    window: float,
    ttl: float,
) -> List[float]:
    """ARGV of the observation script (-1 for "no Retry-After" / "no hold", 0 for "none")."""
    return [
        now,
        kind,
        retry_after,
        hold,
        learned_rpm,
        learned_tpm,
        settle,
        tpm,
        failures,
        cooldown,
        max_cooldown,
        window,
        ttl,
    ]


def _forget_breaker(state: State) -> None:
    for name in ("open", "probe", "fails", "lastf", "hint", "cool"):
        state.pop(name, None)


def observe(state: State, argv: Sequence[float]) -> Tuple[str, float]:
    """Learn from one attempt's outcome: ``("tripped", cooldown)``, ``("closed", 0)``, ``("", 0)``.

    In order: the server's hold (a 429's Retry-After, or a spent quota) is extended; the
    limits the server announced are remembered; ``settle`` tokens (negative: a refund) are
    added to the token bucket; then the breaker: a success closes it, a neutral outcome
    after the cooldown frees the probe, a failure counts towards the trip (the rules of
    ``cooldowns.breaker_observe``: a streak older than ``window`` is forgotten, a failed
    probe opens it for ``cooldown`` again, or doubles it up to ``max_cooldown`` when that is
    above 0, and a Retry-After of the streak lengthens it).
    """
    now, kind, retry_after, hold, lrpm, ltpm, settle, tpm = argv[:8]
    failures, cooldown, max_cooldown, window = argv[8:12]
    if hold >= 0:
        state["hold"] = max(state.get("hold", 0.0), now + hold)
    if lrpm > 0:
        state["lrpm"] = lrpm
    if ltpm > 0:
        state["ltpm"] = ltpm
    t_limit = _limit(tpm, state.get("ltpm", 0.0))
    if settle != 0 and t_limit > 0 and "tt" in state:
        state["tt"] = state["tt"] + settle * 60.0 / t_limit
    opened = state.get("open")
    if kind == OK:
        if "fails" in state or opened is not None:
            _forget_breaker(state)
            return ("closed", 0.0) if opened is not None else ("", 0.0)
        return "", 0.0
    if kind == NEUTRAL:
        if opened is not None and now >= opened:
            state.pop("probe", None)  # the probe proved nothing either way: probe again
        return "", 0.0
    if kind != FAIL:
        return "", 0.0
    if opened is None and now - state.get("lastf", -math.inf) > window:
        state["fails"] = 0.0
        state.pop("hint", None)
    state["fails"] = state.get("fails", 0.0) + 1
    state["lastf"] = now
    hint = state.get("hint", -math.inf)
    if retry_after >= 0:
        hint = max(hint, now + retry_after)
        state["hint"] = hint
    if opened is not None and now >= opened:  # the probe failed
        # Steady probing (``max_cooldown`` 0: None); else doubling up to it.
        cool = cooldown if max_cooldown <= 0 else min(max_cooldown, state.get("cool", cooldown) * 2)
    elif opened is None and state["fails"] >= failures:
        cool = cooldown
    else:
        if opened is not None:  # a late failure of a call admitted before the trip
            state["open"] = max(opened, hint)
        return "", 0.0
    state["cool"] = cool
    state["open"] = max(now + cool, hint)
    state.pop("probe", None)
    state["trips"] = state.get("trips", 0.0) + 1
    return "tripped", state["open"] - now


def budget_argv(now: float, retry: bool, ratio: float, floor: float, window: float) -> List[float]:
    """ARGV of the retry-budget script: a call starts (``retry=False``) or a retry is asked."""
    return [now, 1 if retry else 0, ratio, floor, window]


def budget(state: State, argv: Sequence[float]) -> bool:
    """Count a call, or grant a retry if the window's retries stay within ratio x calls + floor.

    The window is ten slices (fields ``c<slice>``/``r<slice>``); slices older than the window
    are deleted, so the state holds at most twenty numbers.
    """
    now, retry, ratio, floor, window = argv[:5]
    current = math.floor(now / (window / 10.0))
    calls = 0.0
    retries = 0.0
    for name in list(state):
        if int(name[1:]) <= current - 10:
            del state[name]
        elif name[0] == "c":
            calls += state[name]
        else:
            retries += state[name]
    if retry == 0:
        name = f"c{current}"
        state[name] = state.get(name, 0.0) + 1
        return True
    if retries + 1 > ratio * calls + floor:
        return False
    name = f"r{current}"
    state[name] = state.get(name, 0.0) + 1
    return True
