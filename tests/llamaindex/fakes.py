"""Deterministic LlamaIndex LLMs for the tests (real CustomLLM subclasses, no network)."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.llms.types import (
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback


class ScriptedLLM(CustomLLM):
    """Answers ``reply``; usage as words in/out in ``additional_kwargs``; streams word by word.

    ``calls`` logs ("sync" | "async", prompt) so tests can see which path was taken.
    """

    reply: str = "ok"
    fail_with: Exception | None = None
    context_window: int = 4096
    num_output: int = 256
    chat_model: bool = True
    calls: list[tuple[str, str]] = []

    model_config = {"arbitrary_types_allowed": True}

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.num_output,
            is_chat_model=self.chat_model,
            model_name=f"scripted-{self.reply.split()[0]}",
        )

    def _response(self, prompt: str, mode: str) -> CompletionResponse:
        self.calls.append((mode, prompt))
        if self.fail_with is not None:
            raise self.fail_with
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(self.reply.split())}
        return CompletionResponse(text=self.reply, additional_kwargs=usage, raw={"usage": usage})

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self._response(prompt, "sync")

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return self._response(prompt, "async")

    def _pieces(self, prompt: str, mode: str) -> list[CompletionResponse]:
        final = self._response(prompt, mode)
        words = self.reply.split(" ")
        out, text = [], ""
        for i, word in enumerate(words):
            delta = word if i == 0 else " " + word
            text += delta
            last = i == len(words) - 1
            out.append(
                CompletionResponse(
                    text=text,
                    delta=delta,
                    additional_kwargs=final.additional_kwargs if last else {},
                    raw=final.raw if last else None,
                )
            )
        return out

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        yield from self._pieces(prompt, "sync")

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        pieces = self._pieces(prompt, "async")

        async def gen() -> CompletionResponseAsyncGen:
            for piece in pieces:
                yield piece

        return gen()
