"""OpenAI / CometAPI wire bodies: completions, chunks, error envelopes, model lists, catalog.

Pure functions of their arguments. Content is derived from a hash of the seed and the request
(never from the shared random state), so a streamed answer and a non-streamed answer to the
same request carry the same text whatever else the simulator drew in between.
"""

from __future__ import annotations

import hashlib
import json
import math
from http import HTTPStatus
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .scenario_types import ModelSpec, Scenario

__all__ = [
    "CREATED",
    "ERROR_TYPE",
    "HTML_502",
    "chunk_payloads",
    "completion",
    "context_length_envelope",
    "dumps",
    "error_envelope",
    "estimate_prompt_tokens",
    "format_duration",
    "format_seconds",
    "generate_words",
    "models_catalog",
    "models_list",
    "pieces",
    "reason",
    "sse",
]

#: ``created`` is fixed so that bodies are byte-for-byte reproducible across runs.
CREATED = 1767225600  # 2026-01-01T00:00:00Z
_DOCS = {
    "text": "https://apidoc.cometapi.com/api/text/chat",
    "embedding": "https://apidoc.cometapi.com/api/text/embeddings",
}
ERROR_TYPE = "comet_api_error"
FINGERPRINT = "fp_simulator"

_REASONS: Dict[int, str] = {s.value: s.phrase for s in HTTPStatus}
_REASONS[524] = "A Timeout Occurred"


def reason(status: int) -> str:
    """The HTTP reason phrase of a status (Cloudflare's 524 too), for both response drivers."""
    return _REASONS.get(status, "Unknown")


#: What a reverse proxy sends when its upstream fails: HTML, not JSON.
HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)

_WORDS = (
    "the quick answer is that retries help when failures are transient and hurt when they "
    "are not so a careful client waits backs off with jitter honours retry after falls back "
    "to another model gives up before its deadline while gateway keeps serving tokens for "
    "everyone else in order simulated reply ok fine good plan when load drops the queue "
    "drains and latency falls"
)
_VOCAB = tuple(_WORDS.split())
assert len(_VOCAB) == 64, len(_VOCAB)  # one byte of the digest picks one word

_DEFAULT_STATUS_ERRORS: Dict[int, Tuple[str, str]] = {
    400: ("invalid_request", "Invalid request"),
    401: ("invalid_api_key", "Invalid API key"),
    403: ("forbidden", "Access to this model is forbidden for this key"),
    404: ("model_not_found", "The model does not exist or you do not have access to it"),
    408: ("request_timeout", "Request timed out"),
    409: ("conflict", "Conflict"),
    413: ("request_too_large", "Request body too large"),
    429: ("rate_limit_exceeded", "Rate limit reached, please retry later"),
    500: ("internal_error", "The upstream server had an error while processing your request"),
    502: ("bad_gateway", "Bad gateway: the upstream provider returned an invalid response"),
    503: ("service_unavailable", "The model is overloaded or temporarily unavailable"),
    504: ("gateway_timeout", "Gateway timeout: the upstream provider did not answer in time"),
    524: ("timeout", "A timeout occurred while waiting for the upstream provider"),
}


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON, the one encoder of every body."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sse(obj: Any) -> bytes:
    """One server-sent event; the string ``[DONE]`` is the stream terminator, bytes go as-is."""
    if isinstance(obj, bytes):
        return obj
    if obj == "[DONE]":
        return b"data: [DONE]\n\n"
    return b"data: " + dumps(obj) + b"\n\n"


def default_error(status: int) -> Tuple[str, str]:
    """The (code, message) used for a status when the scenario gives none."""
    if status in _DEFAULT_STATUS_ERRORS:
        return _DEFAULT_STATUS_ERRORS[status]
    return ("server_error" if status >= 500 else "error", f"HTTP {status}")


