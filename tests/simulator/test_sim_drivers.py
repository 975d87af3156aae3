"""The in-process adapter, the CLI, the pytest fixture, the demo, and fuzzing for 500s."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any, Dict, List

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import Core, Simulator, SimulatorAdapter

HEADERS = {"Authorization": "Bearer sk-adapter-0000"}
BODY: Dict[str, Any] = {"model": "m1", "messages": [{"role": "user", "content": "hello"}]}
URL = "http://sim.local/v1/chat/completions"


def mounted(adapter: SimulatorAdapter) -> requests.Session:
    session = requests.Session()
    session.mount("http://sim.local/", adapter)
    return session


class FakeSleep:
    """Records sleeps instead of sleeping, so delays are checked without waiting."""

    def __init__(self) -> None:
        self.calls: List[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def test_adapter_answers_in_process_with_the_same_fault_model() -> None:
    """A mounted adapter serves the script then completions, with no socket at all."""
    adapter = SimulatorAdapter(
        {"models": {"m1": {"script": [503, {"status": 429, "retry_after": 2}]}}}
    )
    s = mounted(adapter)
    statuses = [s.post(URL, json=BODY, headers=HEADERS).status_code for _ in range(3)]
    assert statuses == [503, 429, 200]
    r = s.post(URL, json=BODY, headers=HEADERS)
    assert r.json()["usage"]["total_tokens"] > 0
    assert [rec["status"] for rec in adapter.journal()] == [503, 429, 200, 200]


def test_adapter_and_socket_server_answer_identically_for_one_seed() -> None:
    """The same seed and requests give the same statuses and bodies in-process and over TCP."""
    scenario = {
        "models": {
            "m1": {"faults": [{"status": 503, "rate": 0.3}, {"fault": "malformed", "rate": 0.1}]}
        }
    }

    def collect(session: requests.Session, url: str) -> List[Any]:
        return [
            (r.status_code, r.content)
            for r in (
                session.post(
                    url,
                    json={**BODY, "messages": [{"role": "user", "content": str(i)}]},
                    headers=HEADERS,
                )
                for i in range(40)
            )
        ]

    in_process = collect(mounted(SimulatorAdapter(scenario, seed=8)), URL)
    with Simulator(scenario, seed=8) as sim, requests.Session() as s:
        over_tcp = collect(s, f"{sim.base_url}/chat/completions")
    assert in_process == over_tcp
    assert {status for status, _ in in_process} == {200, 503}


def test_adapter_sleeps_latency_and_raises_network_exceptions() -> None:
    """Latency goes through the injected sleep; reset, hang and truncate raise as over TCP."""
    sleep = FakeSleep()
    script = [{"fault": "reset"}, {"fault": "hang"}, {"fault": "truncate"}, 200]
    adapter = SimulatorAdapter(
        {"models": {"m1": {"latency_ms": 25, "script": script}}, "hang_s": 300}, sleep=sleep
    )
    s = mounted(adapter)
    with pytest.raises(requests.ConnectionError):
        s.post(URL, json=BODY, headers=HEADERS)
    with pytest.raises(requests.ReadTimeout):
        s.post(URL, json=BODY, headers=HEADERS, timeout=0.5)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        s.post(URL, json=BODY, headers=HEADERS)
    assert s.post(URL, json=BODY, headers=HEADERS).status_code == 200
    assert sleep.calls == [0.025, 0.025, 0.5, 0.025, 0.025]
    assert adapter.core.in_flight() == 0


def test_adapter_read_timeout_shorter_than_latency() -> None:
    """A read timeout below the latency raises ReadTimeout and journals no response."""
    adapter = SimulatorAdapter({"models": {"m1": {"latency_ms": 800}}}, sleep=FakeSleep())
    with pytest.raises(requests.ReadTimeout):
        mounted(adapter).post(URL, json=BODY, headers=HEADERS, timeout=(1, 0.1))
    assert adapter.journal()[0]["status"] is None


def test_adapter_streams_events_with_their_delays() -> None:
    """A streamed reply is read event by event, each after its token delay, ending [DONE]."""
    sleep = FakeSleep()
    adapter = SimulatorAdapter({"models": {"m1": {"token_ms": 3}}}, sleep=sleep)
    r = mounted(adapter).post(URL, json={**BODY, "stream": True}, headers=HEADERS, stream=True)
    lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == b"data: [DONE]" and len(lines) > 3
    assert sleep.calls and set(sleep.calls) == {0.003}
    assert adapter.core.in_flight() == 0


def test_simulator_adapter_shares_the_servers_core() -> None:
    """Simulator.adapter() answers from the same journal as the socket server."""
    with Simulator({"models": {"m1": {}}}) as sim:
        mounted(sim.adapter()).post(URL, json=BODY, headers=HEADERS)
        requests.post(f"{sim.base_url}/chat/completions", json=BODY, headers=HEADERS)
        assert [r["seq"] for r in sim.journal()] == [1, 2]


def test_cli_prints_the_url_first_and_exits_cleanly_on_sigterm() -> None:
    """``python -m simulator --port 0`` prints ``listening on http://...``, serves, exits 0."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "--port",
            "0",
            "--preset",
            "flaky",
            "--seed",
            "3",
            "--api-key",
            "sk-cli-secret-1234",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.split()[-1]
        r = requests.get(f"{url}/v1/models", headers={"Authorization": "Bearer sk-cli-secret-1234"})
        assert r.status_code == 200
        assert requests.get(f"{url}/v1/models", headers=HEADERS).status_code == 401
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "sk-cli-secret-1234" not in out + err


