"""The fields openai-python's models declare, in their order, for ``model_dump()`` parity.

Read from openai-python's ``types/`` (a test compares them with the installed openai when
there is one). A field added by a newer openai is still dumped: as an unknown field when the
server sends it, just not as None when it does not.
"""

from __future__ import annotations

from ._model import Schema

__all__ = [
    "CHAT_COMPLETION",
    "CHAT_COMPLETION_CHUNK",
    "CHOICE",
    "CHUNK_CHOICE",
    "COMPLETION_USAGE",
    "DELTA",
    "DELTA_TOOL_CALL",
    "EMBEDDING",
    "EMBEDDING_RESPONSE",
    "EMBEDDING_USAGE",
    "MESSAGE",
    "MODEL",
    "TOOL_CALL",
]

FUNCTION = Schema("Function", ("arguments", "name"))
TOOL_CALL = Schema(
    "ChatCompletionMessageToolCall", ("id", "function", "type"), {"function": FUNCTION}
)
FUNCTION_CALL = Schema("FunctionCall", ("arguments", "name"))
TOP_LOGPROB = Schema("TopLogprob", ("token", "bytes", "logprob"))
TOKEN_LOGPROB = Schema(
    "ChatCompletionTokenLogprob",
    ("token", "bytes", "logprob", "top_logprobs"),
    {"top_logprobs": TOP_LOGPROB},
)
LOGPROBS = Schema(
    "ChoiceLogprobs", ("content", "refusal"), {"content": TOKEN_LOGPROB, "refusal": TOKEN_LOGPROB}
)
MESSAGE = Schema(
    "ChatCompletionMessage",
    ("content", "refusal", "role", "annotations", "audio", "function_call", "tool_calls"),
    {"tool_calls": TOOL_CALL, "function_call": FUNCTION_CALL},
)
CHOICE = Schema(
    "Choice",
    ("finish_reason", "index", "logprobs", "message"),
    {"message": MESSAGE, "logprobs": LOGPROBS},
)
COMPLETION_TOKENS_DETAILS = Schema(
    "CompletionTokensDetails",
    (
        "accepted_prediction_tokens",
        "audio_tokens",
        "reasoning_tokens",
        "rejected_prediction_tokens",
        "text_tokens",
    ),
)
PROMPT_TOKENS_DETAILS = Schema(
    "PromptTokensDetails",
    ("audio_tokens", "cache_write_tokens", "cached_tokens", "image_tokens", "text_tokens"),
)
COMPLETION_USAGE = Schema(
    "CompletionUsage",
    (
        "completion_tokens",
        "prompt_tokens",
        "total_tokens",
        "completion_tokens_details",
        "prompt_tokens_details",
    ),
    {
        "completion_tokens_details": COMPLETION_TOKENS_DETAILS,
        "prompt_tokens_details": PROMPT_TOKENS_DETAILS,
    },
)
CHAT_COMPLETION = Schema(
    "ChatCompletion",
    (
        "id",
        "choices",
        "created",
        "model",
        "object",
        "metadata",
        "moderation",
        "service_tier",
        "system_fingerprint",
        "usage",
    ),
    {"choices": CHOICE, "usage": COMPLETION_USAGE},
)

DELTA_FUNCTION = Schema("ChoiceDeltaToolCallFunction", ("arguments", "name"))
DELTA_TOOL_CALL = Schema(
    "ChoiceDeltaToolCall", ("index", "id", "function", "type"), {"function": DELTA_FUNCTION}
)
DELTA = Schema(
    "ChoiceDelta",
    ("audio", "content", "function_call", "refusal", "role", "tool_calls"),
    {"tool_calls": DELTA_TOOL_CALL, "function_call": FUNCTION_CALL},
)
CHUNK_CHOICE = Schema(
    "Choice",
    ("delta", "index", "finish_reason", "logprobs"),
    {"delta": DELTA, "logprobs": LOGPROBS},
)
CHAT_COMPLETION_CHUNK = Schema(
    "ChatCompletionChunk",
    (
        "id",
        "choices",
        "created",
        "model",
        "object",
        "moderation",
        "obfuscation",
        "service_tier",
        "system_fingerprint",
        "usage",
    ),
    {"choices": CHUNK_CHOICE, "usage": COMPLETION_USAGE},
)

MODEL = Schema("Model", ("id", "created", "object", "owned_by", "shutdown_date"))

EMBEDDING = Schema("Embedding", ("embedding", "index", "object"))
EMBEDDING_USAGE = Schema("Usage", ("prompt_tokens", "total_tokens"))
EMBEDDING_RESPONSE = Schema(
    "CreateEmbeddingResponse",
    ("data", "model", "object", "usage"),
    {"data": EMBEDDING, "usage": EMBEDDING_USAGE},
)
