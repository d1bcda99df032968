"""A local OpenAI-compatible server whose models the test scripts.

``OpenAICompatibleServer`` answers ``POST /v1/chat/completions`` (JSON, or SSE when
``stream`` is true, with usage on the last chunk when ``stream_options.include_usage`` is
set) on 127.0.0.1 and a free port. Each model's behaviour is scripted by the test: fixed
or computed replies, tool calls, latency, HTTP errors, timeouts and malformed bodies.
Real clients (``ChatOpenAI(base_url=server.base_url)``, LlamaIndex ``OpenAILike``) talk
real HTTP to it. Standard library only.

>>> from metallm.testing import OpenAICompatibleServer, ScriptedModel
>>> with OpenAICompatibleServer({"echo": ScriptedModel(reply=lambda prompt: prompt)}) as server:
...     server.base_url.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metallm.evaluation import RoutingTable

__all__ = ["OpenAICompatibleServer", "ScriptedModel", "count_tokens", "openai_server"]

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """The server's token count: words and punctuation marks (deterministic, offline).

    Args:
        text: The text.
    """
    return len(_TOKEN.findall(text))


Reply = str | Callable[[str], str]


@dataclass
class ScriptedModel:
    """How one model name behaves on the local server.

    Args:
        reply: The answer text, or a function of the last user message's text.
        tool_args: Arguments of the tool call made when the request carries tools (and the
            JSON of the answer when it asks for a ``response_format``): a dict,
            a function of the prompt, or ``"schema"`` to fill the requested tool's JSON
            schema (strings take the first quoted phrase of the prompt, else "test";
            integers 3). None: answer with text even then.
        latency: Seconds to wait before answering (and between streamed chunks / 10).
        fail_status: Answer every request with this HTTP status (e.g. 429, 500).
        fail_first: Only the first N requests fail (then the model recovers).
        malformed: Answer 200 with a body that is not valid JSON.
        stream_fail_after: When streaming, fail after this many chunks: an error event
            (as real providers send mid-stream) and the connection closes.
        cached_tokens: Input tokens reported as read from the provider's prompt cache
            (``usage.prompt_tokens_details.cached_tokens``, at most the prompt's tokens).
    """

    reply: Reply = "ok"
    tool_args: dict[str, Any] | Callable[[str], dict[str, Any]] | str | None = None
    latency: float = 0.0
    fail_status: int | None = None
    fail_first: int | None = None
    malformed: bool = False
    stream_fail_after: int | None = None
    cached_tokens: int = 0
    requests: int = field(default=0, init=False)

    def answer(self, prompt: str) -> str:
        """The reply to ``prompt``: fixed, or computed from it.

        Args:
            prompt: The last user message's text.
        """
        return self.reply(prompt) if callable(self.reply) else self.reply

    def arguments(self, prompt: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        """Tool-call arguments for ``prompt``: scripted, or filled from the schema.

        Args:
            prompt: The last user message's text.
            schema: The tool's JSON schema.
        """
        if self.tool_args is None:
            return None
        if self.tool_args == "schema":
            return _fill_schema(schema, prompt)
        if callable(self.tool_args):
            return self.tool_args(prompt)
        if isinstance(self.tool_args, dict):
            return dict(self.tool_args)
        raise ValueError(
            f"tool_args must be a dict, a function or 'schema', got {self.tool_args!r}"
        )

    @classmethod
    def from_table(
        cls,
        table: RoutingTable,
        model: str,
        *,
        right: str = "correct",
        wrong: str = "wrong",
        **kwargs: Any,
    ) -> ScriptedModel:
        """A model that answers each prompt of a routing table as it really did.

        It replies ``right`` where its logged quality is at least 0.5, else ``wrong`` (also for
        unknown prompts).
        """
        column = table.models.index(model)
        outcome = {p: float(q) for p, q in zip(table.prompts, table.quality[:, column])}
        return cls(
            reply=lambda prompt: right if outcome.get(prompt, 0.0) >= 0.5 else wrong, **kwargs
        )


def _prompt_text(messages: list[dict[str, Any]]) -> str:
    """The last user message's text (content string or text parts)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content") or ""
            if isinstance(content, list):
                return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
            return str(content)
    return ""


def _all_text(messages: list[dict[str, Any]]) -> str:
    parts = []
    for message in messages:
        content = message.get("content") or ""
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        parts.append(str(content))
    return "\n".join(parts)


class OpenAICompatibleServer:
    """A scripted OpenAI-compatible chat server on 127.0.0.1; a context manager.

    Unknown model names answer 404 like the real API, unless ``default`` is given.
    ``requests`` logs every request body received, for assertions.

    Args:
        models: The scripted models by name.
        default: The model any other name gets (None: 404).
        host: The address to listen on.
    """

    def __init__(
        self,
        models: Mapping[str, ScriptedModel] | None = None,
        *,
        default: ScriptedModel | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.models: dict[str, ScriptedModel] = dict(models or {})
        self.default = default
        self.host = host
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: pass it as ``base_url`` / ``api_base``."""
        if self._server is None:
            raise RuntimeError(
                "the server is not running: use it as a context manager or call start()"
            )
        return f"http://{self.host}:{self._server.server_address[1]}/v1"

    def start(self) -> OpenAICompatibleServer:
        """Start serving on 127.0.0.1 and a free port (a daemon thread)."""
        handler = _make_handler(self)
        self._server = _QuietServer((self.host, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metallm-openai-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OpenAICompatibleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script_for(self, name: str) -> ScriptedModel | None:
        """The scripted model of that name, if any.

        Args:
            name: The model's name.
        """
        return self.models.get(name, self.default)

    def _log(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(body)


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up (a timeout test, a cut stream) is expected, not an error."""

    request_queue_size = 512  # listen backlog: hundreds of concurrent clients connect at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def _make_handler(server: OpenAICompatibleServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # the client's delayed ACK add about 40 ms to every response.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send_json(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str, kind: str) -> None:
            self._send_json(status, {"error": {"message": message, "type": kind, "code": status}})

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/").endswith("/models"):
                self._send_json(
                    200,
                    {
                        "object": "list",
                        "data": [
                            {"id": name, "object": "model", "owned_by": "metallm-testing"}
                            for name in server.models
                        ],
                    },
                )
            else:
                self._error(404, f"no route {self.path}", "invalid_request_error")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._error(400, "the request body is not JSON", "invalid_request_error")
                return
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._error(404, f"no route {self.path}", "invalid_request_error")
                return
            server._log(body)
            name = str(body.get("model", ""))
            script = server.script_for(name)
            if script is None:
                self._error(404, f"The model `{name}` does not exist", "invalid_request_error")
                return
            with server._lock:
                script.requests += 1
                attempt = script.requests
            if script.latency:
                time.sleep(script.latency)
            failing = script.fail_first is None or attempt <= script.fail_first
            if script.fail_status is not None and failing:
                kind = "rate_limit_error" if script.fail_status == 429 else "server_error"
                self._error(script.fail_status, f"scripted failure {script.fail_status}", kind)
                return
            if script.malformed and failing:
                raw = b"{this is not json"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
                return
            messages = body.get("messages") or []
            prompt = _prompt_text(messages)
            prompt_tokens = count_tokens(_all_text(messages))
            tool_call = _tool_call(body, script, prompt)
            content = "" if tool_call else _formatted(body, script, prompt)
            completion_tokens = (
                count_tokens(content) if content else count_tokens(json.dumps(tool_call))
            )
            usage: dict[str, Any] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            if script.cached_tokens:
                cached = min(script.cached_tokens, prompt_tokens)
                usage["prompt_tokens_details"] = {"cached_tokens": cached}
            if body.get("stream"):
                self._stream(name, content, tool_call, usage, body, script)
            else:
                message: dict[str, Any] = {"role": "assistant", "content": content or None}
                if tool_call:
                    message["tool_calls"] = [tool_call]
                self._send_json(
                    200,
                    {
                        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": name,
                        "choices": [
                            {
                                "index": 0,
                                "message": message,
                                "finish_reason": "tool_calls" if tool_call else "stop",
                            }
                        ],
                        "usage": usage,
                    },
                )

        def _stream(
            self,
            name: str,
            content: str,
            tool_call: dict[str, Any] | None,
            usage: dict[str, int],
            body: dict[str, Any],
            script: ScriptedModel,
        ) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"

            def event(
                delta: dict[str, Any],
                finish: str | None = None,
                extra: dict[str, Any] | None = None,
            ) -> bytes:
                chunk = {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": name,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
                    if delta is not None
                    else [],
                }
                if extra:
                    chunk.update(extra)
                return f"data: {json.dumps(chunk)}\n\n".encode()

            events = [event({"role": "assistant", "content": ""})]
            if tool_call:
                events.append(event({"tool_calls": [{"index": 0, **tool_call}]}))
            else:
                events.extend(event({"content": piece}) for piece in _pieces(content))
            events.append(event({}, "tool_calls" if tool_call else "stop"))
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            if include_usage:
                events.append(event(None, extra={"choices": [], "usage": usage}))  # type: ignore[arg-type]
            for i, data in enumerate(events):
                if script.stream_fail_after is not None and i >= script.stream_fail_after:
                    error = {
                        "error": {
                            "message": "scripted mid-stream failure",
                            "type": "server_error",
                            "code": 500,
                        }
                    }
                    self.wfile.write(f"data: {json.dumps(error)}\n\n".encode())
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)
                self.wfile.flush()
                if script.latency:
                    time.sleep(script.latency / 10)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

    return Handler


def _pieces(text: str) -> Iterator[str]:
    """Stream a reply word by word, keeping the spaces."""
    for i, word in enumerate(text.split(" ")):
        yield word if i == 0 else " " + word


def _tool_call(body: dict[str, Any], script: ScriptedModel, prompt: str) -> dict[str, Any] | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    messages = body.get("messages") or []
    if not tools or choice == "none":
        return None
    if messages and messages[-1].get("role") == "tool" and choice in (None, "auto"):
        return None  # the tool's result is in: answer with text, as a real model would
    tool = tools[0]
    if isinstance(choice, dict):
        wanted = choice.get("function", {}).get("name")
        tool = next((t for t in tools if t["function"]["name"] == wanted), tool)
    name = tool["function"]["name"]
    args = script.arguments(prompt, tool["function"].get("parameters") or {})
    if args is None:
        return None
    return {
        "id": f"call_{uuid.uuid4().hex[:8]}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args)},
    }


def _formatted(body: dict[str, Any], script: ScriptedModel, prompt: str) -> str:
    """The reply, in the JSON a ``response_format`` asks for (filled from its schema)."""
    response_format = body.get("response_format") or {}
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        args = script.arguments(prompt, schema)
        return json.dumps(args if args is not None else {})
    if kind == "json_object":  # the schema is in the prompt: the keys it names in quotes
        keys = [k for k in (a or b for a, b in _QUOTED.findall(prompt)) if k.isidentifier()]
        if keys:
            return json.dumps(dict.fromkeys(keys, "test"))
        return json.dumps({"answer": script.answer(prompt)})
    return script.answer(prompt)


_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"")