def error_envelope(
    status: int,
    request_id: str,
    message: Optional[str] = None,
    code: Optional[str] = None,
    param: Optional[str] = None,
) -> Dict[str, Any]:
    """The CometAPI error body; the request id sits inside the message, as CometAPI does."""
    default_code, default_message = default_error(status)
    return {
        "error": {
            "message": f"{message or default_message} (request id: {request_id})",
            "type": ERROR_TYPE,
            "param": param,
            "code": code or default_code,
        }
    }


def unknown_url_envelope(method: str, route: str) -> Dict[str, Any]:
    """OpenAI's body for a route that does not exist: no code, so never "model not found"."""
    return {
        "error": {
            "message": f"Invalid URL ({method} {route})",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def estimate_prompt_tokens(messages: Sequence[Any]) -> int:
    """About one token per four characters of content, plus a few per message."""
    chars = 0
    for message in messages:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    chars += len(part["text"])
    return 3 + 4 * len(messages) + (chars + 3) // 4


def _digest(seed: int, model: str, messages: Sequence[Any]) -> bytes:
    h = hashlib.blake2b(digest_size=64)
    h.update(f"{seed}\x00{model}\x00".encode())
    for message in messages:
        if isinstance(message, Mapping):
            h.update(str(message.get("role")).encode("utf-8", "replace"))
            h.update(b"\x01")
            content = message.get("content")
            text = content if isinstance(content, str) else repr(content)
            h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\x02")
    return h.digest()


def generate_words(
    seed: int, model: str, messages: Sequence[Any], max_tokens: Optional[int]
) -> Tuple[List[str], str]:
    """The reply's words (one token each) and its finish reason, a function of the request.

    One 64-byte hash of (seed, model, messages) gives the length and one word per byte: fast
    enough for the virtual-time engine, and independent of the shared random state.
    """
    digest = _digest(seed, model, messages)
    n = 8 + digest[0] % 40
    finish = "stop"
    if max_tokens is not None and max_tokens < n:
        n, finish = max_tokens, "length"
    vocab = _VOCAB
    words = [vocab[b & 63] for b in digest[1 : 1 + n]]
    if words:
        words[0] = words[0].capitalize()
        if finish == "stop":
            words[-1] += "."
    return words, finish


def pieces(words: Sequence[str]) -> List[str]:
    """The text of each content chunk: the words, each after the first led by its space."""
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


#: The window a scripted ``context_length_exceeded`` names when the model sets none.
DEFAULT_CONTEXT_WINDOW = 8192


def context_length_envelope(
    request_id: str,
    prompt_tokens: int,
    window: Optional[int] = None,
    message: Optional[str] = None,
) -> Dict[str, Any]:
    """OpenAI's 400 for a prompt over the model's context window (request id as CometAPI adds).

    A scripted step may fire on a short prompt: the count it reports is then just over the
    window, so the message stays self-consistent.
    """
    limit = window or DEFAULT_CONTEXT_WINDOW
    tokens = max(prompt_tokens, limit + 1)
    text = message or (
        f"This model's maximum context length is {limit} tokens. However, your messages "
        f"resulted in {tokens} tokens. Please reduce the length of the messages."
    )
    return {
        "error": {
            "message": f"{text} (request id: {request_id})",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }


def _usage(prompt: int, completion_tokens: int) -> Dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def tool_completion(
    cid: str, model: str, call: Dict[str, Any], prompt_tokens: int
) -> Dict[str, Any]:
    """A ``chat.completion`` whose message is one tool call (``finish_reason: tool_calls``)."""
    body = completion(cid, model, [], "tool_calls", prompt_tokens)
    message = body["choices"][0]["message"]
    message["content"] = None
    message["tool_calls"] = [call]
    body["usage"] = _usage(prompt_tokens, 8 + len(call["function"]["arguments"]) // 4)
    return body


def completion(
    cid: str, model: str, texts: List[str], finish: str, prompt_tokens: int
) -> Dict[str, Any]:
    """A ``chat.completion`` object; ``texts`` are the pieces of its content (one token each)."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(texts), "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": _usage(prompt_tokens, len(texts)),
        "system_fingerprint": FINGERPRINT,
    }


def chunk_payloads(
    cid: str,
    model: str,
    texts: List[str],
    finish: str,
    prompt_tokens: int,
    include_usage: bool,
    tool_call: Optional[Dict[str, Any]] = None,
) -> List[Any]:
    """The ``chat.completion.chunk`` objects of a stream, then ``[DONE]``.

    The first chunk carries the role, then one chunk per text piece, then the finish reason, then
    (with ``include_usage``) a usage chunk with empty choices. With ``tool_call``, the first
    chunk opens the call (id, name, empty arguments) and the next ones carry the arguments in
    pieces, as OpenAI streams them.
    """

    def chunk(delta: Dict[str, Any], reason: Optional[str]) -> Dict[str, Any]:
        body: Dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}],
        }
        if include_usage:
            body["usage"] = None
        return body

    completion_tokens = len(texts)
    if tool_call is None:
        out: List[Any] = [chunk({"role": "assistant", "content": ""}, None)]
        out.extend(chunk({"content": text}, None) for text in texts)
        out.append(chunk({}, finish))
    else:
        function = tool_call["function"]
        opening = {**tool_call, "index": 0, "function": {"name": function["name"], "arguments": ""}}
        out = [chunk({"role": "assistant", "content": None, "tool_calls": [opening]}, None)]
        arguments = function["arguments"]
        out.extend(
            chunk(
                {"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + 8]}}]},
                None,
            )
            for i in range(0, len(arguments), 8)
        )
        out.append(chunk({}, "tool_calls"))
        completion_tokens = 8 + len(arguments) // 4
    if include_usage:
        out.append(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "system_fingerprint": FINGERPRINT,
                "choices": [],
                "usage": _usage(prompt_tokens, completion_tokens),
            }
        )
    out.append("[DONE]")
    return out


def _owner(spec: ModelSpec) -> str:
    return spec.provider


def models_list(scenario: Scenario) -> Dict[str, Any]:
    """``GET /v1/models``."""
    return {"object": "list", "data": [model_object(spec) for spec in scenario.models.values()]}


def model_object(spec: ModelSpec) -> Dict[str, Any]:
    """One entry of ``GET /v1/models``."""
    return {"id": spec.id, "object": "model", "created": CREATED, "owned_by": _owner(spec)}


def models_catalog(scenario: Scenario, page: int, page_size: int) -> Dict[str, Any]:
    """``GET /api/models``: the CometAPI catalog envelope, one entry per scenario model.

    ``page_size`` 0 means every model (CometAPI's own answer: ``page: 0, page_size: 0``).
    """
    specs = list(scenario.models.values())
    window = specs if page_size == 0 else specs[(page - 1) * page_size : page * page_size]
    return {
        "success": True,
        "page": page,
        "page_size": page_size,
        "total": len(specs),
        "data": [
            {
                "id": spec.id,
                "provider": spec.provider,
                # As CometAPI lists its chat and embedding models.
                "model_type": spec.model_type,
                "features": ["text-to-text"] if spec.model_type == "text" else ["embedding"],
                "pricing": {
                    "currency": spec.pricing.currency,
                    "input": spec.pricing.input,
                    "output": spec.pricing.output,
                    "per_request": spec.pricing.per_request,
                    "per_second": spec.pricing.per_second,
                },
                "api_doc_url": _DOCS.get(spec.model_type, _DOCS["text"]),
            }
            for spec in window
        ],
    }


def format_seconds(seconds: float) -> str:
    """A decimal number of seconds with at most millisecond precision: ``1.5``, ``0.2``, ``3``."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def format_duration(seconds: float) -> str:
    """A duration as the ``x-ratelimit-reset-*`` headers write it: ``120ms``, ``1s``, ``6m0s``."""
    ms = math.ceil(max(seconds, 0.0) * 1000)
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest_ms = divmod(ms, 60_000)
    secs = format_seconds(rest_ms / 1000)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
