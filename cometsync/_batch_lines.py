"""Reading one input line of ``cometsync batch``: its ``create`` keywords, or why it is malformed.

A line is a chat request (``/v1/chat/completions``, the default) or an embedding request
(``/v1/embeddings``), in OpenAI's batch format; parsing never raises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple, Union

__all__ = ["BatchLine", "custom_id_of", "parse_line"]


@dataclass(frozen=True)
class BatchLine:
    """One non-blank input line: its request (``create`` keywords) or why it is malformed."""

    line: int
    custom_id: str
    request: Optional[Dict[str, Any]] = None
    error: Optional[str] = None
    kind: str = "chat"  # or "embeddings"


def custom_id_of(data: Mapping[str, Any], line: int) -> Tuple[str, Optional[str]]:
    value = data.get("custom_id")
    if value is None:
        return f"line-{line}", None
    if not isinstance(value, str) or not value.strip():
        return f"line-{line}", f"custom_id must be a non-empty string, got {value!r}"[:200]
    return value, None


def _line_kind(data: Mapping[str, Any]) -> Optional[str]:
    """``chat`` or ``embeddings`` from a line's URL; None for a URL we do not run."""
    url = data.get("url", "/v1/chat/completions")
    if not isinstance(url, str):
        return None
    if url.rstrip("/").endswith("/chat/completions"):
        return "chat"
    if url.rstrip("/").endswith("/embeddings"):
        return "embeddings"
    return None


def _check_embedding_body(
    body: Dict[str, Any], default_model: Optional[str]
) -> Union[Dict[str, Any], str]:
    if "input" not in body:
        return "the body has no 'input'"
    model = body.get("model", default_model)
    if model is None:
        return "the body has no 'model' and no default model (-m) was given"
    rest = {k: v for k, v in body.items() if k not in ("model", "input")}
    return {"model": model, "input": body["input"], "extra_body": rest}


def _check_line(data: Any, default_model: Optional[str]) -> Union[Dict[str, Any], str]:
    """The ``create`` keywords of a decoded line, or the problem with it."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    method = data.get("method", "POST")
    if method != "POST":
        return f"method must be POST, got {method!r}"[:200]
    kind = _line_kind(data)
    if kind is None:
        return (
            f"only /v1/chat/completions and /v1/embeddings are supported, "
            f"got url {data.get('url')!r}"
        )[:200]
    body = data.get("body")
    if not isinstance(body, dict):
        what = "chat" if kind == "chat" else "embedding"
        return f"'body' must be a JSON object (the {what} request)"
    if kind == "embeddings":
        return _check_embedding_body(body, default_model)
    if body.get("stream"):
        return "'stream' is not supported in a batch"
    if "messages" not in body:
        return "the body has no 'messages'"
    model = body.get("model", default_model)
    if model is None:
        return "the body has no 'model' and no default model (-m) was given"
    rest = {k: v for k, v in body.items() if k not in ("model", "messages", "stream")}
    # Everything else goes through extra_body so a body key can never collide with one of
    # create()'s own keywords (timeout, fallback_models, ...).
    return {"model": model, "messages": body["messages"], "extra_body": rest}


def parse_line(text: str, line: int, default_model: Optional[str] = None) -> BatchLine:
    """Read one input line (never raises: problems become ``BatchLine.error``)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        reason = getattr(exc, "msg", str(exc))
        column = getattr(exc, "colno", None)
        where = f" at column {column}" if column is not None else ""
        return BatchLine(
            line, f"line-{line}", error=f"line {line}: not valid JSON ({reason}{where})"
        )
    if not isinstance(data, dict):
        return BatchLine(
            line,
            f"line-{line}",
            error=f"line {line}: expected a JSON object, got {type(data).__name__}",
        )
    custom_id, problem = custom_id_of(data, line)
    checked = problem if problem is not None else _check_line(data, default_model)
    if isinstance(checked, str):
        return BatchLine(line, custom_id, error=f"line {line}: {checked}")
    return BatchLine(line, custom_id, request=checked, kind=_line_kind(data) or "chat")
