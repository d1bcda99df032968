"""Small deterministic chat models for the LangChain tests: real BaseChatModels, no network."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool


class ScriptedChatModel(BaseChatModel):
    """Answers ``reply``; reports usage as words in / words out; streams word by word.

    With tools bound it answers with a call to the first tool using ``tool_args``.
    ``fail_with`` makes every call raise that exception (a provider error).
    """

    reply: str = "ok"
    model_id: str = "scripted-model"
    """Reported as ``response_metadata["model_name"]``, as real providers do."""
    tool_args: dict[str, Any] = {}
    fail_with: Exception | None = None
    calls: list[dict[str, Any]] = []

    model_config = {"arbitrary_types_allowed": True}

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Any:
        return self.bind(
            tools=[convert_to_openai_tool(t) for t in tools], tool_choice=tool_choice, **kwargs
        )

    def _answer(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        self.calls.append({"messages": messages, **kwargs})
        if self.fail_with is not None:
            raise self.fail_with
        words_in = sum(len(m.text.split()) for m in messages)
        usage = UsageMetadata(
            input_tokens=words_in,
            output_tokens=len(self.reply.split()),
            total_tokens=words_in + len(self.reply.split()),
        )
        tools = kwargs.get("tools")
        if tools:
            call = {
                "name": tools[0]["function"]["name"],
                "args": dict(self.tool_args),
                "id": "call_1",
            }
            return AIMessage(
                content="",
                tool_calls=[call],
                usage_metadata=usage,
                response_metadata={"model_name": self.model_id},
            )
        return AIMessage(
            content=self.reply,
            usage_metadata=usage,
            response_metadata={"model_name": self.model_id},
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages, kwargs))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages, kwargs))])

    def _chunks(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> list[AIMessageChunk]:
        answer = self._answer(messages, kwargs)
        if answer.tool_calls:
            call = answer.tool_calls[0]
            import json

            return [
                AIMessageChunk(
                    content="",
                    usage_metadata=answer.usage_metadata,
                    response_metadata={"model_name": self.model_id},
                    tool_call_chunks=[
                        {
                            "name": call["name"],
                            "args": json.dumps(call["args"]),
                            "id": call["id"],
                            "index": 0,
                        }
                    ],
                )
            ]
        words = self.reply.split(" ")
        chunks = [AIMessageChunk(content=w if i == 0 else " " + w) for i, w in enumerate(words)]
        chunks[0].response_metadata["model_name"] = self.model_id
        chunks.append(AIMessageChunk(content="", usage_metadata=answer.usage_metadata))
        return chunks

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages, kwargs):
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages, kwargs):
            yield ChatGenerationChunk(message=chunk)
