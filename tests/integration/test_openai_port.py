"""An openai-python script, ported by changing its import and its client's construction only.

The script uses what openai users reach for daily (chat, a tool call, streaming, models list
and retrieve, a raw response, embeddings, model_dump). It runs against the simulator's socket
server; when the official ``openai`` package is installed, the original runs too and both
give the same answers.
"""

from __future__ import annotations

import difflib
from typing import Any, Dict

import pytest

from simulator import Simulator

ORIGINAL = """
import json
from openai import OpenAI, NotFoundError
client = OpenAI(base_url=BASE_URL, api_key="sk-port-test", max_retries=2)

out = {}
completion = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
    temperature=0,
)
message = completion.choices[0].message
out["text"] = message.content
out["finish"] = completion.choices[0].finish_reason
out["usage"] = [completion.usage.prompt_tokens, completion.usage.total_tokens]
out["details"] = completion.usage.completion_tokens_details
out["refusal"] = message.refusal
out["logprobs"] = completion.choices[0].logprobs
out["dump"] = completion.model_dump(exclude_none=True)
out["json"] = json.loads(completion.model_dump_json())
out["request_id"] = completion._request_id

tools = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}]
messages = [{"role": "user", "content": "What is the weather in Paris?"}]
first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
call = first.choices[0].message.tool_calls[0]
args = json.loads(call.function.arguments)
messages.append(first.choices[0].message)
messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 21})})
final = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
out["tool"] = [first.choices[0].finish_reason, call.type, call.function.name, sorted(args),
               final.choices[0].finish_reason, final.choices[0].message.content]

stream = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Count to five"}],
    stream=True,
    stream_options={"include_usage": True},
)
parts = []
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        parts.append(chunk.choices[0].delta.content)
    if chunk.usage:
        out["stream_usage"] = chunk.usage.total_tokens
out["stream_text"] = "".join(parts)

stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages[:1], tools=tools,
                                        stream=True)
name, pieces = None, []
for chunk in stream:
    for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
        name = delta.function.name or name
        pieces.append(delta.function.arguments or "")
out["stream_tool"] = [name, json.loads("".join(pieces)) == args]

out["models"] = sorted(m.id for m in client.models.list())
out["models_data"] = len(client.models.list().data)
model = client.models.retrieve("gpt-4o-mini")
out["model"] = [model.id, model.object, model.owned_by]
try:
    client.models.retrieve("no-such-model")
except NotFoundError as exc:
    out["missing"] = exc.status_code

raw = client.chat.completions.with_raw_response.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
)
out["raw"] = [raw.status_code, raw.http_request.method,
              str(raw.http_request.url).endswith("/v1/chat/completions"),
              raw.headers.get("x-request-id") is not None,
              raw.headers["content-type"].startswith("application/json")]
out["raw_text"] = raw.parse().choices[0].message.content

docs = ["The cat sat on the mat.", "Dogs bark."]
embedded = client.embeddings.create(model="text-embedding-3-small", input=docs)
vector = embedded.data[0].embedding
norm = round(sum(x * x for x in vector), 4)
out["embeddings"] = [len(embedded.data), len(vector), [d.index for d in embedded.data],
                     embedded.model, embedded.usage.prompt_tokens, norm]
again = client.embeddings.create(model="text-embedding-3-small", input=docs[0], dimensions=256)
out["dimensions"] = len(again.data[0].embedding)
out["vector_head"] = [round(x, 6) for x in vector[:4]]
"""

PORTED = ORIGINAL.replace(
    "from openai import OpenAI, NotFoundError", "from cometsync import Client, NotFoundError"
).replace(
    'client = OpenAI(base_url=BASE_URL, api_key="sk-port-test", max_retries=2)',
    'client = Client(base_url=BASE_URL, api_key="sk-port-test", max_retries=2)',
)


def _run(source: str, base_url: str) -> Dict[str, Any]:
    namespace: Dict[str, Any] = {"BASE_URL": base_url}
    exec(compile(source, "<openai script>", "exec"), namespace)  # our own script text
    namespace["client"].close()
    out: Dict[str, Any] = namespace["out"]
    return out


def test_the_port_changes_the_import_and_the_construction_only() -> None:
    """The ported script differs from the original in exactly two lines."""
    changed = [
        line
        for line in difflib.unified_diff(ORIGINAL.splitlines(), PORTED.splitlines(), lineterm="")
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]
    assert len(changed) == 4  # two lines out, two lines in
    assert all("OpenAI" in line for line in changed if line.startswith("-"))


def test_the_ported_script_runs_against_the_simulator() -> None:
    """Chat, a tool call, streaming, models, a raw response and embeddings all work."""
    with Simulator("healthy", seed=11) as sim:
        out = _run(PORTED, sim.base_url)
    assert out["text"] and out["finish"] == "stop" and out["details"] is None
    assert out["refusal"] is None and out["logprobs"] is None
    assert out["json"]["choices"][0]["message"]["refusal"] is None  # declared, sent null
    assert "refusal" not in out["dump"]["choices"][0]["message"]  # exclude_none dropped it
    assert out["dump"]["choices"][0]["message"]["content"] == out["text"]
    assert out["request_id"]
    assert out["tool"][:3] == ["tool_calls", "function", "get_weather"]
    assert out["tool"][3] == ["city"] and out["tool"][4] == "stop" and out["tool"][5]
    assert out["stream_text"] and out["stream_usage"] > 0
    assert out["stream_tool"] == ["get_weather", True]
    assert "gpt-4o-mini" in out["models"] and "text-embedding-3-small" in out["models"]
    assert out["models_data"] == len(out["models"])
    assert out["model"] == ["gpt-4o-mini", "model", "openai"] and out["missing"] == 404
    assert out["raw"] == [200, "POST", True, True, True] and out["raw_text"]
    assert out["embeddings"][:5] == [2, 1536, [0, 1], "text-embedding-3-small", 9]
    assert out["embeddings"][5] == pytest.approx(1.0, abs=1e-3) and out["dimensions"] == 256


def test_the_original_gives_the_same_answers_with_openai_python() -> None:
    """The same simulator answers the official SDK and cometsync alike, field for field."""
    pytest.importorskip("openai")
    with Simulator("healthy", seed=11) as sim:
        theirs = _run(ORIGINAL, sim.base_url)
    with Simulator("healthy", seed=11) as sim:
        ours = _run(PORTED, sim.base_url)
    assert ours == theirs
