"""The batch runner's file handling: parsing input lines, reading and repairing the output."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, List

import pytest

import cometsync
from cometsync._batch import BatchFileError, parse_line, read_done, run_batch
from cometsync.testing import FakeClock, ScriptedTransport, completion_body, json_response

MSGS = [{"role": "user", "content": "hi"}]


def line(**fields: Any) -> str:
    return json.dumps(fields)


def test_a_valid_line_becomes_create_keywords_with_the_rest_in_extra_body() -> None:
    """model and messages are create() keywords; every other body key goes to extra_body."""
    body = {"model": "m", "messages": MSGS, "temperature": 0, "timeout": 3, "stream": False}
    parsed = parse_line(line(custom_id="x", body=body), 4)
    assert parsed.error is None and parsed.custom_id == "x" and parsed.line == 4
    assert parsed.request == {
        "model": "m",
        "messages": MSGS,
        "extra_body": {"temperature": 0, "timeout": 3},
    }


def test_the_default_model_fills_in_and_the_line_model_wins() -> None:
    """A body without a model takes the default; a body with one keeps it."""
    without = parse_line(line(body={"messages": MSGS}), 1, default_model="d")
    with_model = parse_line(line(body={"model": "m", "messages": MSGS}), 1, default_model="d")
    assert without.request is not None and without.request["model"] == "d"
    assert with_model.request is not None and with_model.request["model"] == "m"


@pytest.mark.parametrize(
    ("text", "custom_id", "problem"),
    [
        ("{oops", "line-7", "line 7: not valid JSON"),
        ("[1, 2]", "line-7", "expected a JSON object, got list"),
        (line(custom_id=5, body={}), "line-7", "custom_id must be a non-empty string"),
        (line(custom_id="c", body="hi"), "c", "'body' must be a JSON object"),
        (line(custom_id="c", body={"model": "m"}), "c", "no 'messages'"),
        (line(custom_id="c", body={"messages": MSGS}), "c", "no 'model'"),
        (line(custom_id="c", body={"model": "m", "messages": MSGS, "stream": True}), "c", "stream"),
        (line(custom_id="c", url="/v1/embeddings", body={}), "c", "no 'input'"),
        (line(custom_id="d", url="/v1/images", body={}), "d", "and /v1/embeddings are supported"),
        (line(custom_id="c", method="GET", body={}), "c", "method must be POST"),
    ],
)
def test_malformed_lines_name_their_line_and_problem(
    text: str, custom_id: str, problem: str
) -> None:
    """Every kind of malformed line gives an error with its line number, never an exception."""
    parsed = parse_line(text, 7)
    assert parsed.request is None
    assert parsed.custom_id == custom_id
    assert parsed.error is not None and parsed.error.startswith("line 7: ")
    assert problem in parsed.error


def test_read_done_cuts_only_a_partial_last_line(tmp_path: Path) -> None:
    """A last line without its newline is removed; complete lines stay byte for byte."""
    out = tmp_path / "out.jsonl"
    good = '{"custom_id": "a", "response": {}, "error": null}\n'
    bad = '{"custom_id": "b", "response": null, "error": {"type": "X"}}\n'
    out.write_text(good + bad + '{"custom_id": "c", "resp')
    done = read_done(str(out))
    assert (done.ids, done.failed, done.dropped_partial_line) == ({"a", "b"}, 1, True)
    assert out.read_text() == good + bad


def test_read_done_refuses_a_corrupt_middle_line_and_changes_nothing(tmp_path: Path) -> None:
    """A complete line that is not a result line is an error naming it; the file is untouched."""
    out = tmp_path / "out.jsonl"
    content = '{"custom_id": "a"}\nnot json\n{"custom_id": "b", "resp'
    out.write_text(content)
    with pytest.raises(BatchFileError, match="line 2 is not a result line"):
        read_done(str(out))
    assert out.read_text() == content


def test_a_missing_output_means_nothing_done(tmp_path: Path) -> None:
    """Resuming into a file that does not exist yet starts from scratch."""
    assert read_done(str(tmp_path / "none.jsonl")).ids == set()


def make_client(script: List[Any]) -> cometsync.Client:
    # One worker: the scripted replies are then consumed in input order.
    return cometsync.Client(
        api_key="k", transport=ScriptedTransport(script), clock=FakeClock(), max_workers=1
    )


def test_a_set_stop_starts_nothing_new_and_marks_the_run_interrupted(tmp_path: Path) -> None:
    """With the stop event already set, no request is sent and the summary says interrupted."""
    source = tmp_path / "in.jsonl"
    source.write_text(line(custom_id="a", body={"model": "m", "messages": MSGS}) + "\n")
    out = tmp_path / "out.jsonl"
    stop = threading.Event()
    stop.set()
    summary = run_batch(make_client([]), str(source), str(out), stop=stop)
    assert summary.interrupted
    assert out.read_text() == ""


def test_results_are_written_in_input_order_with_their_ids(tmp_path: Path) -> None:
    """Each finished request is written under its own custom_id, one line each."""
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(line(custom_id=c, body={"model": "m", "messages": MSGS}) + "\n" for c in ("a", "b"))
    )
    out = tmp_path / "out.jsonl"
    script = [
        json_response(200, completion_body("first")),
        json_response(200, completion_body("second")),
    ]
    summary = run_batch(make_client(script), str(source), str(out))
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["custom_id"] for r in records] == ["a", "b"]
    contents = [r["response"]["body"]["choices"][0]["message"]["content"] for r in records]
    assert contents == ["first", "second"]
    assert (summary.succeeded, summary.failed, summary.unpriced) == (2, 0, 2)


class SlowFirst:
    """Answers by message content; "head" gets a 503 first, whose backoff lasts until every
    other line has been answered (the clock's sleep waits for that, 5 s at most)."""

    def __init__(self, others: int) -> None:
        self.fake = FakeClock()
        self.others = others
        self.answered = 0
        self.head_sends = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.released: List[bool] = []

    # the clock
    def monotonic(self) -> float:
        return self.fake.monotonic()

    def time(self) -> float:
        return self.fake.time()

    def sleep(self, seconds: float) -> None:
        self.released.append(self.release.wait(5))

    # the transport
    def send(self, request: cometsync.HTTPRequest, timeout: cometsync.Timeout) -> Any:
        text = json.loads(request.body or b"{}")["messages"][0]["content"]
        with self.lock:
            if text == "head":
                self.head_sends += 1
                if self.head_sends == 1:
                    return json_response(503, {"error": {"message": "busy", "code": None}})
            else:
                self.answered += 1
                if self.answered == self.others:
                    self.release.set()
        return json_response(200, completion_body(text))

    def close(self) -> None:
        pass


def batch_input(tmp_path: Path, names: List[str], bad_at: int = -1) -> Path:
    source = tmp_path / "in.jsonl"
    rows = [
        line(custom_id=n, body={"model": "m", "messages": [{"role": "user", "content": n}]})
        for n in names
    ]
    if bad_at >= 0:
        rows.insert(bad_at, "{not json")
    source.write_text("\n".join(rows) + "\n")
    return source


def test_a_line_in_backoff_does_not_stall_the_batch(tmp_path: Path) -> None:
    """The default completion order writes every other line while the first one backs off."""
    others = 200
    fake = SlowFirst(others)
    names = ["head"] + [f"q{i}" for i in range(others)]
    source = batch_input(tmp_path, names)
    out = tmp_path / "out.jsonl"
    client = cometsync.Client(api_key="k", transport=fake, clock=fake, max_workers=4)
    with client:
        summary = run_batch(client, str(source), str(out))
    ids = [json.loads(x)["custom_id"] for x in out.read_text().splitlines()]
    assert fake.released == [True]  # released by the others finishing, not by the timeout
    assert ids[-1] == "head" and sorted(ids) == sorted(names)
    assert summary.succeeded == others + 1


def test_in_order_batch_writes_every_line_in_its_input_slot(tmp_path: Path) -> None:
    """With ordered=True, results and malformed lines alike come out in input order."""
    others = 50
    fake = SlowFirst(others)
    names = ["head"] + [f"q{i}" for i in range(others)]
    source = batch_input(tmp_path, names, bad_at=3)  # a malformed line 4, behind the head
    out = tmp_path / "out.jsonl"
    client = cometsync.Client(api_key="k", transport=fake, clock=fake, max_workers=4)
    with client:
        summary = run_batch(client, str(source), str(out), ordered=True)
    ids = [json.loads(x)["custom_id"] for x in out.read_text().splitlines()]
    assert fake.released == [True]  # the workers went on while the head waited
    assert ids == ["head", "q0", "q1", "line-4", *[f"q{i}" for i in range(2, others)]]
    assert summary.failures["invalid_input"] == 1


def test_a_malformed_line_is_written_as_it_is_read_in_completion_order(tmp_path: Path) -> None:
    """In the default order a malformed line is done at once: ahead of a line still running."""
    fake = SlowFirst(others=1)
    source = batch_input(tmp_path, ["head", "q0"], bad_at=1)
    out = tmp_path / "out.jsonl"
    client = cometsync.Client(api_key="k", transport=fake, clock=fake, max_workers=2)
    with client:
        run_batch(client, str(source), str(out))
    ids = [json.loads(x)["custom_id"] for x in out.read_text().splitlines()]
    assert ids.index("line-2") < ids.index("head")
    assert sorted(ids) == ["head", "line-2", "q0"]


def test_embedding_lines_run_beside_chat_lines_without_chat_fallbacks(tmp_path: Path) -> None:
    """A /v1/embeddings line is embedded (floats written); the client's chat chain is not used."""
    source = tmp_path / "in.jsonl"
    emb_line = line(
        custom_id="e", url="/v1/embeddings", body={"model": "emb", "input": ["x"], "dimensions": 2}
    )
    source.write_text(
        line(custom_id="c", body={"model": "m", "messages": MSGS}) + "\n" + emb_line + "\n"
    )
    out = tmp_path / "out.jsonl"
    vectors = {
        "object": "list",
        "model": "emb",
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
        "data": [{"object": "embedding", "index": 0, "embedding": [0.6, 0.8]}],
    }
    transport = ScriptedTransport(
        [
            json_response(200, completion_body("hi")),
            json_response(500, {}),
            json_response(200, vectors),
        ]
    )
    client = cometsync.Client(
        api_key="k",
        transport=transport,
        clock=FakeClock(),
        max_workers=1,
        fallback_models=["chat-fallback"],
    )
    summary = run_batch(client, str(source), str(out))
    records = {r["custom_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert records["e"]["response"]["body"]["data"][0]["embedding"] == [0.6, 0.8]
    assert [a["decision"] for a in records["e"]["response"]["attempts"]] == ["retry", "success"]
    assert (
        transport.requests[1].url.endswith("/embeddings")
        and "chat-fallback" not in transport.models
    )
    assert transport.bodies[2] == {"model": "emb", "input": ["x"], "dimensions": 2}
    assert (summary.succeeded, summary.failed, summary.retries) == (2, 0, 1)
