"""The ``cometsync`` command, run as ``python -m cometsync`` subprocesses against the simulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from simulator import Simulator

pytestmark = pytest.mark.socket

KEY = "sk-cli-SECRET-0123456789"
PRICES = {
    "cheap": {"input": 1.0, "output": 2.0},
    "dear": {"input": 10.0, "output": 30.0},
}


def scenario(**models: Dict[str, Any]) -> Dict[str, Any]:
    base: Dict[str, Dict[str, Any]] = {
        "cheap": {"pricing": PRICES["cheap"], "provider": "Acme"},
        "dear": {"pricing": PRICES["dear"], "provider": "Other"},
    }
    for name, spec in models.items():
        base[name] = {**base.get(name, {}), **spec}
    return {"seed": 3, "models": base}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(scenario(), seed=3) as s:
        yield s


def env_for(sim: Optional[Simulator], key: Optional[str] = KEY) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMETAPI_")}
    if sim is not None:
        env["COMETAPI_BASE_URL"] = sim.base_url
    if key is not None:
        env["COMETAPI_KEY"] = key
    return env


def cli(
    *args: str, sim: Optional[Simulator], key: Optional[str] = KEY, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "cometsync", *args],
        env=env_for(sim, key),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert KEY not in proc.stdout + proc.stderr
    return proc


def request_line(custom_id: Optional[str], model: str = "cheap", text: str = "hi") -> str:
    line: Dict[str, Any] = {
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}]},
    }
    if custom_id is not None:
        line["custom_id"] = custom_id
    return json.dumps(line)


def read_output(path: Path) -> List[Dict[str, Any]]:
    text = path.read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


# -- models and estimate ----------------------------------------------------------------------


def test_models_lists_the_catalog_with_prices_without_a_key(sim: Simulator) -> None:
    """`models` prints every model with its prices, filters by provider, and needs no key."""
    table = cli("models", sim=sim, key=None)
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines()[1:-1]}
    assert set(rows) == {"cheap", "dear"}
    assert rows["dear"][1:5] == ["Other", rows["dear"][2], "10", "30"]
    filtered = cli("models", "--provider", "acme", "--json", sim=sim, key=None)
    assert [m["id"] for m in json.loads(filtered.stdout)] == ["cheap"]
    assert json.loads(filtered.stdout)[0]["pricing"]["output"] == 2.0


def test_estimate_prices_a_chain_and_flags_an_expensive_fallback(sim: Simulator) -> None:
    """`estimate` prices each model and the chain, marks unknown models and warns on cost."""
    text = cli(
        "estimate", "-m", "cheap", "-f", "dear", "-f", "ghost",
        "--prompt-tokens", "1000", "--completion-tokens", "500", sim=sim, key=None,
    )  # fmt: skip
    assert text.returncode == 0, text.stderr
    assert "warning: fallback dear costs over 3x the primary" in text.stdout
    assert "ghost" in text.stdout and "unknown" in text.stdout
    as_json = cli(
        "estimate", "-m", "cheap", "-f", "dear", "--prompt-tokens", "1000",
        "--completion-tokens", "500", "--json", sim=sim, key=None,
    )  # fmt: skip
    est = json.loads(as_json.stdout)
    cheap, dear = 1000 * 1.0 / 1e6 + 500 * 2.0 / 1e6, 1000 * 10.0 / 1e6 + 500 * 30.0 / 1e6
    assert est["primary"] == pytest.approx(cheap)
    assert est["worst_case"] == pytest.approx(cheap + dear)
    assert est["max_single"] == pytest.approx(dear)
    assert est["expensive_fallbacks"] == ["dear"]


# -- chat -------------------------------------------------------------------------------------


def test_chat_prints_the_answer_and_with_v_the_attempts_and_cost() -> None:
    """`chat` prints the answer; -v adds the fallback attempts and the answering model's cost."""
    with Simulator(scenario(cheap={"script": [503]}), seed=3) as sim:
        proc = cli(
            "chat", "hello", "-m", "cheap", "-f", "dear", "--max-retries", "0", "-v", sim=sim
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert "answered by dear; cost $" in proc.stderr
    assert "model=cheap status=503" in proc.stderr and "decision=fallback" in proc.stderr
    assert "model=dear status=200" in proc.stderr


def test_chat_reads_the_prompt_from_stdin_and_prints_json(sim: Simulator) -> None:
    """`chat -` reads stdin; --json prints the response body with cost and attempts."""
    proc = cli("chat", "-", "-m", "cheap", "--json", sim=sim, stdin="from stdin")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    usage = record["body"]["usage"]
    expected = usage["prompt_tokens"] * 1e-6 + usage["completion_tokens"] * 2e-6
    assert record["cost"] == pytest.approx(expected)
    assert [a["decision"] for a in record["attempts"]] == ["success"]


def test_chat_failure_and_missing_key_have_distinct_exit_codes(sim: Simulator) -> None:
    """A failed call exits 1 with the error class; no key exits 3 with a clear message."""
    failed = cli("chat", "hi", "-m", "no-such-model", sim=sim)
    assert failed.returncode == 1
    assert "NotFoundError" in failed.stderr
    missing = cli("chat", "hi", "-m", "cheap", sim=sim, key=None)
    assert missing.returncode == 3
    assert "no API key" in missing.stderr and "COMETAPI_KEY" in missing.stderr


def test_a_rejected_key_never_appears_in_any_output() -> None:
    """A key the server refuses is reported as a 401 without the key in stdout or stderr."""
    with Simulator(scenario(), seed=3, api_key="sk-the-right-one") as sim:
        proc = cli("chat", "hi", "-m", "cheap", "-v", "--api-key", KEY, sim=sim, key=None)
    assert proc.returncode == 1
    assert "AuthenticationError" in proc.stderr


def test_bad_usage_exits_2(sim: Simulator) -> None:
    """argparse errors and contradictory flags exit 2 with a message."""
    assert cli("batch", "in.jsonl", sim=sim).returncode == 2  # no -o
    assert cli("chat", "hi", sim=sim).returncode == 2  # no -m
    assert cli(sim=sim).returncode == 2
    both = cli("chat", "hi", "-m", "cheap", "--stream", "--json", sim=sim)
    assert both.returncode == 2
    assert "--stream and --json do not go together" in both.stderr


def test_chat_stream_prints_the_same_answer_and_falls_back_before_the_first_chunk() -> None:
    """--stream prints the answer the plain call gives; a 503 first falls back; -v prices it."""
    with Simulator(scenario(cheap={"script": [503]}), seed=3) as sim:
        args = ("chat", "hello", "-m", "cheap", "-f", "dear", "--max-retries", "0")
        streamed = cli(*args, "--stream", "-v", sim=sim)
        plain = cli("chat", "hello", "-m", "dear", sim=sim)
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout == plain.stdout and plain.stdout.strip()
    assert "model=cheap status=503" in streamed.stderr
    assert "answered by dear; cost $" in streamed.stderr
    assert "cost unknown" not in streamed.stderr


# -- batch ------------------------------------------------------------------------------------


def test_batch_writes_one_line_per_request_and_reports_bad_lines(
    sim: Simulator, tmp_path: Path
) -> None:
    """Good lines answer, malformed ones become error lines with their number, dupes are skipped."""
    source = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    source.write_text(
        "\n".join(
            [
                request_line("a"),
                "{not json",
                request_line("b", model="dear"),
                "",
                request_line("a"),
                request_line(None),
                json.dumps({"custom_id": "nomodel", "body": {"messages": []}}),
                request_line("missing", model="no-such-model"),
            ]
        )
        + "\n"
    )
    proc = cli("batch", str(source), "-o", str(out), "--workers", "3", sim=sim)
    assert proc.returncode == 4, proc.stderr
    records = {r["custom_id"]: r for r in read_output(out)}
    assert set(records) == {"a", "line-2", "b", "line-6", "nomodel", "missing"}
    assert records["a"]["response"]["body"]["choices"][0]["message"]["content"]
    assert records["a"]["error"] is None and records["a"]["response"]["cost"] > 0
    assert records["line-2"]["error"]["type"] == "invalid_input"
    assert records["line-2"]["error"]["line"] == 2
    assert "line 7: the body has no 'model'" in records["nomodel"]["error"]["message"]
    assert records["missing"]["error"]["type"] == "NotFoundError"
    assert records["missing"]["response"] is None
    assert "line 5: duplicate custom_id 'a'" in proc.stderr
    assert "3 succeeded, 4 failed" in proc.stderr
    assert "cost $" in proc.stderr


def test_batch_refuses_to_overwrite_results_without_resume(sim: Simulator, tmp_path: Path) -> None:
    """An output that already holds results is left untouched unless --resume is given."""
    source = tmp_path / "in.jsonl"
    source.write_text(request_line("a") + "\n")
    out = tmp_path / "out.jsonl"
    out.write_text('{"custom_id": "old", "response": null, "error": null}\n')
    proc = cli("batch", str(source), "-o", str(out), sim=sim)
    assert proc.returncode == 2
    assert "--resume" in proc.stderr
    assert out.read_text() == '{"custom_id": "old", "response": null, "error": null}\n'


def test_resume_drops_a_truncated_last_line_and_skips_finished_ids(
    sim: Simulator, tmp_path: Path
) -> None:
    """A partial last line (hard kill) is removed and rewritten; finished ids are not redone."""
    source = tmp_path / "in.jsonl"
    source.write_text("".join(request_line(c) + "\n" for c in ("a", "b", "c")))
    out = tmp_path / "out.jsonl"
    out.write_text(
        '{"custom_id": "a", "response": {"kept": true}, "error": null}\n{"custom_id": "b", "resp'
    )
    proc = cli("batch", str(source), "-o", str(out), "--resume", "--no-progress", sim=sim)
    assert proc.returncode == 0, proc.stderr
    records = read_output(out)
    assert records[0]["custom_id"] == "a"
    assert sorted(r["custom_id"] for r in records) == ["a", "b", "c"]
    assert records[0]["response"] == {"kept": True}
    assert "last line was incomplete" in proc.stderr


def test_interrupted_batch_keeps_finished_lines_and_resumes_exactly_once(tmp_path: Path) -> None:
    """SIGINT stops the batch with 130 and complete lines; --resume finishes every id once."""
    ids = [f"req-{i:03d}" for i in range(80)]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(request_line(c) + "\n" for c in ids))
    out = tmp_path / "out.jsonl"
    with Simulator(scenario(cheap={"latency_ms": 50}), seed=3) as sim:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cometsync", "batch", str(source), "-o", str(out),
             "--workers", "2"],
            env=env_for(sim),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if out.exists() and out.read_text().count("\n") >= 3:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=10)
        assert proc.returncode == 130, stderr
        assert "--resume" in stderr
        first = read_output(out)
        assert 3 <= len(first) < len(ids)
        assert all(r["error"] is None for r in first)

        resumed = cli("batch", str(source), "-o", str(out), "--workers", "8", "--resume", sim=sim)
    assert resumed.returncode == 0, resumed.stderr
    final = [r["custom_id"] for r in read_output(out)]
    assert sorted(final) == ids
    assert f"{len(first)} lines were already in the output" in resumed.stderr


