"""Keeping the API key out of everything the client exposes: one redactor for every path.

A server may echo the key (a debugging proxy, a misconfigured gateway): in a body, an error
message, a header such as a redirect ``Location``, an SSE event, in any letter case. The
client scrubs each response as it arrives, before anything reads or truncates it, and every
error, attempt record and log line is built from that scrubbed text; errors are scrubbed once
more before they are raised.

What counts as the key: the key itself and any run of 8 or more of its consecutive
characters, in any ASCII letter case. Not recognised: shorter fragments, and the key
transformed otherwise (percent- or base64-encoded, split by other characters). A key shorter
than 8 characters (never a real one; tests use them) is too short to look for in bodies
without mangling them: it is replaced where it appears whole, in its own case, as a token of
its own (not touching a letter, digit, ``_`` or ``-``), in error texts, attempt records and
headers only.
"""

from __future__ import annotations

import json
import re
import string
from typing import Any, Dict, List, Mapping, Optional, Tuple, TypeVar, Union

from ._decode import loads
from ._http_info import ErrorRequest, ErrorResponse
from ._policy import ResponseLike

__all__ = ["FRAGMENT", "REDACTED", "Redactor"]

#: The shortest run of the key's characters that is scrubbed.
FRAGMENT = 8
REDACTED = "[redacted]"
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)

T = TypeVar("T")
R = TypeVar("R", bound=ResponseLike)


