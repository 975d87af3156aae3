"""What makes a request or a setting impossible, found before anything is sent.

Pure checks: each returns the value it accepts (normalised) or raises a ``ConfigError`` for a
client setting, a ``RequestTypeError`` / ``RequestValidationError`` for a call's arguments.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping  # not typing's: isinstance on it is several times slower
from typing import Any, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import requests

from ._errors import ConfigError, RequestTypeError, RequestValidationError
from .guards import Guards, Protections

__all__ = [
    "DEFAULT_BASE_URL",
    "_chain",
    "_check_api_key",
    "_check_base_url",
    "_check_deadline",
    "_check_json",
    "_check_map_item",
    "_check_model_list",
    "_check_parts",
    "_check_stream_fields",
    "_refuse_client_settings",
    "_refuse_stream",
    "_validate_messages",
]

# Defined here (re-exported by ``cometsync._client``) because the base_url check names it.
DEFAULT_BASE_URL = "https://api.cometapi.com/v1"
_MISSING: Any = object()


# -- client settings ------------------------------------------------------------------------
def _check_api_key(api_key: Any, from_environment: Optional[str]) -> str:
    """The key to send (``api_key``, else the environment's), stripped; never echoed."""
    if api_key is not None and not isinstance(api_key, str):
        raise ConfigError(f"api_key must be a string, got {type(api_key).__name__}")
    key = api_key if api_key is not None else from_environment
    if not isinstance(key, str) or not key.strip():
        raise ConfigError(
            "no API key: pass api_key=... or set the COMETAPI_KEY environment variable"
        )
    stripped = key.strip()
    if not (stripped.isascii() and stripped.isprintable()) or " " in stripped:
        # Never echo it: a key pasted with a newline would otherwise surface in header
        # errors, which quote the header value.
        raise ConfigError("the API key holds whitespace, control or non-ASCII characters")
    return stripped


def _check_parts(
    max_workers: Any, session: Any, transport: Any, protections: Any, guards: Any
) -> None:
    """The client's pool size and the parts it is built from must fit together."""
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ConfigError(f"max_workers must be an int >= 1, got {max_workers!r}")
    if session is not None and transport is not None:
        raise ConfigError("pass either session= or transport=, not both")
    if session is not None and not isinstance(session, requests.Session):
        raise ConfigError(f"session must be a requests.Session, got {type(session).__name__}")
    if protections is not None and guards is not None:
        raise ConfigError("pass either protections= or guards=, not both")
    if protections is not None and not isinstance(protections, Protections):
        raise ConfigError(f"protections must be a cometsync.Protections, got {protections!r}")
    if guards is not None and not isinstance(guards, Guards):
        raise ConfigError(f"guards must be a cometsync.Guards, got {guards!r}")


def _check_model_list(value: Any, name: str) -> Tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name} must be a list of model ids, got {value!r}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"{name} must hold non-empty model id strings, got {item!r}")
    return tuple(value)


def _check_deadline(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"deadline must be a positive number of seconds or None, got {value!r}")
    return float(value)


def _check_base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL}, got {value!r}"
        )
    return value.rstrip("/")


# -- a call's arguments ---------------------------------------------------------------------
def _validate_messages(messages: Any) -> None:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, (list, tuple)):
        raise RequestTypeError(
            f"messages must be a list of {{'role': ..., 'content': ...}} dicts, "
            f"got {type(messages).__name__}"
        )
    if not messages:
        raise RequestValidationError("messages must not be empty")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise RequestTypeError(f"messages[{i}] must be a dict, got {type(message).__name__}")
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise RequestValidationError(f"messages[{i}] needs a non-empty string 'role'")
        content = message.get("content", _MISSING)
        if content is _MISSING:
            if role == "assistant" and ("tool_calls" in message or "function_call" in message):
                continue
            raise RequestValidationError(f"messages[{i}] ({role}) needs a 'content' key")
        if content is not None and not isinstance(content, (str, list)):
            raise RequestTypeError(
                f"messages[{i}].content must be a string, a list of parts or None, "
                f"got {type(content).__name__}"
            )


# Client settings an openai-python user may pass to create(); sent as body fields they would
# be silently ignored by the gateway, so they are refused with the way to set them.
_CLIENT_SETTINGS = frozenset(
    {
        "api_key",
        "base_url",
        "catalog_ttl",
        "clock",
        "deadline",
        "default_headers",
        "guards",
        "max_retries",
        "max_workers",
        "on_attempt",
        "price_calls",
        "protections",
        "rate_limit",
        "retry",
        "session",
        "shared_namespace",
        "shared_state",
        "transport",
    }
)


def _refuse_client_settings(params: Mapping[str, Any]) -> None:
    for name in params:
        if name in _CLIENT_SETTINGS:
            raise RequestTypeError(
                f"create() got {name}=, a client setting that would be sent to the gateway as "
                f"a body field; use client.with_options({name}=...) for this call instead"
            )
        if name == "fallback_model":
            raise RequestTypeError("create() got fallback_model=; did you mean fallback_models=?")


_STRICT = json.JSONEncoder(allow_nan=False)  # made once: json.dumps(allow_nan=...) makes one a call


def _check_json(body: Mapping[str, Any]) -> None:
    """The body must be strict JSON (no NaN/Infinity); name the parameter that is not."""
    try:
        _STRICT.encode(body)
    except (TypeError, ValueError):
        for key, value in body.items():
            try:
                json.dumps(value, allow_nan=False)
            except TypeError as exc:
                raise RequestTypeError(f"{key} is not JSON-serialisable: {exc}") from None
            except ValueError as exc:
                raise RequestValidationError(f"{key} is not valid JSON: {exc}") from None
        raise


def _chain(model: Any, fallback: Sequence[str]) -> Tuple[str, ...]:
    if not isinstance(model, str):
        raise RequestTypeError(f"model must be a string, got {type(model).__name__}")
    if not model.strip():
        raise RequestValidationError("model must be a non-empty model id")
    seen: List[str] = []
    for m in (model, *fallback):
        if m not in seen:
            seen.append(m)
    return tuple(seen)


def _check_stream_fields(body: Mapping[str, Any], stream: bool) -> None:
    if not stream and body.get("stream"):
        raise RequestValidationError("to stream, pass stream=True (not in extra_body)")
    if not stream and body.get("stream_options") is not None:
        raise RequestValidationError("stream_options is only allowed with stream=True")


def _refuse_stream(kwargs: Mapping[str, Any], where: str) -> None:
    if kwargs.get("stream"):
        raise RequestValidationError(
            f"stream=True cannot be used with {where}(): read streams with create() "
            "in the thread that consumes them"
        )


def _check_map_item(
    item: Any, signature: inspect.Signature, where: str
) -> Optional[RequestValidationError]:
    """Why ``item`` cannot be ``create()``'s arguments (e.g. no ``model``), or None.

    Checked before a thread runs it, so a bad item fails as a RequestTypeError naming the
    problem and its place, not as a bare TypeError from the call.
    """
    if not isinstance(item, Mapping):
        return RequestTypeError(
            f"{where}: each request must be a dict of create() arguments, got {type(item).__name__}"
        )
    try:
        signature.bind(**item)
    except TypeError as exc:
        return RequestTypeError(f"{where}: not valid create() arguments: {exc}")
    return None
