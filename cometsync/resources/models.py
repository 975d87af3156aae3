"""``client.models``: the models the gateway serves."""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Mapping, Optional

from .._flow import CallSpec
from .._policy import ResponseLike
from .._types import Model

if TYPE_CHECKING:
    from .._client import Client

__all__ = ["Models"]


def _parse_models(response: ResponseLike, model: Optional[str]) -> List[Model]:
    data = response.json()
    entries = data.get("data") if isinstance(data, Mapping) else None
    if not isinstance(entries, list):
        raise ValueError("the body has no 'data' list")
    return [Model.from_dict(entry) for entry in entries]


class Models:
    """``client.models``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> List[Model]:
        """The models the gateway serves (``GET /v1/models``), retried like any call."""
        spec: CallSpec[List[Model]] = CallSpec(
            method="GET",
            path="/models",
            route=self._client._route("/models"),
            parse=_parse_models,
        )
        return self._client._call(spec, [None])
