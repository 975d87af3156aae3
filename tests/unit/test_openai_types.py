"""Response objects dump, compare and read like openai-python's models."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any, Dict

import pytest

from cometsync import Attempt, ChatCompletion, ChatCompletionChunk, Model
from cometsync import _schemas as schemas
from cometsync._model import Schema

WIRE: Dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "h\u00e9",
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": 1}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
            "logprobs": {
                "content": [{"token": "a", "bytes": [97], "logprob": -0.1, "top_logprobs": []}]
            },
        }
    ],
    "usage": {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 3,
        "completion_tokens_details": {"reasoning_tokens": 7},
    },
    "x_provider": {"region": "eu"},
}

CHUNK: Dict[str, Any] = {
    "id": "c",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "delta": {"content": "x", "tool_calls": [{"index": 0, "function": {"arguments": "{"}}]},
            "finish_reason": None,
        }
    ],
}

DUMP_OPTIONS = [
    {},
    {"exclude_none": True},
    {"exclude_unset": True},
    {"exclude_defaults": True},
    {"exclude": {"usage"}},
    {"include": {"id", "model"}},
    {"include": {"choices": {"__all__": {"message": {"content"}}}}},
    {"exclude": {"choices": {0: {"logprobs"}}}},
]


def _completion(**kwargs: Any) -> ChatCompletion:
    return ChatCompletion.from_dict(copy.deepcopy(WIRE), **kwargs)


@pytest.mark.parametrize("options", DUMP_OPTIONS)
def test_model_dump_equals_openai_for_the_same_wire_json(options: Dict[str, Any]) -> None:
    """model_dump() gives the dict openai's model_dump() gives, option for option."""
    openai_chat = pytest.importorskip("openai.types.chat")
    theirs = openai_chat.ChatCompletion.model_validate(copy.deepcopy(WIRE))
    assert _completion().model_dump(**options) == theirs.model_dump(**options)
    chunk_theirs = openai_chat.ChatCompletionChunk.model_validate(copy.deepcopy(CHUNK))
    chunk_ours = ChatCompletionChunk.from_dict(copy.deepcopy(CHUNK))
    assert chunk_ours.model_dump(**options) == chunk_theirs.model_dump(**options)


def test_model_dump_json_and_to_json_match_openai_text() -> None:
    """model_dump_json is pydantic's compact JSON (indent on request); to_json is openai's."""
    openai_chat = pytest.importorskip("openai.types.chat")
    theirs = openai_chat.ChatCompletion.model_validate(copy.deepcopy(WIRE))
    ours = _completion()
    assert ours.model_dump_json() == theirs.model_dump_json()
    assert ours.model_dump_json(indent=2) == theirs.model_dump_json(indent=2)
    assert ours.model_dump_json(exclude_none=True) == theirs.model_dump_json(exclude_none=True)
    assert ours.to_json() == theirs.to_json()
    assert ours.to_dict() == theirs.to_dict()
    for options in ({"exclude_unset": False}, {"exclude_none": True}, {"exclude_defaults": True}):
        assert ours.to_dict(**options) == theirs.to_dict(**options)


def test_model_list_entry_dumps_like_openai() -> None:
    """A models-list entry dumps as openai's Model does, unknown fields kept."""
    openai_types = pytest.importorskip("openai.types")
    wire = {"id": "gpt-4o-mini", "created": 5, "object": "model", "owned_by": "openai", "x": [1]}
    assert (
        Model.from_dict(wire).model_dump() == openai_types.Model.model_validate(wire).model_dump()
    )


def test_cometsync_attributes_never_leak_into_the_dump() -> None:
    """attempts, cost and _request_id are not wire fields: the dump is the server's JSON only."""
    attempt = Attempt("gpt-4o-mini", "/v1/chat/completions", 200, 0.1, 1)
    result = dataclasses.replace(_completion(attempts=(attempt,), request_id="req_1"), cost=0.5)
    dumped = result.model_dump()
    assert {"attempts", "cost", "_request_id", "request_id"}.isdisjoint(dumped)
    assert "attempts" not in result.model_dump_json() and "req_1" not in result.model_dump_json()
    assert result._request_id == "req_1" and result.cost == 0.5


