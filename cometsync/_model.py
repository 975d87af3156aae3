"""openai-python's dump methods for wire objects, without pydantic.

Response objects keep the server's JSON (``_raw``). A ``Schema`` names the fields openai's
pydantic model of the same object declares, in its order, so ``model_dump()`` gives the dict
openai's ``model_dump()`` gives: declared fields (None when the server left them out), then
every unknown field the server sent. Unknown fields and declared-but-absent ones are readable
as attributes, declared nested objects as ``WireObject``
(``usage.completion_tokens_details.reasoning_tokens``).
"""

from __future__ import annotations

import copy
import json
from typing import Any, ClassVar, Dict, Iterator, Mapping, Optional, Tuple, Union

__all__ = ["Schema", "WireModel", "WireObject", "wrap"]

IncEx = Union[Mapping[Any, Any], "set[Any]", "frozenset[Any]", None]


class Schema:
    """The fields openai declares for one object, in order, and the schemas of its children."""

    __slots__ = ("children", "fields", "name")

    def __init__(
        self, name: str, fields: Tuple[str, ...], children: Optional[Dict[str, Schema]] = None
    ) -> None:
        self.name = name
        self.fields = fields
        self.children: Dict[str, Schema] = children or {}

    def __repr__(self) -> str:
        return f"Schema({self.name!r})"


ANY = Schema("WireObject", ())


def _sub(spec: Any, key: Any) -> Any:
    """The part of an include/exclude spec that applies below ``key`` (True: the whole)."""
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        if key in spec:
            value = spec[key]
        elif "__all__" in spec:
            value = spec["__all__"]
        else:
            return None
        return True if value is True or value is Ellipsis else value
    return True if key in spec else None


class _Opts:
    """The model_dump options that shape the output."""

    __slots__ = ("exclude_defaults", "exclude_none", "exclude_unset")

    def __init__(self, exclude_unset: bool, exclude_none: bool, exclude_defaults: bool) -> None:
        self.exclude_unset = exclude_unset
        self.exclude_none = exclude_none
        self.exclude_defaults = exclude_defaults


def dump(schema: Schema, value: Any, opts: _Opts, include: Any = None, exclude: Any = None) -> Any:
    """``value`` (decoded JSON) as openai's model_dump would give it under ``schema``."""
    if isinstance(value, list):
        out_list = []
        for i, item in enumerate(value):
            if include is not None and include is not True and _sub(include, i) is None:
                continue
            sub_ex = _sub(exclude, i) if exclude is not None else None
            if sub_ex is True:
                continue
            inc = None if include is None or include is True else _sub(include, i)
            out_list.append(dump(schema, item, opts, inc, sub_ex))
        return out_list
    if not isinstance(value, Mapping):
        return copy.deepcopy(value)
    # Declared fields first, in openai's order, then unknown ones in the server's order.
    if opts.exclude_unset or opts.exclude_defaults:
        keys = [k for k in schema.fields if k in value]
    else:
        keys = list(schema.fields)
    keys.extend(k for k in value if k not in schema.fields)
    out: Dict[str, Any] = {}
    for key in keys:
        inc = None
        if include is not None and include is not True:
            inc = _sub(include, key)
            if inc is None:
                continue
        sub_ex = _sub(exclude, key) if exclude is not None else None
        if sub_ex is True:
            continue
        item = value.get(key)
        if item is None and (opts.exclude_none or (opts.exclude_defaults and key in schema.fields)):
            continue
        out[key] = dump(schema.children.get(key, ANY), item, opts, inc, sub_ex)
    return out


def wrap(schema: Schema, value: Any) -> Any:
    """Decoded JSON as attribute-readable objects: dicts become WireObjects, lists stay lists."""
    if isinstance(value, Mapping):
        return WireObject(value, schema)
    if isinstance(value, list):
        return [wrap(schema, item) for item in value]
    return value


