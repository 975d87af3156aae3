"""Property tests of the simulator: any bytes get a response or a clean close (never a
traceback), any JSON body an answer, any scenario document a 200 or a 400 naming the field."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from typing import Any, Iterator, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import Core, Simulator

# CI runs 200-300 cases per property; FUZZ_EXAMPLES=10000 runs a deeper campaign.
CASES = int(os.environ.get("FUZZ_EXAMPLES", "0"))
QUICK = settings(
    max_examples=CASES or 200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
KEY = "sk-prop-0123456789abcdef"


class Errors(logging.Handler):
    """Collects the simulator's error records (a logged traceback is a failure)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    models = {"m1": {}, "m2": {"script": [{"fault": "reset"}]}, "text-embedding-x": {}}
    with Simulator({"models": models}) as server:
        yield server


@pytest.fixture
def errors() -> Iterator[Errors]:
    handler = Errors()
    logger = logging.getLogger("simulator")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


# -- strategies ----------------------------------------------------------------------------
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([10**400, -(10**400), 2**63, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


def mutate(template: Any, draw: Any, keys: List[str]) -> Any:
    """The template with some values replaced by arbitrary JSON and some keys added."""
    if isinstance(template, dict):
        out = {}
        for k, v in template.items():
            if draw(st.integers(0, 6)) == 0:
                continue
            out[k] = draw(json_values) if draw(st.integers(0, 4)) == 0 else mutate(v, draw, keys)
        if draw(st.integers(0, 3)) == 0:
            out[draw(st.sampled_from(keys))] = draw(json_values)
        return out
    if isinstance(template, list):
        return [mutate(v, draw, keys) for v in template]
    return template


def leaves(value: Any, path: tuple = ()) -> List[tuple]:
    """The paths of every value (containers included) inside ``value``."""
    found = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            found += leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += leaves(v, (*path, i))
    return found


def replaced(template: Any, draw: Any, values: Any) -> Any:
    """A copy of ``template`` with one value, anywhere, replaced by one drawn from ``values``."""
    doc = json.loads(json.dumps(template))
    path = draw(st.sampled_from(leaves(doc)[1:]))
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = draw(values)
    return doc


ABSURD = st.sampled_from(
    [10**400, -(10**400), 2**63, 2**64, 1e308, -1e308, float("inf"), float("nan"), [], {}, "x"]
)

CHAT_KEYS = [
    "model",
    "messages",
    "role",
    "content",
    "stream",
    "stream_options",
    "include_usage",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "temperature",
    "top_p",
    "type",
    "text",
    "tools",
]
CHAT = {
    "model": "m1",
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
    ],
    "stream": False,
    "stream_options": {"include_usage": True},
    "max_tokens": 5,
    "temperature": 1.0,
}


EMBED = {"model": "text-embedding-x", "input": ["a", "b"], "dimensions": 8}


@st.composite
def chat_bodies(draw: Any) -> bytes:
    kind = draw(st.integers(0, 5))
    if kind == 5:
        return json.dumps(replaced(EMBED, draw, st.one_of(ABSURD, json_values))).encode()
    if kind == 0:
        return draw(st.binary(max_size=100))
    if kind == 1:
        return json.dumps(draw(json_values)).encode()
    if kind == 2:
        return json.dumps(replaced(CHAT, draw, st.one_of(ABSURD, json_values))).encode()
    return json.dumps(mutate(CHAT, draw, CHAT_KEYS)).encode()


TARGETS = [
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/models",
    "/v1/models/m1",
    "/api/models",
    "/_sim/journal",
    "/_sim/stats",
    "/_sim/health",
    "/_sim/nope",
    "/v1/x?y=%ff",
    "*",
    "/" + "a" * 300,
]
HEADERS = [
    "content-length",
    "authorization",
    "connection",
    "expect",
    "transfer-encoding",
    "content-type",
    "x-any",
    "",
]


@st.composite
def raw_requests(draw: Any) -> bytes:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=300))
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "get", "", "P\x00ST"]))
    target = draw(st.one_of(st.sampled_from(TARGETS), st.text(max_size=20)))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/", "", "http/1.1"]))
    body = draw(chat_bodies())
    lines = [f"{method} {target} {version}"]
    lines.append(f"authorization: Bearer {KEY}")
    if draw(st.booleans()):
        lines.append(f"content-length: {len(body)}")
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(HEADERS))
        value = draw(
            st.one_of(
                st.text(max_size=12),
                st.sampled_from(
                    [
                        "\u00b2",
                        "9" * 5000,
                        "-5",
                        "100-continue",
                        "chunked",
                        "close",
                        "keep-alive",
                        "1e3",
                    ]
                ),
            )
        )
        lines.append(f"{name}: {value}" if draw(st.integers(0, 5)) else name)
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    head = eol.join(lines) + eol + eol
    data = head.encode("utf-8", "replace") + body
    if draw(st.integers(0, 5)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


def answer(sim: Simulator, data: bytes) -> bytes:
    """Send ``data``, end the sending side, and read everything until the server closes."""
    with socket.create_connection((sim.host, sim.port), timeout=5) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered and closed before taking every byte
            pass
        out = b""
        try:
            while True:
                piece = sock.recv(65536)
                if not piece:
                    return out
                out += piece
        except ConnectionResetError:
            return out


# -- properties ----------------------------------------------------------------------------
@QUICK
@given(data=raw_requests())
def test_any_bytes_get_a_response_or_a_clean_close(
    sim: Simulator, errors: Errors, data: bytes
) -> None:
    """Whatever bytes a client sends, it gets HTTP responses or a close, never a traceback."""
    out = answer(sim, data)
    assert out == b"" or out.startswith(b"HTTP/1.1 "), out[:100]
    for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", out):
        assert 100 <= int(status) < 600
    assert errors.records == [], [r.getMessage() for r in errors.records]


@settings(QUICK, max_examples=CASES or 300)
@given(body=chat_bodies(), stream=st.booleans())
def test_any_chat_body_gets_a_planned_reply(body: bytes, stream: bool) -> None:
    """In process, any chat body is planned to a reply with a status or a fault, never raises."""
    core = Core({"models": {"m1": {"token_ms": 1}, "text-embedding-x": {}}})
    headers = {"authorization": f"Bearer {KEY}"}
    route = "/v1/embeddings" if b"text-embedding-x" in body else "/v1/chat/completions"
    reply = core.handle("POST", route, headers, body, 0.0)
    assert reply.status is None or 200 <= reply.status < 600
    if reply.status == 400:
        assert reply.payload["error"]["message"]
    core.finish(reply, 1.0)


SCENARIO_KEYS = [
    "seed",
    "models",
    "rate_limits",
    "max_body_bytes",
    "hang_s",
    "latency_ms",
    "ttft_ms",
    "token_ms",
    "script",
    "faults",
    "outages",
    "pricing",
    "load",
    "provider",
    "dist",
    "ms",
    "low",
    "high",
    "median",
    "sigma",
    "rate",
    "status",
    "retry_after",
    "retry_after_ms",
    "code",
    "message",
    "fault",
    "after_chunks",
    "start",
    "end",
    "capacity",
    "latency_slope",
    "rpm",
    "tpm",
    "concurrency",
]
SCENARIO = {
    "seed": 3,
    "hang_s": 5,
    "max_body_bytes": 100000,
    "rate_limits": {"rpm": 600, "tpm": 100000, "concurrency": 4},
    "models": {
        "m1": {
            "latency_ms": {"dist": "uniform", "low": 1, "high": 5},
            "ttft_ms": {"dist": "lognormal", "median": 2, "sigma": 1},
            "token_ms": 1,
            "script": [429, {"status": 500, "code": "x", "latency_ms": 3}],
            "faults": [
                {"rate": 0.5, "fault": "truncate", "after_chunks": 1},
                {"rate": 0.2, "status": 429, "retry_after": 1, "retry_after_ms": 10},
            ],
            "outages": [{"start": 0, "end": 1, "status": 503}],
            "pricing": {"input": 1, "output": 2},
            "load": {"capacity": 2, "latency_slope": 1, "retry_after": 1},
        }
    },
}


@st.composite
def scenario_docs(draw: Any) -> bytes:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.binary(max_size=60))
    if kind == 1:
        return json.dumps(draw(json_values)).encode()
    if kind in (2, 3):  # one value anywhere absurd: beyond float range, infinite, mistyped
        return json.dumps(replaced(SCENARIO, draw, st.one_of(ABSURD, json_values))).encode()
    return json.dumps(mutate(SCENARIO, draw, SCENARIO_KEYS)).encode()


@settings(QUICK, max_examples=CASES or 300)
@given(doc=scenario_docs(), stream=st.booleans())
def test_any_scenario_document_gets_200_or_a_400_naming_the_field(doc: bytes, stream: bool) -> None:
    """POST /_sim/scenario answers 200, or 400 with the field (or invalid_json); then serves."""
    core = Core({"models": {"m1": {}}})
    reply = core.handle("POST", "/_sim/scenario", {}, doc, 0.0)
    assert reply.status in (200, 400), reply.payload
    if reply.status == 400:
        error = reply.payload["error"]
        assert error["code"] in ("invalid_json", "invalid_scenario")
        if error["code"] == "invalid_scenario":
            assert error["message"].startswith(str(error["param"] or ""))
        return
    for model in core.scenario.models:
        body = json.dumps(
            {"model": model, "messages": [{"role": "user", "content": "x"}], "stream": stream}
        ).encode()
        served = core.handle(
            "POST", "/v1/chat/completions", {"authorization": "Bearer k"}, body, 0.5
        )
        assert served.latency <= 3600 and all(d <= 3600 for d, _ in served.events)
        core.finish(served, 1.0)
