"""Pure readings of an error reply's body: which model problem, which error code, an HTML page.

Split from ``_policy``, whose ``assess`` asks these questions of a failed attempt's body; they
are pure functions of the decoded JSON (or the text when it did not decode).
"""

from __future__ import annotations

from typing import Any, FrozenSet

__all__ = [
    "_INVALID_REQUEST_CODES",
    "_QUOTA_CODES",
    "_context_exceeded",
    "_error_code",
    "_looks_html",
    "_names_model",
]

_INVALID_REQUEST_CODES = frozenset({"invalid_request", "invalid_request_error"})
_QUOTA_CODES = frozenset({"insufficient_quota", "quota_exceeded"})
_CONTEXT_CODES = frozenset({"context_length_exceeded"})
_CONTEXT_MESSAGE = "maximum context length"  # OpenAI's wording when the code is missing


def _names_model(body: Any) -> bool:
    """Whether a 404's JSON error is about the model (``model_not_found``, "model ... not")."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return isinstance(err, str) and "model" in err.lower()
    code = str(err.get("code") or "")
    message = str(err.get("message") or "").lower()
    if message.startswith("invalid url"):  # "Invalid URL (GET /models)" names a path, not a model
        return False
    return "model" in code or "model" in message


def _context_exceeded(body: Any) -> bool:
    """Whether a 400 says the prompt is too long for the model (code or OpenAI's message)."""
    if _error_code(body) & _CONTEXT_CODES:
        return True
    err = body.get("error") if isinstance(body, dict) else None
    message = err.get("message") if isinstance(err, dict) else err
    return isinstance(message, str) and _CONTEXT_MESSAGE in message.lower()


def _error_code(body: Any) -> FrozenSet[str]:
    """The JSON error's ``code`` and ``type``: the gateway puts the telling one in either."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return frozenset()
    err = body["error"]
    return frozenset(str(err[k]) for k in ("code", "type") if err.get(k) is not None)


def _looks_html(body: Any) -> bool:
    """Whether a text body is an HTML page (a proxy's error page, not the gateway's JSON)."""
    return isinstance(body, str) and body.lstrip()[:15].lower().startswith(("<!doctype", "<html"))