def test_unknown_and_declared_fields_read_as_attributes() -> None:
    """Nested wire objects read by attribute; declared-but-absent fields are None, as in openai."""
    result = _completion()
    choice = result.choices[0]
    assert result.usage.completion_tokens_details.reasoning_tokens == 7
    assert result.usage.prompt_tokens_details is None
    assert choice.message.refusal is None and choice.message.audio is None
    assert choice.message.tool_calls is not None
    assert choice.message.tool_calls[0].function.arguments == '{"q": 1}'
    assert choice.logprobs.content[0].token == "a"
    assert result.service_tier is None
    assert result.x_provider == {"region": "eu"} and isinstance(result.x_provider, dict)
    with pytest.raises(AttributeError, match="no field 'nope'"):
        result.nope  # noqa: B018
    assert not hasattr(result.usage, "_request_id_missing")


def test_choices_are_lists_and_equality_is_the_wire_content() -> None:
    """choices is a list; equal wire JSON compares equal whatever the attempts; repr shows it."""
    one = _completion(attempts=(Attempt("a", "/r", 200, 0.1, 1),))
    two = _completion()
    assert isinstance(one.choices, list) and isinstance(
        ChatCompletionChunk.from_dict(CHUNK).choices, list
    )
    assert one == two
    assert not one != two  # noqa: SIM202  # __ne__ is defined too
    changed = copy.deepcopy(WIRE)
    changed["choices"][0]["message"]["content"] = "other"
    assert one != ChatCompletion.from_dict(changed)
    assert one != one.to_dict()  # a dict is not a ChatCompletion
    sent_null = copy.deepcopy(WIRE)
    sent_null["choices"][0]["message"]["audio"] = None
    assert ChatCompletion.from_dict(sent_null) == two  # as pydantic: absent equals null
    shown = repr(one)
    assert shown.startswith("ChatCompletion(id='chatcmpl-1', choices=[Choice(")
    assert "content='h\u00e9'" in shown and "arguments='{\"q\": 1}'" in shown
    assert "attempts" not in shown


def test_tool_calls_still_read_as_dicts() -> None:
    """Tool calls read by key and compare equal to their JSON, as when they were plain dicts."""
    call = _completion().choices[0].message.tool_calls[0]  # type: ignore[index]
    wire_call = WIRE["choices"][0]["message"]["tool_calls"][0]
    assert call == wire_call and call["function"]["name"] == "lookup"
    assert call.get("missing", 3) == 3 and "id" in call and dict(call) == wire_call
    assert call.model_dump(exclude_none=True) == wire_call
    with pytest.raises(AttributeError, match="read-only"):
        call.id = "x"


def test_dump_options_that_cannot_apply_are_refused_clearly() -> None:
    """An unknown mode is named in the error, not silently ignored."""
    with pytest.raises(ValueError, match="mode must be"):
        _completion().model_dump(mode="xml")


def test_dump_json_is_strict_utf8_json() -> None:
    """model_dump_json round-trips through json.loads to model_dump."""
    result = _completion()
    assert json.loads(result.model_dump_json()) == result.model_dump()


@pytest.mark.parametrize(
    ("ours", "path"),
    [
        (schemas.CHAT_COMPLETION, "openai.types.chat:ChatCompletion"),
        (schemas.CHOICE, "openai.types.chat.chat_completion:Choice"),
        (schemas.MESSAGE, "openai.types.chat:ChatCompletionMessage"),
        (schemas.COMPLETION_USAGE, "openai.types:CompletionUsage"),
        (schemas.CHAT_COMPLETION_CHUNK, "openai.types.chat:ChatCompletionChunk"),
        (schemas.CHUNK_CHOICE, "openai.types.chat.chat_completion_chunk:Choice"),
        (schemas.DELTA, "openai.types.chat.chat_completion_chunk:ChoiceDelta"),
        (schemas.DELTA_TOOL_CALL, "openai.types.chat.chat_completion_chunk:ChoiceDeltaToolCall"),
        (schemas.MODEL, "openai.types:Model"),
        (schemas.EMBEDDING_RESPONSE, "openai.types:CreateEmbeddingResponse"),
        (schemas.EMBEDDING, "openai.types:Embedding"),
    ],
)
def test_schemas_follow_the_installed_openai(ours: Schema, path: str) -> None:
    """Our field lists are openai's, in its order (a newer openai shows up here first)."""
    module_name, _, name = path.partition(":")
    module = pytest.importorskip(module_name)
    assert ours.fields == tuple(getattr(module, name).model_fields)


def test_responses_survive_pickle_and_deepcopy() -> None:
    """A completion pickles (process pools) and deep-copies to an equal, readable object."""
    import pickle

    result = _completion(request_id="req_3")
    for copied in (pickle.loads(pickle.dumps(result)), copy.deepcopy(result)):
        assert copied == result and copied._request_id == "req_3"
        assert copied.choices[0].message.tool_calls[0].function.name == "lookup"  # type: ignore[index]
