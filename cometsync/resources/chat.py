"""``client.chat.completions``: create, submit and map chat completions."""

from __future__ import annotations

from concurrent.futures import Future
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    Iterable,
    Iterator,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Union,
    overload,
)

from .._errors import RequestTypeError, RequestValidationError
from .._flow import CallSpec
from .._model import WireModel
from .._policy import ResponseLike
from .._raw import RawResponse, raw_spec
from .._stream import Stream, stream_spec
from .._transport import HTTPRequest
from .._types import Attempt, ChatCompletion, Timeout, TimeoutLike
from .._validate import (
    _chain,
    _check_json,
    _check_model_list,
    _check_stream_fields,
    _refuse_client_settings,
    _refuse_stream,
    _validate_messages,
)
from ._on_pool import map_on_pool, submit_on_pool

if TYPE_CHECKING:
    from .._client import Client

__all__ = ["Chat", "Completions"]


def _parse_completion(response: ResponseLike, model: Optional[str]) -> ChatCompletion:
    return ChatCompletion.from_dict(
        response.json(),
        requested_model=model or "",
        request_id=response.headers.get("x-request-id"),
    )


def _attach(result: ChatCompletion, attempts: Sequence[Attempt]) -> ChatCompletion:
    """``dataclasses.replace(result, attempts=...)`` at a third of its cost (once per call).

    replace() runs ``__init__`` over every field again; a ChatCompletion has no
    ``__post_init__`` (a test pins it), so a copy of its fields is the same object.
    """
    copy = object.__new__(type(result))
    copy.__dict__.update(result.__dict__)
    copy.__dict__["attempts"] = tuple(attempts)
    return copy