def test_batch_in_order_writes_lines_and_malformed_lines_in_input_order(
    sim: Simulator, tmp_path: Path
) -> None:
    """--in-order writes every line in its input slot, a malformed one included."""
    ids = [f"q{i:02d}" for i in range(20)]
    rows = [request_line(c) for c in ids]
    rows.insert(5, "{not json")
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out.jsonl"
    proc = cli("batch", str(source), "-o", str(out), "--in-order", "--no-progress", sim=sim)
    assert proc.returncode == 4, proc.stderr  # the malformed line is a failed line
    written = [r["custom_id"] for r in read_output(out)]
    assert written == [*ids[:5], "line-6", *ids[5:]]


def test_batch_runs_without_tqdm_after_a_one_line_note(sim: Simulator, tmp_path: Path) -> None:
    """With tqdm missing the batch still runs; stderr says how to get a progress bar."""
    source = tmp_path / "in.jsonl"
    source.write_text(request_line("a") + "\n")
    out = tmp_path / "out.jsonl"
    code = (
        "import sys; sys.modules['tqdm'] = None; "
        "from cometsync.__main__ import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "batch", str(source), "-o", str(out)],
        env=env_for(sim),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "no progress bar: install cometsync[cli]" in proc.stderr
    assert [r["custom_id"] for r in read_output(out)] == ["a"]


# -- fixes from the cold-start review ---------------------------------------------------------


def test_batch_output_in_a_missing_directory_is_a_usage_error_before_any_request(
    sim: Simulator, tmp_path: Path
) -> None:
    """An unwritable output exits 2 with one 'cannot write' line, and nothing is sent."""
    source = tmp_path / "in.jsonl"
    source.write_text(request_line("a") + "\n")
    out = tmp_path / "missing" / "out.jsonl"
    proc = cli("batch", str(source), "-o", str(out), "-m", "cheap", sim=sim)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"cometsync: cannot write {out}: ")
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert sim.journal() == []