class WireModel:
    """openai-python's dump methods and attribute access over a wire object's JSON.

    Subclasses set ``_schema`` and keep the JSON in ``_raw``; ``to_dict()`` is that JSON.
    """

    _schema: ClassVar[Schema] = ANY
    _raw: Dict[str, Any]

    def _wire(self) -> Dict[str, Any]:
        """The server's JSON, unknown fields included, with the normalised known ones."""
        return copy.deepcopy(self.__dict__.get("_raw") or {})

    def to_dict(
        self,
        *,
        mode: str = "python",
        use_api_names: bool = True,
        exclude_unset: bool = True,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
        warnings: bool = True,
    ) -> Dict[str, Any]:
        """The server's JSON, unknown fields included (openai-python's ``to_dict``).

        With its defaults this is the body as received; ``exclude_unset=False`` adds the
        declared fields the server left out (as None), ``exclude_none`` drops None values.
        """
        if exclude_unset and not exclude_none and not exclude_defaults:
            return self._wire()
        return self.model_dump(
            mode=mode,
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
        )

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: unknown wire fields, and openai's declared
        # fields the server left out (None, as in openai's models).
        if name.startswith("_"):
            raise AttributeError(name)
        raw = self.__dict__.get("_raw") or {}
        schema = self._schema
        if name in schema.fields:  # openai gives a model for these, None when absent
            return wrap(schema.children.get(name, ANY), raw.get(name))
        if name in raw:  # openai gives unknown fields as the plain JSON
            return copy.deepcopy(raw[name])
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def model_dump(
        self,
        *,
        mode: str = "python",
        include: IncEx = None,
        exclude: IncEx = None,
        context: Any = None,
        by_alias: Optional[bool] = None,
        exclude_unset: bool = False,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
        round_trip: bool = False,
        warnings: Any = True,
        serialize_as_any: bool = False,
        **_future: Any,
    ) -> Dict[str, Any]:
        """The wire fields as a plain dict, as openai-python's ``model_dump`` gives them.

        Fields openai declares but the server left out are None (dropped by
        ``exclude_unset``/``exclude_none``); unknown fields are kept. cometsync's own
        attributes (``attempts``, ``cost``, ``_request_id``) are not wire fields and never
        appear. ``mode``, ``by_alias`` and the rest are accepted: every value is already
        JSON and no field has an alias.
        """
        if mode not in ("python", "json"):
            raise ValueError(f"mode must be 'python' or 'json', got {mode!r}")
        opts = _Opts(bool(exclude_unset), bool(exclude_none), bool(exclude_defaults))
        result: Dict[str, Any] = dump(self._schema, self._wire(), opts, include, exclude)
        return result

    def model_dump_json(
        self,
        *,
        indent: Optional[int] = None,
        include: IncEx = None,
        exclude: IncEx = None,
        context: Any = None,
        by_alias: Optional[bool] = None,
        exclude_unset: bool = False,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
        round_trip: bool = False,
        warnings: Any = True,
        serialize_as_any: bool = False,
        **_future: Any,
    ) -> str:
        """``model_dump()`` as JSON text: compact by default, as pydantic writes it."""
        data = self.model_dump(
            include=include,
            exclude=exclude,
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
        )
        if indent is None:
            return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        return json.dumps(data, indent=indent, ensure_ascii=False)

    def to_json(
        self,
        *,
        indent: Optional[int] = 2,
        use_api_names: bool = True,
        exclude_unset: bool = True,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
        warnings: bool = True,
    ) -> str:
        """openai-python's ``to_json``: the fields the server sent, indented by default."""
        return self.model_dump_json(
            indent=indent,
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, WireModel)
        # As pydantic compares openai's models: a declared field left out equals one sent null.
        return self.model_dump() == other.model_dump()

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None  # type: ignore[assignment]  # mutable JSON inside, as openai's models

    def __repr__(self) -> str:
        parts = []
        for key, value in self.model_dump(exclude_unset=True).items():
            child = self._schema.children.get(key, ANY)
            shown = _repr_value(child, value)
            parts.append(f"{key}={shown}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _repr_value(schema: Schema, value: Any) -> str:
    if isinstance(value, Mapping):
        inner = ", ".join(
            f"{k}={_repr_value(schema.children.get(k, ANY), v)}" for k, v in value.items()
        )
        return f"{schema.name}({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(_repr_value(schema, v) for v in value) + "]"
    return repr(value)


class WireObject(WireModel):
    """A nested wire object (a tool call, token details, logprobs) read by attribute.

    It also answers ``obj["key"]`` and compares equal to the dict it was made from, so code
    written when these were plain dicts keeps working.
    """

    def __init__(self, data: Mapping[str, Any], schema: Schema = ANY) -> None:
        self.__dict__["_raw"] = dict(data)
        self.__dict__["_schema"] = schema

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __getitem__(self, key: str) -> Any:
        return self._raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        """The raw value of ``key`` (a dict's ``get``), for code that read these as dicts."""
        return self._raw.get(key, default)

    def keys(self) -> Any:
        return self._raw.keys()

    def __contains__(self, key: object) -> bool:
        return key in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, WireObject):
            return self._raw == other._raw
        if isinstance(other, Mapping):
            return self._raw == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return _repr_value(self._schema, self.model_dump(exclude_unset=True))