def _fill_schema(schema: dict[str, Any], prompt: str) -> dict[str, Any]:
    """Arguments that satisfy a JSON schema of an object, as a scripted model would give."""
    quoted = _QUOTED.search(prompt)
    text = (quoted.group(1) or quoted.group(2)) if quoted else "test"
    defs = schema.get("$defs", {})

    def value(spec: dict[str, Any]) -> Any:
        if "$ref" in spec:
            spec = defs.get(spec["$ref"].split("/")[-1], {})
        if "enum" in spec:
            return spec["enum"][0]
        for option in spec.get("anyOf", []):
            if option.get("type") != "null":
                return value(option)
        kind = spec.get("type")
        if kind == "integer":
            return 3
        if kind == "number":
            return 3.0
        if kind == "boolean":
            return True
        if kind == "array":
            return [value(spec.get("items", {}))] if spec.get("items") else []
        if kind == "object":
            return {k: value(v) for k, v in spec.get("properties", {}).items()}
        return text

    return {k: value(v) for k, v in schema.get("properties", {}).items()}


def openai_server(
    models: Mapping[str, ScriptedModel] | None = None, **kwargs: Any
) -> Iterator[OpenAICompatibleServer]:
    """A running server for a pytest fixture to ``yield from``, given the scripted models.

    Args:
        models: The scripted models by name.
        kwargs: ``OpenAICompatibleServer``'s other arguments.
    """
    with OpenAICompatibleServer(models, **kwargs) as server:
        yield server
