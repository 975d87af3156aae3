"""``client.embeddings``: create, submit, map and with_raw_response for ``POST /embeddings``.

Calls run through the same flow as chat (retries, deadline, guards, attempt records, cost
from the catalog's ``input`` price). Fallback is different on purpose: vectors of two models
are not comparable, so an embedding call falls back only to the ``fallback_models`` given to
that call, never to the client's chat fallback chain.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Union,
)

from .._embedding_types import CreateEmbeddingResponse
from .._errors import RequestTypeError, RequestValidationError
from .._flow import CallSpec
from .._policy import ResponseLike
from .._raw import RawResponse, raw_spec
from .._types import Attempt, Timeout, TimeoutLike
from .._validate import (
    _chain,
    _check_json,
    _check_model_list,
    _refuse_client_settings,
)
from ._on_pool import map_on_pool, submit_on_pool

if TYPE_CHECKING:
    from .._client import Client

__all__ = ["MAX_INPUTS", "Embeddings", "check_input"]

MAX_INPUTS = 2048  # OpenAI's limit on items per request
EmbeddingInput = Union[str, Sequence[str], Sequence[int], Sequence[Sequence[int]]]


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_input(value: Any) -> Union[str, List[Any]]:
    """The ``input`` to send (tuples become lists), or why no server could accept it.

    Raises:
        RequestTypeError: not a string, strings, token ids or lists of token ids.
        RequestValidationError: empty, an empty item, or more than 2048 items.
    """
    shape = "input must be a string, a list of strings, a list of token ids or a list of lists"
    if isinstance(value, str):
        if not value:
            raise RequestValidationError("input must not be an empty string")
        return value
    if isinstance(value, (bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise RequestTypeError(f"{shape} of token ids, got {type(value).__name__}")
    if not value:
        raise RequestValidationError("input must not be an empty list")
    if all(_is_token(t) for t in value):
        return list(value)
    items: List[Any] = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            if not item:
                raise RequestValidationError(f"input[{i}] must not be an empty string")
            items.append(item)
        elif isinstance(item, (list, tuple)) and all(_is_token(t) for t in item):
            if not item:
                raise RequestValidationError(f"input[{i}] must not be an empty token list")
            items.append(list(item))
        else:
            raise RequestTypeError(
                f"input[{i}] must be a string or a list of token ids (ints >= 0), "
                f"got {str(item)[:40]!r}"
            )
    if len(items) > MAX_INPUTS:
        raise RequestValidationError(
            f"input holds {len(items)} items; the API takes at most {MAX_INPUTS} per request "
            "(split it, or use embeddings.map)"
        )
    return items


def _check_options(dimensions: Any, encoding_format: Any) -> None:
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
    ):
        raise RequestValidationError(f"dimensions must be an int >= 1, got {dimensions!r}")
    if encoding_format is not None and encoding_format not in ("float", "base64"):
        raise RequestValidationError(
            f"encoding_format must be 'float' or 'base64', got {encoding_format!r}"
        )


def _parse(response: ResponseLike, model: Optional[str]) -> CreateEmbeddingResponse:
    return CreateEmbeddingResponse.from_dict(
        response.json(),
        requested_model=model or "",
        request_id=response.headers.get("x-request-id"),
    )


def _attach(
    result: CreateEmbeddingResponse, attempts: Sequence[Attempt]
) -> CreateEmbeddingResponse:
    return dataclasses.replace(result, attempts=tuple(attempts))


class Embeddings:
    """``client.embeddings``."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.with_raw_response = EmbeddingsWithRawResponse(self)

    def create(
        self,
        *,
        input: EmbeddingInput,
        model: str,
        dimensions: Optional[int] = None,
        encoding_format: Optional[str] = None,
        user: Optional[str] = None,
        fallback_models: Optional[Sequence[str]] = None,
        timeout: TimeoutLike = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **params: Any,
    ) -> CreateEmbeddingResponse:
        """Embed ``input``, retrying as the client's policy says.

        Args:
            input: a string, strings, token ids, or lists of token ids (at most 2048 items).
            model: the embedding model.
            dimensions: the vector size, for models that can shorten their vectors.
            encoding_format: ``"float"`` or ``"base64"`` on the wire; ``data[i].embedding``
                is floats either way.
            user: passed through, as OpenAI's.
            fallback_models: embedding models tried after ``model``. Only these: the
                client's ``fallback_models`` are chat models and never apply here, since
                vectors of different models cannot be compared.
            timeout: per-attempt timeout for this call.
            extra_headers: headers added to this call's requests.
            extra_body: fields merged into the JSON body as they are.
            **params: any other body field, passed through unchanged.

        Raises:
            TypeError, RequestValidationError: the request cannot be valid (nothing sent).
            APIError: every model failed; the last error, with ``.attempts``.
        """
        result: CreateEmbeddingResponse = self._create(
            False,
            input=input,
            model=model,
            dimensions=dimensions,
            encoding_format=encoding_format,
            user=user,
            fallback_models=fallback_models,
            timeout=timeout,
            extra_headers=extra_headers,
            extra_body=extra_body,
            **params,
        )
        return result

    def _create(
        self,
        raw: bool,
        *,
        input: Any,
        model: str,
        dimensions: Optional[int] = None,
        encoding_format: Optional[str] = None,
        user: Optional[str] = None,
        fallback_models: Optional[Sequence[str]] = None,
        timeout: TimeoutLike = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **params: Any,
    ) -> Any:
        client = self._client
        _refuse_client_settings(params)
        fallback = (
            () if fallback_models is None else _check_model_list(fallback_models, "fallback_models")
        )
        chain = _chain(model, fallback)
        _check_options(dimensions, encoding_format)
        body: Dict[str, Any] = {"input": check_input(input), **params}
        for name, value in (
            ("dimensions", dimensions),
            ("encoding_format", encoding_format),
            ("user", user),
        ):
            if value is not None:
                body[name] = value
        if extra_body:
            body.update(extra_body)
        body.pop("model", None)
        _check_json(body)
        spec: CallSpec[CreateEmbeddingResponse] = CallSpec(
            method="POST",
            path="/embeddings",
            route=client._route("/embeddings"),
            parse=_parse,
            body=body,
            attach=_attach,
        )
        per_call_timeout = None if timeout is None else Timeout.coerce(timeout)
        if raw:
            response = client._call(
                raw_spec(spec, client._url("/embeddings")),
                chain,
                timeout=per_call_timeout,
                extra_headers=extra_headers,
            )
            response._parsed = client._price(response._parsed, chain)
            return response
        result = client._call(spec, chain, timeout=per_call_timeout, extra_headers=extra_headers)
        return client._price(result, chain)

    def submit(self, **create_kwargs: Any) -> Future[CreateEmbeddingResponse]:
        """Run ``create(**create_kwargs)`` on the client's bounded thread pool.

        Raises:
            ClientClosedError: the client is closed (a RuntimeError).
        """
        return submit_on_pool(self._client, self.create, self._run, create_kwargs)

    def map(
        self,
        requests: Iterable[Mapping[str, Any]],
        *,
        return_exceptions: bool = False,
        ordered: bool = True,
    ) -> Iterator[Union[CreateEmbeddingResponse, BaseException]]:
        """Run many ``create`` calls on the thread pool; yield their results in input order.

        As ``chat.completions.map``: lazy, no worker idles behind a slow request, at most
        ``max(1024, 8 * max_workers)`` requests held; ``ordered=False`` yields them as they
        finish; an item that is not a dict fails alone.
        """
        return map_on_pool(
            self._client,
            self.create,
            self._run,
            requests,
            return_exceptions=return_exceptions,
            ordered=ordered,
        )

    def _run(self, **kwargs: Any) -> CreateEmbeddingResponse:
        result: CreateEmbeddingResponse = self.create(**kwargs)
        return result


class EmbeddingsWithRawResponse:
    """``client.embeddings.with_raw_response``: the same calls, returning ``RawResponse``."""

    def __init__(self, embeddings: Embeddings) -> None:
        self._embeddings = embeddings

    def create(self, **create_kwargs: Any) -> RawResponse[CreateEmbeddingResponse]:
        """``embeddings.create(...)``, keeping the HTTP response (``.headers``, ``.parse()``)."""
        result: RawResponse[CreateEmbeddingResponse] = self._embeddings._create(
            True, **create_kwargs
        )
        return result