class Redactor:
    """Scrubs one secret, and every fragment of it, from text, bytes, JSON, headers, errors.

    Cheap when there is nothing to scrub: a few ``find`` calls on a lower-cased copy (every
    window of ``FRAGMENT`` characters of the key holds one of its 4-character anchors).
    """

    def __init__(self, secret: Optional[str]) -> None:
        self._short = secret if secret and len(secret) < FRAGMENT else None
        # A short key is a whole token only: "k" must not eat the k of "token".
        self._short_re = (
            re.compile(r"(?<![A-Za-z0-9_-])" + re.escape(self._short) + r"(?![A-Za-z0-9_-])")
            if self._short
            else None
        )
        key = "" if self._short else (secret or "").lower()
        size = min(FRAGMENT, len(key))
        frags = sorted({key[i : i + size] for i in range(len(key) - size + 1)}) if key else []
        # Every window of `size` characters holds the quarter-size piece starting at the next
        # multiple of `step` inside it; no anchor found means no window found.
        step = max(1, size // 2)
        anchors = sorted({key[j : j + step] for j in range(0, len(key) - step + 1, step)})
        self._frags: Tuple[str, ...] = tuple(frags)
        self._bfrags = tuple(f.encode("ascii", "replace") for f in self._frags)
        # One regex search for all anchors: about twice as fast as one `in` per anchor.
        self._anchors = re.compile("|".join(map(re.escape, anchors)) if key else "(?!)")
        self._banchors = re.compile(self._anchors.pattern.encode("ascii", "replace"))
        self._size = size

    def __repr__(self) -> str:  # never show the fragments
        return "Redactor()"

    # -- text and bytes -------------------------------------------------------------------
    def text(self, text: str) -> str:
        """``text`` with every fragment of the key replaced by ``[redacted]``."""
        if self._short is not None and self._short_re is not None:
            if self._short not in text:
                return text
            scrubbed = self._short_re.sub(REDACTED, text)
            return text if scrubbed == text else scrubbed
        if not self._frags or len(text) < self._size:
            return text
        low = text.lower()
        if len(low) != len(text):  # a few non-ASCII letters change length when lowered
            low = text.translate(_ASCII_LOWER)
        if self._anchors.search(low) is None:
            return text
        spans = _spans(low, self._frags, self._size)
        if not spans:
            return text
        parts: List[str] = []
        at = 0
        for start, end in spans:
            parts.append(text[at:start])
            parts.append(REDACTED)
            at = end
        parts.append(text[at:])
        return "".join(parts)

    def data(self, data: bytes) -> bytes:
        """Raw bytes (a body before decoding) with every fragment of the key replaced."""
        if not self._frags or len(data) < self._size:
            return data
        low = data.lower()  # bytes.lower() folds ASCII only, so offsets stay put
        if self._banchors.search(low) is None:
            return data
        spans = _spans(low, self._bfrags, self._size)
        if not spans:
            return data
        out = bytearray()
        at = 0
        for start, end in spans:
            out += data[at:start]
            out += REDACTED.encode()
            at = end
        out += data[at:]
        return bytes(out)

    def clean(self, text: str) -> bool:
        """Whether ``text`` holds no fragment of the key."""
        return self.text(text) is text

    # -- structures -----------------------------------------------------------------------
    def json(self, value: T) -> T:
        """Decoded JSON with every string (keys included) scrubbed; iterative, so any depth."""
        if not self._frags:
            return value
        root: List[Any] = [value]
        stack: List[Tuple[Any, Any, Any]] = [(root, 0, value)]  # (parent, slot, item)
        while stack:
            parent, slot, item = stack.pop()
            if isinstance(item, str):
                parent[slot] = self.text(item)
            elif isinstance(item, dict):
                copy: Dict[Any, Any] = {}
                for k, v in item.items():
                    name = self.text(k) if isinstance(k, str) else k
                    copy[name] = v
                    stack.append((copy, name, v))
                parent[slot] = copy
            elif isinstance(item, (list, tuple)):
                items = list(item)
                stack.extend((items, i, v) for i, v in enumerate(items))
                parent[slot] = items
        return root[0]  # type: ignore[no-any-return]

    def headers(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """``headers`` itself when clean, else a plain dict (lower-case names) scrubbed."""
        if not self._frags and self._short is None:
            return headers
        try:
            items = [(str(k), str(v)) for k, v in headers.items()]
        except Exception:  # a mapping that cannot be read is not exposed as it is
            return {}
        joined = "\n".join(f"{k}\n{v}" for k, v in items)
        if self.clean(joined):
            return headers
        return {self.text(k).lower(): self.text(v) for k, v in items}

    def body(self, content: bytes) -> bytes:
        """A raw body scrubbed, also of a key hidden behind JSON escapes (``\\u0073k-...``)."""
        content = self.data(content)
        if b"\\" in content and self._frags:
            try:
                decoded = loads(content)
            except ValueError:
                return content
            scrubbed = self.json(decoded)
            if scrubbed != decoded:
                return json.dumps(scrubbed).encode()
        return content

    def json_text(self, text: str) -> str:
        """The text of a JSON document (an SSE event's data) scrubbed like :meth:`body`."""
        if not self._frags:
            return text
        scrubbed = self.text(text)
        if "\\" in scrubbed and self._frags:
            try:
                decoded = loads(scrubbed)
            except ValueError:
                return scrubbed
            clean = self.json(decoded)
            if clean != decoded:
                return json.dumps(clean)
        return scrubbed

    def response(self, response: R) -> R:
        """A response scrubbed in place: its headers and (unstreamed) body; returned."""
        headers = self.headers(response.headers)
        if headers is not response.headers:
            response.headers = headers
        content = getattr(response, "content", b"")
        if isinstance(content, bytes) and content:
            clean = self.body(content)
            if clean is not content:
                response.content = clean
                if getattr(response, "_payload", None) is not None:
                    response._payload = None  # type: ignore[attr-defined]  # decoded unscrubbed
        return response

    def error(self, error: BaseException) -> None:
        """Scrub an error in place: args, message, body, headers, request id, partial text."""
        if not self._frags and self._short is None:
            return
        if error.args:
            error.args = tuple(self.text(a) if isinstance(a, str) else a for a in error.args)
        for name in ("message", "request_id", "partial", "code"):  # type, param: from body
            value = getattr(error, name, None)
            if isinstance(value, str):
                setattr(error, name, self.text(value))
        if getattr(error, "body", None) is not None and self._short is None:
            error.body = self.json(error.body)  # type: ignore[attr-defined]
        headers = getattr(error, "headers", None)
        if isinstance(headers, Mapping):
            error.headers = self.headers(headers)  # type: ignore[attr-defined]
        response = getattr(error, "response", None)
        if isinstance(response, ErrorResponse):
            error.response = response.scrubbed(self.text, self.json)  # type: ignore[attr-defined]
        request = getattr(error, "request", None)
        if isinstance(request, ErrorRequest) and not self.clean(request.url):
            error.request = ErrorRequest(request.method, self.text(request.url))  # type: ignore[attr-defined]


def _spans(low: Union[str, bytes], frags: Tuple[Any, ...], size: int) -> List[Tuple[int, int]]:
    """The merged ``[start, end)`` spans where any fragment occurs in ``low``."""
    found: List[Tuple[int, int]] = []
    for frag in frags:
        i = low.find(frag)
        while i != -1:
            found.append((i, i + size))
            i = low.find(frag, i + 1)
    if not found:
        return []
    found.sort()
    merged = [found[0]]
    for start, end in found[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged
