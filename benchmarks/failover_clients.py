"""The recipes the failover scorecard compares, each as a user would write it.

* ``cometsync``: ``cometsync.Client(fallback_models=[...])`` with every other setting at its
  default; a stream is read chunk by chunk, then ``get_final_completion()``. The reader opts in
  to clean restarts as the README shows a reader that can take back what it showed:
  ``stream.on_restart(callback)``, the callback discarding the text shown so far.
* ``openai``: ``openai.OpenAI()`` at its defaults (2 retries, 600 s read timeout), on the
  primary model alone: openai-python has no fallback chain, and a user who writes one by hand
  writes the source document's loop, the next column.
* ``doc-loop``: the source document's loop, verbatim: ``openai.OpenAI()`` at its defaults
  (so its retries run underneath), each model in turn; after a ``RateLimitError`` or a
  500/503/504/524 sleep a fixed 2 s and try the next model; anything else is raised. For a
  stream the chunks are read inside the ``try``, the most forgiving reading.

At a scale below 1 (``--fast``) every duration a recipe waits by design is multiplied by the
scale too: cometsync's timeouts, backoff, Retry-After ceiling and protections' windows,
openai's timeouts and the document's 2 s sleep (openai's own backoff, 0.5 to 8 s, is left as
it is: it only makes that column slower).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .failover_cases import MESSAGES

__all__ = ["KEY", "RECIPES", "Answer", "Caller", "Recipe", "describe", "scaled"]

#: The bearer key sent to the simulator (any non-empty key is accepted there).
KEY = "sk-scorecard-local"

Account = Tuple[Tuple[Optional[str], Optional[int]], ...]


@dataclass
class Answer:
    """What one request ended with, as the caller saw it.

    Attributes:
        text: the answer the caller was handed (None when an exception was raised).
        model: the model the client says answered.
        usage: ``(prompt_tokens, completion_tokens)`` as the client reports them.
        error: ``"ClassName: message"`` when an exception reached the caller.
        attempts: the client's own account of its attempts ``(model, status)``, if it keeps one.
        restarted: the client signalled that the answer restarted (its text may repeat).
        final_text: for cometsync streams, ``get_final_completion()``'s content.
        started, elapsed: seconds since the cell's origin, and the request's duration.
    """

    text: Optional[str] = None
    model: Optional[str] = None
    usage: Optional[Tuple[int, int]] = None
    error: Optional[str] = None
    attempts: Optional[Account] = None
    restarted: bool = False
    final_text: Optional[str] = None
    started: float = 0.0
    elapsed: float = 0.0


class Caller:
    """One client, built once per cell (so shared state like breakers lives across a sequence)."""

    def call(self, stream: bool) -> Answer:
        """Send the case's request once; raise what the client raises."""
        raise NotImplementedError

    def close(self) -> None:
        """Give back the client's connections."""


@dataclass(frozen=True)
class Recipe:
    """A column of the scorecard: ``make(base_url, chain, scale)`` builds its caller."""

    name: str
    label: str
    make: Callable[[str, Sequence[str], float], Caller]
    missing: Callable[[], Optional[str]]


