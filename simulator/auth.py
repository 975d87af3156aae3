"""API keys: the bearer token of a request, whether it is accepted, and how it is shown.

A key is never logged or journaled whole: :func:`redact` keeps at most its last 4 characters.
"""

from __future__ import annotations

import hmac
from typing import Mapping, Optional

__all__ = ["auth_problem", "bearer", "redact"]


def redact(key: Optional[str]) -> Optional[str]:
    """An API key with at most its last 4 characters visible (fewer for short keys)."""
    if key is None:
        return None
    keep = min(4, len(key) // 3)
    return "..." + key[len(key) - keep :] if keep else "..."


def bearer(headers: Mapping[str, str]) -> Optional[str]:
    """The key of ``Authorization: Bearer <key>`` (or the whole header when not a bearer)."""
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return value.strip() or None
    return token.strip() or None


def auth_problem(key: Optional[str], api_key: Optional[str]) -> Optional[str]:
    """Why ``key`` is refused (None: accepted); ``api_key`` None accepts any non-empty key."""
    if not key:
        return "You didn't provide an API key: send Authorization: Bearer <key>"
    if api_key is not None and not hmac.compare_digest(
        key.encode("utf-8", "replace"), api_key.encode("utf-8", "replace")
    ):
        return f"Incorrect API key provided: {redact(key)}"
    return None