class Completions:
    """``client.chat.completions``."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.with_raw_response = CompletionsWithRawResponse(self)

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        fallback_models: Optional[Sequence[str]] = None,
        stream: Literal[False] = False,
        timeout: TimeoutLike = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **params: Any,
    ) -> ChatCompletion: ...

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        fallback_models: Optional[Sequence[str]] = None,
        stream: Literal[True],
        timeout: TimeoutLike = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **params: Any,
    ) -> Stream: ...

    def create(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        fallback_models: Optional[Sequence[str]] = None,
        stream: bool = False,
        timeout: TimeoutLike = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **params: Any,
    ) -> Union[ChatCompletion, Stream]:
        """Create a chat completion, retrying and falling back as the client's policy says.

        Args:
            model: the model to try first.
            messages: the conversation, OpenAI format.
            fallback_models: replaces the client's chain for this call; never sent.
            stream: True returns a ``Stream`` of chunks; retry and fallback apply until its
                first chunk arrives, after which a failure raises ``APIStreamError``.
            timeout: per-attempt timeout for this call.
            extra_headers: headers added to this call's requests.
            extra_body: fields merged into the JSON body as they are.
            **params: every other OpenAI chat parameter, passed through unchanged.

        Raises:
            TypeError, RequestValidationError: the request cannot be valid (nothing sent).
            APIError: the chain failed; the last error, with ``.attempts``.
        """
        result: Union[ChatCompletion, Stream] = self._create(
            False,
            model=model,
            messages=messages,
            fallback_models=fallback_models,
            stream=stream,
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
        model: str,
        messages: Iterable[Mapping[str, Any]],
        fallback_models: Optional[Sequence[str]] = None,
        stream: bool = False,
        timeout: TimeoutLike = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **params: Any,
    ) -> Any:
        """``create``; with ``raw``, its result wrapped in a ``RawResponse``."""
        client = self._client
        _refuse_client_settings(params)
        fallback = (
            client._options.fallback_models
            if fallback_models is None
            else _check_model_list(fallback_models, "fallback_models")
        )
        chain = _chain(model, fallback)
        if isinstance(messages, (list, tuple)):
            # openai-python users append the returned message object itself to the history.
            messages = [m.to_dict() if isinstance(m, WireModel) else m for m in messages]
        _validate_messages(messages)
        if not isinstance(stream, bool):
            raise RequestTypeError(f"stream must be True or False, got {stream!r}")
        body: Dict[str, Any] = {"messages": list(messages), **params}
        if extra_body:
            body.update(extra_body)
        body.pop("model", None)
        _check_stream_fields(body, stream)
        _check_json(body)
        per_call_timeout = None if timeout is None else Timeout.coerce(timeout)
        if stream:
            stream_call = stream_spec(
                client._route("/chat/completions"),
                body,
                clock=client._shared.clock,
                emit=client._on_attempt,
                scrub=client._scrub,
                recover=client._options.stream_recovery,
            )
            headers = {"Accept": "text/event-stream", **(extra_headers or {})}
            opened: Stream = client._call(
                stream_call, chain, timeout=per_call_timeout, extra_headers=headers
            )
            if raw:
                request = HTTPRequest("POST", client._url("/chat/completions"), {}, None, True)
                return RawResponse(opened._state.response, request, opened, opened.attempts)
            return opened
        spec: CallSpec[ChatCompletion] = CallSpec(
            method="POST",
            path="/chat/completions",
            route=client._route("/chat/completions"),
            parse=_parse_completion,
            body=body,
            attach=_attach,
        )
        if raw:
            response = client._call(
                raw_spec(spec, client._url("/chat/completions")),
                chain,
                timeout=per_call_timeout,
                extra_headers=extra_headers,
            )
            response._parsed = client._price(response._parsed, chain)
            return response
        result = client._call(
            spec,
            chain,
            timeout=per_call_timeout,
            extra_headers=extra_headers,
        )
        return client._price(result, chain)

    def submit(self, **create_kwargs: Any) -> Future[ChatCompletion]:
        """Run ``create(**create_kwargs)`` on the client's bounded thread pool.

        Returns:
            A future of the ChatCompletion; every failure of the call, including a request
            that cannot be valid, is raised by ``future.result()``.

        Raises:
            RequestValidationError: ``stream=True`` (a stream belongs to the thread reading it).
            ClientClosedError: the client is closed (a RuntimeError).
        """
        _refuse_stream(create_kwargs, "submit")
        return submit_on_pool(self._client, self.create, self._run, create_kwargs)

    def map(
        self,
        requests: Iterable[Mapping[str, Any]],
        *,
        return_exceptions: bool = False,
        ordered: bool = True,
    ) -> Iterator[Union[ChatCompletion, BaseException]]:
        """Run many ``create`` calls on the thread pool; yield their results as they are ready.

        ``requests`` is read lazily: a new request is read each time one finishes, so every
        worker stays busy while a slow request (a retry's backoff) holds the head, and at most
        ``max(1024, 8 * max_workers)`` requests are held between reading and yielding, so an
        endless generator runs in bounded memory. An item that is not a valid request (not a
        dict, no ``model``, ``stream=True``) fails alone, like an item whose call failed, as a
        RequestValidationError (RequestTypeError) naming the problem and ``requests[i]``.

        Args:
            requests: ``create`` keyword dicts.
            return_exceptions: yield a failed item's exception in its place.
            ordered: True (default) yields in input order; False yields each result as it
                finishes (nothing is held back behind a slow request).

        Raises:
            BaseException: without ``return_exceptions``, the first failure in the order of
                yielding, after cancelling every item not yet started. On KeyboardInterrupt,
                or when you stop iterating, the items not yet started are cancelled.
        """
        return map_on_pool(
            self._client,
            self.create,
            self._run,
            requests,
            return_exceptions=return_exceptions,
            ordered=ordered,
            refuse=_stream_refusal,
        )

    def _run(self, **kwargs: Any) -> ChatCompletion:
        result: ChatCompletion = self.create(**kwargs)  # stream=True was refused before
        return result


def _stream_refusal(item: Mapping[str, Any]) -> Optional[BaseException]:
    """A ``map`` item asking for a stream fails alone (a stream belongs to its reader)."""
    try:
        _refuse_stream(item, "map")
    except RequestValidationError as exc:
        return exc
    return None


class CompletionsWithRawResponse:
    """``client.chat.completions.with_raw_response``: ``create`` returning ``RawResponse``.

    Retries and fallback run exactly as for ``create``; ``.parse()`` gives its result (a
    ``Stream`` with ``stream=True``, whose headers are those of the response it reads).
    """

    def __init__(self, completions: Completions) -> None:
        self._completions = completions

    def create(self, **create_kwargs: Any) -> RawResponse[Any]:
        """``chat.completions.create(...)``, keeping the HTTP response."""
        result: RawResponse[Any] = self._completions._create(True, **create_kwargs)
        return result


class Chat:
    """``client.chat``."""

    def __init__(self, client: Client) -> None:
        self.completions = Completions(client)
