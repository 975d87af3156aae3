"""JSON from a server, decoded with a bound on nesting, for every transport and driver.

``json.loads`` recurses once per level: a body of 100,000 ``[`` raises ``RecursionError``,
and a merely deep one (a few hundred levels) breaks whatever walks it next (copies, reprs,
the key scrubber). Every body and event the client decodes goes through :func:`loads`, so a
hostile or broken server gets a ``ValueError`` here, which the flow turns into a
``CometError`` like any other invalid body.
"""

from __future__ import annotations

import json
from typing import Any, List, Tuple, Union

__all__ = ["MAX_JSON_DEPTH", "loads"]

#: Deeper JSON is refused. Real API bodies are under 10 levels; Python's own limit is ~1000.
MAX_JSON_DEPTH = 128


def loads(data: Union[bytes, bytearray, str]) -> Any:
    """Decode JSON nested at most ``MAX_JSON_DEPTH`` levels.

    Raises:
        ValueError: not JSON, not UTF-8, or nested deeper than ``MAX_JSON_DEPTH``.
    """
    try:
        value = json.loads(data)
    except RecursionError:
        raise ValueError(_too_deep()) from None
    # Only a body with that many brackets can be that deep: one C-speed count spares the walk.
    opens = data.count("[") + data.count("{") if isinstance(data, str) else _opens(data)
    if opens > MAX_JSON_DEPTH and depth_exceeds(value, MAX_JSON_DEPTH):
        raise ValueError(_too_deep())
    return value


def _opens(data: Union[bytes, bytearray]) -> int:
    return data.count(b"[") + data.count(b"{")


def _too_deep() -> str:
    return f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep"


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether lists and dicts in ``value`` nest more than ``limit`` levels (no recursion)."""
    stack: List[Tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if level > limit:
            return True
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return False