def describe(exc: BaseException) -> str:
    """``ClassName: first line of the message``, short and free of the API key."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text.replace(KEY, '<key>')[:120]}"


# Fields of cometsync's configuration objects that are durations in seconds.
_DURATIONS = frozenset(
    {
        "connect",
        "read",
        "write",
        "pool",
        "first_token",
        "base",
        "cap",
        "max_retry_after",
        "window",
        "decrease_every",
        "skip_after",
        "cooldown",
        "max_cooldown",
        "probe_timeout",
        "probe_poll",
        "probe_interval",
    }
)


def scaled(obj: Any, scale: float) -> Any:
    """A copy of a frozen config dataclass with every duration field multiplied by ``scale``."""
    changes: Dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes[f.name] = scaled(value, scale)
        elif (
            f.name in _DURATIONS and isinstance(value, (int, float)) and not isinstance(value, bool)
        ):
            changes[f.name] = value * scale
    return dataclasses.replace(obj, **changes) if changes else obj


class _Comet(Caller):
    def __init__(self, base_url: str, chain: Sequence[str], scale: float) -> None:
        import cometsync

        options: Dict[str, Any] = {}
        if scale != 1:
            options = {
                "timeout": scaled(cometsync.Timeout(), scale),
                "retry": scaled(cometsync.RetryPolicy(), scale),
                "protections": scaled(cometsync.Protections(), scale),
            }
        self.primary = chain[0]
        self.client = cometsync.Client(
            api_key=KEY, base_url=base_url, fallback_models=list(chain[1:]), **options
        )

    def call(self, stream: bool) -> Answer:
        create = self.client.chat.completions.create
        if not stream:
            r = create(model=self.primary, messages=MESSAGES)
            usage = (r.usage.prompt_tokens, r.usage.completion_tokens) if r.usage else None
            return Answer(
                text=r.choices[0].message.content,
                model=r.model,
                usage=usage,
                attempts=tuple((a.model, a.status) for a in r.attempts),
            )
        parts: List[str] = []
        restarts: List[str] = []

        def discard(shown: str) -> None:  # the documented reaction: take back what was shown
            restarts.append(shown)
            parts.clear()

        with create(model=self.primary, messages=MESSAGES, stream=True) as s:
            if hasattr(s, "on_restart"):  # cometsync with mid-stream recovery
                s.on_restart(discard)
            for chunk in s:
                parts.extend(c.delta.content or "" for c in chunk.choices)
            final = s.get_final_completion()
            attempts = tuple((a.model, a.status) for a in s.attempts)
            model = s.model
        return Answer(
            text="".join(parts),
            model=model,
            attempts=attempts,
            restarted=bool(restarts),
            final_text=final.choices[0].message.content,
        )

    def close(self) -> None:
        self.client.close()


def _openai_missing() -> Optional[str]:
    try:
        import openai  # noqa: F401
    except ImportError:
        return "openai is not installed (pip install openai)"
    return None


class _OpenAI(Caller):
    def __init__(self, base_url: str, chain: Sequence[str], scale: float, doc: bool) -> None:
        import openai

        options: Dict[str, Any] = {}
        if scale != 1:
            default = openai.DEFAULT_TIMEOUT
            read, connect = default.read or 600.0, default.connect or 5.0
            timeout = type(default)(read * scale, connect=connect * scale)
            options["timeout"] = timeout
        self.openai = openai
        # Any: the chat overloads' message types are beside the point of a benchmark.
        self.client: Any = openai.OpenAI(api_key=KEY, base_url=base_url, **options)
        self.chain = list(chain) if doc else [chain[0]]
        self.doc = doc
        self.sleep = 2.0 * scale

    def _once(self, model: str, stream: bool) -> Answer:
        create = self.client.chat.completions.create
        if not stream:
            r = create(model=model, messages=MESSAGES)
            u = r.usage
            return Answer(
                text=r.choices[0].message.content,
                model=r.model,
                usage=(u.prompt_tokens, u.completion_tokens) if u else None,
            )
        parts: List[str] = []
        answered: Optional[str] = None
        s = create(model=model, messages=MESSAGES, stream=True)
        try:
            for chunk in s:
                answered = chunk.model or answered
                parts.extend(c.delta.content or "" for c in chunk.choices)
        finally:
            s.close()
        return Answer(text="".join(parts), model=answered)

    def call(self, stream: bool) -> Answer:
        if not self.doc:
            return self._once(self.chain[0], stream)
        openai = self.openai
        for model in self.chain:  # the source document's loop
            try:
                return self._once(model, stream)
            except openai.RateLimitError:
                time.sleep(self.sleep)
                continue
            except openai.APIError as error:
                status_code = getattr(error, "status_code", None)
                if status_code in {500, 503, 504, 524}:
                    time.sleep(self.sleep)
                    continue
                raise
        raise RuntimeError("All configured model fallbacks failed.")

    def close(self) -> None:
        self.client.close()


RECIPES: Tuple[Recipe, ...] = (
    Recipe(
        "cometsync",
        "cometsync Client(fallback_models=[fallback]), defaults",
        _Comet,
        lambda: None,
    ),
    Recipe(
        "openai",
        "openai.OpenAI() defaults, primary only (no fallback loop)",
        lambda url, chain, scale: _OpenAI(url, chain, scale, doc=False),
        _openai_missing,
    ),
    Recipe(
        "doc-loop",
        "the source document's loop over the chain, on openai.OpenAI() defaults",
        lambda url, chain, scale: _OpenAI(url, chain, scale, doc=True),
        _openai_missing,
    ),
)
