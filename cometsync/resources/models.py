"""``client.models``: the models the gateway serves (list, retrieve, with_raw_response)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional
from urllib.parse import quote

from .._embedding_types import SyncPage
from .._errors import RequestTypeError, RequestValidationError
from .._flow import CallSpec
from .._policy import ResponseLike
from .._raw import RawResponse, raw_spec
from .._types import Model

if TYPE_CHECKING:
    from .._client import Client

__all__ = ["Models", "ModelsWithRawResponse"]


def _parse_models(response: ResponseLike, model: Optional[str]) -> SyncPage[Model]:
    data = response.json()
    entries = data.get("data") if isinstance(data, Mapping) else None
    if not isinstance(entries, list):
        raise ValueError("the body has no 'data' list")
    kind = data.get("object") if isinstance(data.get("object"), str) else "list"
    return SyncPage([Model.from_dict(entry) for entry in entries], object=kind)


def _parse_model(response: ResponseLike, model: Optional[str]) -> Model:
    return Model.from_dict(response.json(), request_id=response.headers.get("x-request-id"))


def _check_model_id(model: Any) -> str:
    if not isinstance(model, str):
        raise RequestTypeError(f"model must be a model id string, got {type(model).__name__}")
    if not model.strip():
        raise RequestValidationError("model must be a non-empty model id")
    return model


class Models:
    """``client.models``."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.with_raw_response = ModelsWithRawResponse(self)

    def list(self) -> SyncPage[Model]:
        """The models the gateway serves (``GET /v1/models``), retried like any call.

        A list of ``Model`` that also has openai's page attributes (``.data``, ``.object``).
        """
        result: SyncPage[Model] = self._client._call(self._list_spec(), [None])
        return result

    def retrieve(self, model: str) -> Model:
        """One model (``GET /v1/models/{model}``), retried like any call.

        Raises:
            NotFoundError: the gateway does not serve it.
        """
        result: Model = self._client._call(self._retrieve_spec(model), [None])
        return result

    def _list_spec(self) -> CallSpec[SyncPage[Model]]:
        return CallSpec(
            method="GET", path="/models", route=self._client._route("/models"), parse=_parse_models
        )

    def _retrieve_spec(self, model: str) -> CallSpec[Model]:
        # The id is one path segment: '/' and '?' in it must not change the route.
        path = "/models/" + quote(_check_model_id(model), safe="")
        return CallSpec(
            method="GET", path=path, route=self._client._route(path), parse=_parse_model
        )


class ModelsWithRawResponse:
    """``client.models.with_raw_response``: the same calls, returning ``RawResponse``."""

    def __init__(self, models: Models) -> None:
        self._models = models

    def list(self) -> RawResponse[SyncPage[Model]]:
        """``models.list()``, keeping the HTTP response."""
        spec = self._models._list_spec()
        client = self._models._client
        result: RawResponse[SyncPage[Model]] = client._call(
            raw_spec(spec, client._url(spec.path)), [None]
        )
        return result

    def retrieve(self, model: str) -> RawResponse[Model]:
        """``models.retrieve(model)``, keeping the HTTP response."""
        spec = self._models._retrieve_spec(model)
        client = self._models._client
        result: RawResponse[Model] = client._call(raw_spec(spec, client._url(spec.path)), [None])
        return result
