"""Reply building: the planned answer (:class:`Reply`), its body, its stream and its errors.

Pure functions of the decided step and the request: no state, no random draw. A stream's
events are built here with zero delays; :func:`simulator.plan.pace` spaces them out.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs

from . import wire
from .scenario_types import CONTEXT_LENGTH_EXCEEDED, STREAM_FAULTS, ModelSpec, Scenario, Step

__all__ = [
    "END_KINDS",
    "JSON",
    "Reply",
    "answer",
    "build",
    "catalog",
    "error",
    "error_event",
    "error_reply",
    "models",
    "rate_limited",
    "request_id",
    "unknown_url",
]

#: How a reply ends after its body or events: ``complete`` (normal), ``truncated`` (the
#: connection closes before the declared length or before ``[DONE]``), ``reset`` (abortive
#: close, RST), ``stall`` (nothing more is sent until the client leaves or ``hold`` passes).
END_KINDS = ("complete", "truncated", "reset", "stall")

JSON = "application/json"


class Reply:
    """A planned answer. Drivers read it; only the core mutates it.

    Attributes:
        status: HTTP status, or None when no response is sent (``reset``, ``hang``).
        headers: response headers, lower-case names, without Content-Length unless the
            declared length differs from ``body`` (a ``truncate`` fault).
        payload: the decoded JSON object of the body (or of the error), None for non-JSON.
        latency: seconds to wait before the status line is sent.
        fault: None, or the transport fault name (``reset``, ``hang``, ``malformed``...).
        chunks: for a stream, ``(delay_seconds, chunk_object_or_"[DONE]")`` pairs; else None.
        end: one of :data:`END_KINDS`.
        hold: for ``end == "stall"``, the longest the driver keeps the connection open.
        model, seq, cause: what the journal recorded (``cause``: ok, script, outage, load,
            fault, rate_limit, invalid, auth, not_found, admin).
    """

    __slots__ = (
        "_body",
        "_done",
        "_inflight_key",
        "_record",
        "cause",
        "chunks",
        "end",
        "fault",
        "headers",
        "hold",
        "latency",
        "model",
        "payload",
        "seq",
        "status",
    )

    def __init__(
        self,
        status: Optional[int],
        payload: Any = None,
        *,
        headers: Optional[Dict[str, str]] = None,
        body: Optional[bytes] = None,
        latency: float = 0.0,
        fault: Optional[str] = None,
        chunks: Optional[List[Tuple[float, Any]]] = None,
        end: str = "complete",
        hold: float = 0.0,
        cause: str = "ok",
    ) -> None:
        self.status = status
        self.payload = payload
        self.headers: Dict[str, str] = headers if headers is not None else {}
        self._body = body
        self.latency = latency
        self.fault = fault
        self.chunks = chunks
        self.end = end
        self.hold = hold
        self.cause = cause
        self.model: Optional[str] = None
        self.seq = 0
        self._record: Optional[List[Any]] = None
        self._inflight_key: Optional[str] = None
        self._done = True

    @property
    def body(self) -> bytes:
        """The body bytes, encoded from ``payload`` on first use (in-process drivers skip it)."""
        if self._body is None:
            self._body = b"" if self.payload is None else wire.dumps(self.payload)
        return self._body

    @property
    def is_stream(self) -> bool:
        """Whether the reply is a server-sent event stream."""
        return self.chunks is not None

    @property
    def events(self) -> List[Tuple[float, bytes]]:
        """The stream as ``(delay_seconds, event_bytes)`` pairs (empty for a non-stream)."""
        return [(delay, wire.sse(obj)) for delay, obj in self.chunks or ()]

    @property
    def duration(self) -> float:
        """Planned seconds from request to the last byte (or to the stall)."""
        total = self.latency + sum(delay for delay, _ in self.chunks or ())
        return total + (self.hold if self.end == "stall" else 0.0)

    def __repr__(self) -> str:
        return f"<Reply {self.status} fault={self.fault} end={self.end} latency={self.latency:.3f}>"


def request_id(seed: int, seq: int) -> str:
    """The ``x-request-id`` of request ``seq``: reproducible from the seed."""
    return f"20260101{seed % 1000:03d}{seq:09d}"


def error(
    seed: int,
    status: int,
    seq: int,
    message: Optional[str] = None,
    *,
    code: Optional[str] = None,
    param: Optional[str] = None,
    cause: str = "invalid",
) -> Reply:
    """An error reply in the gateway's JSON envelope."""
    rid = request_id(seed, seq)
    payload = wire.error_envelope(status, rid, message, code, param)
    return Reply(
        status,
        payload,
        headers={"content-type": JSON, "x-request-id": rid},
        cause=cause,
    )


