"""cometsync: a resilient, thread-safe, synchronous client for CometAPI.

Retries with capped, jittered backoff that honours Retry-After; an ordered model-fallback
chain that never hides a malformed request; per-attempt history and metrics.
"""

from ._backoff import (
    Backoff,
    Constant,
    DecorrelatedJitter,
    EqualJitter,
    Exponential,
    FullJitter,
    ScaledJitter,
)
from ._catalog import ModelInfo, Pricing
from ._client import DEFAULT_BASE_URL, Client, __version__
from ._clock import Clock, SystemClock
from ._embedding_types import CreateEmbeddingResponse, Embedding, EmbeddingUsage, SyncPage
from ._errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APIStreamError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    CometError,
    ConfigError,
    ConflictError,
    InternalServerError,
    ModelCooldownError,
    NotFoundError,
    PermissionDeniedError,
    PoolTimeoutError,
    RateLimitError,
    RequestTypeError,
    RequestValidationError,
    UnprocessableEntityError,
)
from ._headers import parse_retry_after
from ._metrics import MetricsRecorder
from ._policy import RetryPolicy
from ._pricing import CostEstimate
from ._raw import RawResponse
from ._stream import Stream, accumulate
from ._transport import HTTPRequest, RequestsTransport, Response, Transport
from ._transport_urllib3 import Urllib3Transport
from ._types import (
    Attempt,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    Model,
    Timeout,
    Usage,
)
from .guards import (
    AdaptiveLimiter,
    Cooldowns,
    Guards,
    Protections,
    ProtectiveGuards,
    RateLimit,
    RetryBudget,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APIStreamError",
    "APITimeoutError",
    "AdaptiveLimiter",
    "Attempt",
    "AuthenticationError",
    "Backoff",
    "BadRequestError",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "Choice",
    "ChoiceDelta",
    "ChunkChoice",
    "Client",
    "ClientClosedError",
    "Clock",
    "CometError",
    "ConfigError",
    "ConflictError",
    "Constant",
    "Cooldowns",
    "CostEstimate",
    "CreateEmbeddingResponse",
    "DEFAULT_BASE_URL",
    "DecorrelatedJitter",
    "Embedding",
    "EmbeddingUsage",
    "EqualJitter",
    "Exponential",
    "FullJitter",
    "Guards",
    "HTTPRequest",
    "InternalServerError",
    "MetricsRecorder",
    "Model",
    "ModelCooldownError",
    "ModelInfo",
    "NotFoundError",
    "PermissionDeniedError",
    "PoolTimeoutError",
    "Pricing",
    "Protections",
    "ProtectiveGuards",
    "RateLimit",
    "RateLimitError",
    "RawResponse",
    "RequestTypeError",
    "RequestValidationError",
    "RequestsTransport",
    "Response",
    "RetryBudget",
    "RetryPolicy",
    "ScaledJitter",
    "Stream",
    "SyncPage",
    "SystemClock",
    "Timeout",
    "Transport",
    "UnprocessableEntityError",
    "Urllib3Transport",
    "Usage",
    "__version__",
    "accumulate",
    "parse_retry_after",
]