def test_cli_rejects_an_invalid_scenario_file(tmp_path: Any) -> None:
    """A bad scenario file exits 2 with the field path on stderr."""
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps({"models": {"m1": {"faults": [{"status": 503, "rate": 3}]}}}))
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "--port", "0", "--scenario", str(bad)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert proc.returncode == 2
    assert "models.m1.faults[0].rate" in proc.stderr


def test_comet_simulator_fixture_gives_a_running_simulator(comet_simulator: Simulator) -> None:
    """The pytest plugin's fixture is a running default simulator."""
    r = requests.get(f"{comet_simulator.base_url}/models", headers=HEADERS)
    assert "gpt-4o-mini" in [m["id"] for m in r.json()["data"]]


@pytest.mark.comet_simulator(scenario={"models": {"x1": {"script": [418]}}}, seed=5)
def test_comet_simulator_marker_sets_the_scenario(comet_simulator: Simulator) -> None:
    """The comet_simulator marker passes scenario and seed to the fixture."""
    assert comet_simulator.core.seed == 5
    r = requests.post(
        f"{comet_simulator.base_url}/chat/completions",
        json={**BODY, "model": "x1"},
        headers=HEADERS,
    )
    assert r.status_code == 418


def test_demo_runs_and_reports_both_sides() -> None:
    """The demo's numbers: every request accounted for, the journal agrees with the attempts."""
    pytest.importorskip("cometsync._client")
    from simulator import demo

    result = demo.run(requests=40, workers=4, seed=1)
    attempts = sum(len(a) for _, a in result["outcomes"])
    assert len(result["outcomes"]) == 40
    assert result["stats"]["total"] == attempts
    report = demo._report(result)
    assert "success rate" in report and "injected" in report
    assert "latency (server exchange)" in report and "queued (waited in client)" in report


_CORE = Core({"models": {"m1": {}}})
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_chatlike = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["m1", "zz", 3, None]),
        "messages": st.lists(
            st.fixed_dictionaries({"role": st.sampled_from(["user", "bot", 1]), "content": _json}),
            max_size=3,
        ),
    },
    optional={
        "stream": _json,
        "max_tokens": _json,
        "temperature": _json,
        "n": _json,
        "stream_options": _json,
    },
)


@settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    body=st.binary(max_size=200)
    | _json.map(lambda v: json.dumps(v).encode())
    | _chatlike.map(lambda v: json.dumps(v).encode()),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.sampled_from(
        [
            "/v1/chat/completions",
            "/v1/models",
            "/api/models?page=x",
            "/_sim/scenario",
            "/_sim/journal?since=a",
            "/x",
        ]
    ),
)
def test_no_input_makes_the_simulator_answer_500(body: bytes, method: str, path: str) -> None:
    """Random bytes and JSON on any route get a deliberate answer below 500."""
    reply = _CORE.handle(method, path, {"authorization": "Bearer k"}, body, 0.0)
    _CORE.finish(reply, 0.0)
    assert reply.status is not None and reply.status < 500
    json.loads(reply.body)
    _CORE.reset(0.0)