def error_reply(seed: int, status: int, seq: int, payload: Dict[str, Any]) -> Reply:
    """An error reply with a body of its own (OpenAI-worded errors the envelope cannot say)."""
    headers = {"content-type": JSON, "x-request-id": request_id(seed, seq)}
    return Reply(status, payload, headers=headers, cause="invalid")


def unknown_url(seed: int, seq: int, method: str, route: str) -> Reply:
    """A 404 a client can tell from an unknown model (a base URL without ``/v1``...)."""
    rid = request_id(seed, seq)
    payload = wire.unknown_url_envelope(method, route[:200])
    hdrs = {"content-type": JSON, "x-request-id": rid}
    return Reply(404, payload, headers=hdrs, cause="not_found")


def rate_limited(seed: int, seq: int, wait: float, which: str, rl: Dict[str, str]) -> Reply:
    """The 429 of the rate limiter, with Retry-After and the ``x-ratelimit-*`` headers."""
    ms = max(1, math.ceil(wait * 1000))
    message = f"Rate limit reached for {which}; retry after {wire.format_seconds(ms / 1000)}s"
    reply = error(seed, 429, seq, message, code="rate_limit_exceeded", cause="rate_limit")
    reply.headers.update(rl)
    reply.headers["retry-after"] = wire.format_seconds(ms / 1000)
    reply.headers["retry-after-ms"] = str(ms)
    return reply


def build(
    seed: int,
    hang_s: float,
    seq: int,
    spec: ModelSpec,
    step: Optional[Step],
    stream: bool,
    include_usage: bool,
    prompt_tokens: int,
    texts: List[str],
    finish_reason: str,
    tool_call: Optional[Dict[str, Any]] = None,
) -> Reply:
    """The reply for a decided step (None: a normal answer); ``texts`` are the content pieces;
    ``tool_call`` answers with it."""
    fault = step.fault if step is not None else None
    failed = step is not None and fault is None and step.status != 200
    if failed and step is not None and step.code == CONTEXT_LENGTH_EXCEEDED:
        rid = request_id(seed, seq)
        window = spec.context_window
        body = wire.context_length_envelope(rid, prompt_tokens, window, step.message)
        reply = error_reply(seed, step.status, seq, body)
        reply.cause = "fault"
        return reply
    if stream and not failed and (fault is None or fault in STREAM_FAULTS):
        return _stream(
            seed,
            hang_s,
            seq,
            spec,
            step,
            include_usage,
            prompt_tokens,
            texts,
            finish_reason,
            tool_call,
        )

    def payload() -> Dict[str, Any]:
        cid = f"chatcmpl-sim{seed % 1000:03d}{seq:09d}"
        if tool_call is not None:
            return wire.tool_completion(cid, spec.id, tool_call, prompt_tokens)
        return wire.completion(cid, spec.id, texts, finish_reason, prompt_tokens)

    return answer(seed, hang_s, seq, step, payload)


