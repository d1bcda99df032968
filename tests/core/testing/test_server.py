"""metallm.testing: the local OpenAI-compatible server speaks the protocol real clients expect."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from metallm.evaluation._datasets import load_routing_table
from metallm.testing import OpenAICompatibleServer, ScriptedModel, count_tokens, openai_server


def _post(server, body, timeout=5.0):
    request = urllib.request.Request(
        f"{server.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.headers.get("Content-Type"), response.read().decode()


def _events(text):
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


def test_json_answer_with_real_token_counts():
    with OpenAICompatibleServer({"m": ScriptedModel(reply="Hello, world!")}) as server:
        status, kind, text = _post(
            server, {"model": "m", "messages": [{"role": "user", "content": "Say hi, please."}]}
        )
    body = json.loads(text)
    assert (status, kind) == (200, "application/json")
    assert body["choices"][0]["message"]["content"] == "Hello, world!"
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
    assert count_tokens("Hello, world!") == 4


def test_sse_stream_with_usage_only_when_asked():
    with OpenAICompatibleServer({"m": ScriptedModel(reply="one two three")}) as server:
        _, kind, plain = _post(
            server, {"model": "m", "stream": True, "messages": [{"role": "user", "content": "go"}]}
        )
        _, _, with_usage = _post(
            server,
            {
                "model": "m",
                "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "go"}],
            },
        )
    assert kind == "text/event-stream"
    events = _events(plain)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert (
        "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        == "one two three"
    )
    assert all("usage" not in c for c in chunks)
    last = json.loads(_events(with_usage)[-2])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 3


def test_tool_calls_follow_the_requested_schema_and_stop_after_the_tool_result():
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                },
            },
        }
    ]
    with OpenAICompatibleServer(
        {"m": ScriptedModel(reply="It is sunny.", tool_args="schema")}
    ) as server:
        _, _, text = _post(
            server,
            {
                "model": "m",
                "tools": tools,
                "messages": [{"role": "user", "content": "Weather in 'Porto'?"}],
            },
        )
        _, _, after = _post(
            server,
            {
                "model": "m",
                "tools": tools,
                "messages": [
                    {"role": "user", "content": "Weather in 'Porto'?"},
                    {"role": "tool", "content": "sunny", "tool_call_id": "1"},
                ],
            },
        )
    call = json.loads(text)["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"city": "Porto", "days": 3}
    assert json.loads(after)["choices"][0]["message"]["content"] == "It is sunny."


@pytest.mark.parametrize("status", [429, 500, 503])
def test_scripted_http_errors(status):
    with OpenAICompatibleServer({"m": ScriptedModel(fail_status=status, fail_first=1)}) as server:
        with pytest.raises(urllib.error.HTTPError) as info:
            _post(server, {"model": "m", "messages": [{"role": "user", "content": "x"}]})
        assert info.value.code == status
        assert (
            _post(server, {"model": "m", "messages": [{"role": "user", "content": "x"}]})[0] == 200
        )  # recovered


def test_unknown_model_is_404_and_malformed_bodies_and_latency():
    with OpenAICompatibleServer(
        {"bad": ScriptedModel(malformed=True), "slow": ScriptedModel(latency=0.3)}
    ) as server:
        with pytest.raises(urllib.error.HTTPError) as info:
            _post(server, {"model": "nope", "messages": []})
        assert info.value.code == 404
        with pytest.raises(json.JSONDecodeError):
            json.loads(_post(server, {"model": "bad", "messages": []})[2])
        start = time.perf_counter()
        _post(server, {"model": "slow", "messages": [{"role": "user", "content": "x"}]})
        assert time.perf_counter() - start >= 0.3
        with pytest.raises(TimeoutError):
            _post(
                server,
                {"model": "slow", "messages": [{"role": "user", "content": "x"}]},
                timeout=0.05,
            )


def test_replies_from_a_routing_table(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text(
        "prompt,task,gpt-4,j1-large,gpt-4|total_cost,j1-large|total_cost\n"
        "Is this overruling? Yes or no.,overruling,1,0,0.009,0.0001\n"
        "Does this sentence overrule a case?,overruling,0,1,0.009,0.0001\n"
        "Overruled or not?,overruling,0.5,1,0.009,0.0001\n"
    )
    table = load_routing_table(path)
    model = ScriptedModel.from_table(table, "gpt-4")
    answers = [model.answer(prompt) for prompt in table.prompts]
    assert answers == ["correct", "wrong", "correct"]  # quality >= 0.5 is right


def test_the_fixture_helper_starts_and_stops():
    gen = openai_server({"m": ScriptedModel()})
    server = next(gen)
    url = server.base_url
    assert url.startswith("http://127.0.0.1:")
    with pytest.raises(StopIteration):
        next(gen)
    with pytest.raises(RuntimeError, match="not running"):
        server.base_url  # noqa: B018