def test_batch_line_the_client_refuses_is_an_invalid_input_line(
    sim: Simulator, tmp_path: Path
) -> None:
    """A body the client refuses before sending is an invalid_input line; the rest still run."""
    source = tmp_path / "in.jsonl"
    bad = {"custom_id": "bad", "body": {"model": "cheap", "messages": "hi"}}
    source.write_text(request_line("a") + "\n" + json.dumps(bad) + "\n" + request_line("b") + "\n")
    out = tmp_path / "out.jsonl"
    proc = cli("batch", str(source), "-o", str(out), "--no-progress", sim=sim)
    assert proc.returncode == 4, proc.stderr
    records = {r["custom_id"]: r for r in read_output(out)}
    assert records["bad"]["error"]["type"] == "invalid_input"
    assert records["bad"]["error"]["line"] == 2
    assert records["bad"]["error"]["message"].startswith("line 2: invalid request: ")
    assert "line 2: invalid request: " in proc.stderr
    assert records["a"]["error"] is None and records["b"]["error"] is None
    assert "2 succeeded, 1 failed (invalid_input: 1)" in proc.stderr


def _wait_for_request(sim: Simulator, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 10
    while not any(r["route"] == "/v1/chat/completions" for r in sim.journal()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)


@pytest.mark.parametrize("stream", [False, True])
def test_ctrl_c_during_chat_prints_one_line_and_exits_130(stream: bool) -> None:
    """SIGINT while a chat call waits exits 130 with one short stderr line, no traceback."""
    slow = {"latency_ms": 5000, "ttft_ms": 5000}
    with Simulator(scenario(cheap=slow), seed=3) as sim:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cometsync", "chat", "hi", "-m", "cheap"]
            + (["--stream"] if stream else []),
            env=env_for(sim),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for_request(sim, proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 130, stderr
    assert stderr == "cometsync: interrupted\n"


def test_a_closed_stdout_pipe_exits_141_without_a_traceback(sim: Simulator) -> None:
    """`models --json | head -c 300`: the reader leaves early; no traceback, exit 141."""
    # Well over a pipe's 64 KiB buffer, so the writer is still writing when the reader leaves.
    wide = {"pricing": PRICES["cheap"], "provider": "P" * 2000}
    many = {f"model-{i:03d}": wide for i in range(90)}
    with Simulator(scenario(**many), seed=3) as big:
        with subprocess.Popen(
            [sys.executable, "-m", "cometsync", "models", "--json"],
            env=env_for(big, key=None),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            head = proc.stdout.read(300)
            proc.stdout.close()
            stderr = proc.stderr.read().decode()
            proc.wait(timeout=10)
    assert len(head) == 300
    assert proc.returncode == 141, stderr
    assert stderr == ""


def test_resume_with_nothing_left_says_so_without_a_progress_bar(
    sim: Simulator, tmp_path: Path
) -> None:
    """--resume on a finished output prints one 'nothing to do' line and no empty bar."""
    source = tmp_path / "in.jsonl"
    source.write_text(request_line("a") + "\n" + request_line("b") + "\n")
    out = tmp_path / "out.jsonl"
    assert cli("batch", str(source), "-o", str(out), sim=sim).returncode == 0
    before = out.read_text()
    again = cli("batch", str(source), "-o", str(out), "--resume", sim=sim)
    assert again.returncode == 0, again.stderr
    assert again.stderr == f"nothing to do: all 2 custom_ids of {source} are already in {out}\n"
    assert out.read_text() == before


def test_a_model_the_catalog_does_not_price_costs_unknown_not_zero(tmp_path: Path) -> None:
    """Without a price in the scenario, chat -v and batch report the cost unknown, never $0."""
    with Simulator(scenario(unpriced={}), seed=3) as sim:
        chat = cli("chat", "hi", "-m", "unpriced", "-v", sim=sim)
        source = tmp_path / "in.jsonl"
        source.write_text(request_line("a", model="unpriced") + "\n")
        out = tmp_path / "out.jsonl"
        batch = cli("batch", str(source), "-o", str(out), "--no-progress", sim=sim)
    assert chat.returncode == 0, chat.stderr
    assert "answered by unpriced; cost unknown" in chat.stderr
    assert batch.returncode == 0, batch.stderr
    assert "cost unknown for 1 successful requests" in batch.stderr
    assert "$0.000000" not in batch.stderr
    assert read_output(out)[0]["response"]["cost"] is None


def test_batch_embeds_embedding_lines_beside_chat_lines(tmp_path: Path) -> None:
    """`cometsync batch` runs /v1/embeddings lines too: vectors as floats, priced by input."""
    vec = {"model_type": "embedding", "dimensions": 4, "pricing": {"input": 0.02}}
    source = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    embed = {
        "custom_id": "e",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "vec", "input": ["one", "two"], "encoding_format": "base64"},
    }
    empty = {"custom_id": "bad", "url": "/v1/embeddings", "body": {"model": "vec", "input": ""}}
    source.write_text("\n".join([request_line("c"), json.dumps(embed), json.dumps(empty)]) + "\n")
    with Simulator(scenario(vec=vec), seed=3) as sim:
        proc = cli("batch", str(source), "-o", str(out), "-f", "dear", "--no-progress", sim=sim)
    assert proc.returncode == 4, proc.stderr  # the empty input failed
    records = {r["custom_id"]: r for r in read_output(out)}
    vectors = [d["embedding"] for d in records["e"]["response"]["body"]["data"]]
    assert [len(v) for v in vectors] == [4, 4] and all(isinstance(x, float) for x in vectors[0])
    assert records["e"]["response"]["cost"] > 0
    assert records["bad"]["error"]["type"] == "invalid_input"
    assert records["c"]["response"]["body"]["choices"][0]["message"]["content"]
    assert "2 succeeded, 1 failed" in proc.stderr