def answer(
    seed: int,
    hang_s: float,
    seq: int,
    step: Optional[Step],
    payload: Callable[[], Dict[str, Any]],
) -> Reply:
    """A JSON reply (chat or embeddings) for a decided step: the payload, or the step's fault.

    ``payload`` is only called when a body is sent.
    """
    rid = request_id(seed, seq)
    fault = step.fault if step is not None else None
    if step is not None and fault is None and step.status != 200:
        reply = error(seed, step.status, seq, step.message, code=step.code, cause="fault")
        if step.retry_after is not None:
            reply.headers["retry-after"] = wire.format_seconds(step.retry_after)
        if step.retry_after_ms is not None:
            reply.headers["retry-after-ms"] = wire.format_seconds(step.retry_after_ms)
        return reply
    if fault == "reset":
        return Reply(None, fault=fault, end="reset")
    if fault == "hang":
        return Reply(None, fault=fault, end="stall", hold=hang_s)
    if fault == "html":
        status = step.status if step is not None and step.status != 200 else 502
        html = {"content-type": "text/html", "x-request-id": rid}
        return Reply(status, None, headers=html, body=wire.HTML_502, fault=fault)
    headers = {"content-type": JSON, "x-request-id": rid}
    if fault == "empty":
        return Reply(200, None, headers=headers, body=b"", fault=fault)
    if fault == "error":
        return Reply(200, error_event(seed, seq, step), headers=headers, fault=fault)
    body = payload()
    if fault == "eof":
        return Reply(200, _halved(body), headers=headers, fault=fault)
    if fault == "malformed":
        full = wire.dumps(body)
        return Reply(200, None, headers=headers, body=full[: len(full) * 2 // 3], fault=fault)
    if fault in ("truncate", "stall"):
        full = wire.dumps(body)
        headers["content-length"] = str(len(full))
        return Reply(
            200,
            None,
            headers=headers,
            body=full[: len(full) // 2],
            fault=fault,
            end="truncated" if fault == "truncate" else "stall",
            hold=hang_s,
        )
    return Reply(200, body, headers=headers)


def _halved(body: Dict[str, Any]) -> Dict[str, Any]:
    """A well-formed body that stops half-way: half the text (or items), no finish reason."""
    out = dict(body)
    if "choices" in out:
        choices = []
        for choice in out["choices"]:
            message = dict(choice.get("message") or {})
            if isinstance(message.get("content"), str):
                words = message["content"].split(" ")
                message["content"] = " ".join(words[: len(words) // 2])
            choices.append({**choice, "message": message, "finish_reason": None})
        out["choices"] = choices
    elif isinstance(out.get("data"), list):
        out["data"] = out["data"][: len(out["data"]) // 2]
    return out


def _stream(
    seed: int,
    hang_s: float,
    seq: int,
    spec: ModelSpec,
    step: Optional[Step],
    include_usage: bool,
    prompt_tokens: int,
    texts: List[str],
    finish_reason: str,
    tool_call: Optional[Dict[str, Any]] = None,
) -> Reply:
    """A stream, broken by a stream fault after ``step.after_chunks`` events (default half).

    ``truncate`` closes cleanly, ``reset`` with RST, ``stall`` goes silent, ``eof`` ends the
    HTTP body properly but without a finish reason or ``[DONE]``; ``malformed``
    cuts one event in half and goes on; ``error`` sends an ``{"error": ...}`` event and
    ends without ``[DONE]``.
    """
    cid = f"chatcmpl-sim{seed % 1000:03d}{seq:09d}"
    payloads: List[Any] = wire.chunk_payloads(
        cid, spec.id, texts, finish_reason, prompt_tokens, include_usage, tool_call
    )
    fault = step.fault if step is not None else None
    end = {"truncate": "truncated", "reset": "reset", "stall": "stall"}.get(str(fault))
    if step is not None and fault is not None:
        after = 1 + len(texts) // 2 if step.after_chunks is None else step.after_chunks
        cut = min(after, len(payloads) - 1)  # never [DONE]: the stream must break
        head, rest = payloads[:cut], payloads[cut:]
        if fault == "malformed":
            event = wire.sse(rest[0])
            payloads = [*head, event[: len(event) // 2] + b"\n\n", *rest[1:]]
        elif fault == "error":
            payloads = [*head, error_event(seed, seq, step)]
        else:
            payloads = head
    headers = {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        "x-request-id": request_id(seed, seq),
    }
    return Reply(
        200,
        None,
        headers=headers,
        chunks=[(0.0, p) for p in payloads],
        fault=fault,
        end=end or "complete",
        hold=hang_s,
    )


def error_event(seed: int, seq: int, step: Optional[Step]) -> Dict[str, Any]:
    """The ``{"error": ...}`` a gateway sends with a 200: in a stream, or as the body.

    A step with an error status adds it as ``error.status`` (some gateways do), so a
    client can treat the event like that status.
    """
    status = step.status if step is not None and step.status != 200 else 500
    message = step.message if step is not None else None
    code = step.code if step is not None else None
    payload = wire.error_envelope(status, request_id(seed, seq), message, code)
    if step is not None and step.status != 200:
        payload["error"]["status"] = status
    return payload


def models(seed: int, scenario: Scenario, route: str, seq: int) -> Tuple[Reply, Optional[str]]:
    """``/v1/models`` or ``/v1/models/{id}``, with the model id to journal (None for the list)."""
    hdrs = {"content-type": JSON, "x-request-id": request_id(seed, seq)}
    if route in ("/v1/models", "/v1/models/"):
        return Reply(200, wire.models_list(scenario), headers=hdrs), None
    model_id = route[len("/v1/models/") :]
    spec = scenario.models.get(model_id)
    if spec is None:
        return error(seed, 404, seq, f"The model `{model_id[:100]}` does not exist"), model_id[:100]
    return Reply(200, wire.model_object(spec), headers=hdrs), model_id


def catalog(seed: int, scenario: Scenario, query: str, seq: int) -> Reply:
    """CometAPI's ``/api/models`` catalog, whole or by page."""
    params = parse_qs(query)
    if "page" not in params and "page_size" not in params:
        page, size = 0, 0  # as CometAPI answers: every model at once, page 0, page_size 0
    else:
        try:
            page = int(params.get("page", ["1"])[0])
            size = int(params.get("page_size", ["100"])[0])
        except ValueError:
            return error(seed, 400, seq, "page and page_size must be integers", param="page")
        if page < 1 or not 1 <= size <= 1000:
            return error(seed, 400, seq, "page must be >= 1, page_size 1..1000", param="page")
    payload = wire.models_catalog(scenario, page, size)
    hdrs = {"content-type": JSON, "x-request-id": request_id(seed, seq)}
    return Reply(200, payload, headers=hdrs)
