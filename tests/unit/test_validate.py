"""Requests and settings that cannot work are refused before anything is sent (``_validate``)."""

from __future__ import annotations

from typing import Any, Dict

import pytest

import cometsync
from cometsync.testing import ScriptedTransport

from .helpers import KEY, MSGS, create, make, ok

# -- requests that cannot be valid -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"model": ""}, ValueError, "model"),
        ({"model": None}, TypeError, "model"),
        ({"messages": "hi"}, TypeError, "messages"),
        ({"messages": []}, ValueError, "empty"),
        ({"messages": [{"content": "x"}]}, ValueError, "role"),
        ({"messages": [{"role": "user"}]}, ValueError, "content"),
        ({"messages": ["hi"]}, TypeError, r"messages\[0\]"),
        ({"messages": [{"role": "user", "content": 3}]}, TypeError, "content"),
        ({"temperature": object()}, TypeError, "JSON"),
        ({"fallback_models": "m2"}, ValueError, "fallback_models"),
    ],
)
def test_invalid_requests_fail_before_any_traffic(
    kwargs: Dict[str, Any], exc: type, match: str
) -> None:
    """A request that cannot be valid raises ValueError/TypeError and sends nothing."""
    client, transport, _ = make([])
    with pytest.raises(exc, match=match):
        create(client, **kwargs)
    assert transport.requests == []


def test_assistant_tool_call_messages_without_content_are_valid() -> None:
    """An assistant message with tool_calls may omit content (OpenAI allows it)."""
    client, transport, _ = make([ok()])
    tool_turn = {"role": "assistant", "tool_calls": [{"id": "t", "type": "function"}]}
    create(
        client, messages=[*MSGS, tool_turn, {"role": "tool", "content": "42", "tool_call_id": "t"}]
    )
    assert len(transport.requests) == 1


# -- client settings -----------------------------------------------------------------------


def test_missing_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No api_key and no COMETAPI_KEY: a ConfigError that says how to fix it."""
    monkeypatch.delenv("COMETAPI_KEY", raising=False)
    with pytest.raises(cometsync.ConfigError, match="COMETAPI_KEY"):
        cometsync.Client()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "api.cometapi.com/v1"},
        {"max_workers": 0},
        {"deadline": -1},
        {"timeout": "5"},
        {"timeout": 0},
        {"retry": 3},
        {"fallback_models": "m2"},
        {"fallback_models": ["ok", ""]},
        {"on_attempt": 5},
    ],
)
def test_bad_settings_are_config_errors(kwargs: Dict[str, Any]) -> None:
    """Each impossible setting is refused at construction with a ConfigError."""
    with pytest.raises(cometsync.ConfigError):
        cometsync.Client(api_key=KEY, **kwargs)


def test_a_non_string_key_is_named_as_such() -> None:
    """api_key=123 says the key must be a string, not that there is no key."""
    with pytest.raises(cometsync.ConfigError, match="must be a string"):
        cometsync.Client(api_key=123)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["sk-abc\nDEF", "sk-abc\tDEF", "sk-ab c", "sk-é"])
def test_a_key_with_control_or_odd_characters_is_refused_without_echoing_it(bad: str) -> None:
    """Such a key would be quoted by header errors; it is refused and never shown."""
    with pytest.raises(cometsync.ConfigError) as info:
        cometsync.Client(api_key=bad, transport=ScriptedTransport([]))
    assert bad.strip() not in str(info.value) and "abc" not in str(info.value)


# -- create() arguments that belong to the client --------------------------------------------


@pytest.mark.parametrize("name", ["deadline", "max_retries", "retry", "on_attempt", "api_key"])
def test_client_settings_passed_to_create_are_refused_not_sent(name: str) -> None:
    """A client setting given to create() would be a silent body field; it is refused, named."""
    client, transport, _ = make([])
    with pytest.raises(cometsync.RequestValidationError, match=f"with_options\\({name}="):
        create(client, **{name: 1})
    assert transport.requests == []


def test_fallback_model_typo_is_caught() -> None:
    """fallback_model= (singular) is a typo for fallback_models=, not a body field."""
    client, transport, _ = make([])
    with pytest.raises(TypeError, match="fallback_models"):
        create(client, fallback_model="m2")
    assert transport.requests == []


def test_every_invalid_request_is_a_comet_error_and_keeps_its_builtin() -> None:
    """Wrong types are RequestTypeError: a CometError, a RequestValidationError and a TypeError."""
    client, _, _ = make([])
    for bad in ({"messages": "hi"}, {"model": None}, {"temperature": object()}):
        with pytest.raises(cometsync.RequestTypeError) as info:
            create(client, **bad)
        assert isinstance(info.value, TypeError)
        assert isinstance(info.value, cometsync.CometError)


def test_nan_parameters_are_refused_before_sending() -> None:
    """NaN is not JSON; it would reach the gateway as a non-standard token. The error names it."""
    client, transport, _ = make([])
    with pytest.raises(cometsync.RequestValidationError, match="temperature"):
        create(client, temperature=float("nan"))
    assert transport.requests == []
