"""MetaLLM: a LlamaIndex LLM that sends each call to one LLM of a pool.

The learning and the fallback loop live in the core (`metallm.Router.route`); this
module only translates LlamaIndex calls into one routed call and forwards to the chosen LLM.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import replace
from typing import Any, TypeVar

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection
from llama_index.core.tools.types import BaseTool
from llama_index_instrumentation import get_dispatcher

from metallm import ConfigurationError, Decision, Fallbacks, RoutedCall, Router
from metallm.integrations import (
    CONVERSATION,
    DEFAULT_SESSION_KEY,
    Capabilities,
    Needs,
    PoolMembers,
    check_capabilities,
    check_pool,
    check_prompt,
    conversation_id,
    pop_session,
    routing_text,
)
from metallm_llamaindex.capabilities import member_capabilities, prompt_needs, request_needs
from metallm_llamaindex.events import MetaLLMDecisionEvent
from metallm_llamaindex.runs import agent_run_session, span_roots

__all__ = ["MetaLLM"]

dispatcher = get_dispatcher(__name__)

_DECISION_KEY = "_metallm_decision_id"
_Response = TypeVar("_Response", ChatResponse, CompletionResponse)


class MetaLLM(FunctionCallingLLM):
    """A LlamaIndex LLM that routes each call to the pool member with the best answer for the money.

    It learns from feedback which member that is for which kind of query (MetaLLM, arXiv 2407.10834).

    .. code-block:: python

        from llama_index.core import Settings
        from llama_index.llms.openai_like import OpenAILike
        from metallm_llamaindex import MetaLLM

        llm = MetaLLM(
            llms={"mini": OpenAILike(model="gpt-4o-mini", is_chat_model=True),
                  "pro": OpenAILike(model="gpt-4o", is_chat_model=True)},
            prices={"mini": (0.15, 0.60), "pro": (2.50, 10.00)},  # USD per 1M in/out tokens
        )
        Settings.llm = llm
        response = llm.complete("What is the capital of France?")
        decision = response.additional_kwargs["metallm"]      # decision_id, model, cost_usd, ...
        llm.record_feedback(decision["decision_id"], quality=1.0)

    Every call (chat, complete, their streams and async twins, and tool calls, among the members
    that can call functions) routes, among the members that can serve it (``capabilities``). ``model="<name>"`` in a call forces a member.
    The members are used through private copies whose legacy callback managers are empty,
    so handlers on ``Settings.callback_manager`` see each call once, on the router.

    ``router=`` shares a `metallm.Router` (a store, a budget, ...); ``shadows=`` gives
    it shadow routers by name, which see every call and log the member they would have chosen
    without calling it (``metallm evaluate --log`` estimates them from the store's log).
    """

    prices: dict[str, tuple[float, ...]] = Field(
        default_factory=dict, description="USD per 1M input and output tokens per model."
    )
    record_errors: bool = Field(
        default=True,
        description="Record a provider error as quality 0 for the model that raised it.",
    )
    fallbacks: Fallbacks = Field(
        default_factory=Fallbacks,
        description="On a provider error, move on to the next-best model.",
    )
    warmup: bool = Field(
        default=True,
        description=(
            "Load the embedding model in a background thread at construction, so the first call "
            "does not wait for it. False (or METALLM_WARMUP=0) when workers are forked after "
            "construction: each then loads on first use."
        ),
    )
    capabilities: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description=(
            "Per member, what it can serve, over what its metadata says: e.g. "
            "{'mini': {'image_inputs': False}} (max_input_tokens, tool_calling, structured_output, "
            "image_inputs, pdf_inputs, audio_inputs). Members that cannot serve a request are left "
            "out of its routing, with the reason in the metadata's 'excluded'."
        ),
    )
    stick_to_run: bool = Field(
        default=True,
        description=(
            "Keep every LLM call of one run (a FunctionAgent or other agent workflow run, a query "
            "engine call) on the model its first call chose, unless that model fails or cannot "
            "serve a call. False routes every call on its own."
        ),
    )
    session_key: str | None = Field(
        default=None,
        description=(
            "Keep a conversation on one model: the name of the call option (e.g. chat(..., session_id=...)) "
            "or instrumentation tag holding the session, e.g. 'session_id'. None: every call routes."
        ),
    )

    _llms: dict[str, LLM] = PrivateAttr()
    _router: Router = PrivateAttr()
    _prepared: OrderedDict[str, Decision] = PrivateAttr()
    _member_capabilities: dict[str, Capabilities] = PrivateAttr()
    _price_sources: dict[str, str] = PrivateAttr(default_factory=dict)

    def __init__(
        self,
        llms: dict[str, LLM],
        prices: dict[str, tuple[float, ...]] | None = None,
        router: Router | None = None,
        shadows: dict[str, Router] | None = None,
        **kwargs: Any,
    ) -> None:
        for name, llm in llms.items() if isinstance(llms, Mapping) else ():
            if not isinstance(llm, LLM):
                raise ConfigurationError(
                    f"llms[{name!r}] must be a LlamaIndex LLM, got {type(llm).__name__} (a "
                    "LangChain chat model goes in metallm_langchain.ChatMetaLLM)"
                )
        super().__init__(prices=dict(prices or {}), **kwargs)
        sources: dict[str, str] = {}
        self.prices, router = check_pool(
            llms,
            self.prices,
            router,
            what="llms",
            warmup=self.warmup,
            shadows=shadows,
            price_refs={name: _price_ref(llm) for name, llm in llms.items()},
            price_sources=sources,
        )
        self._price_sources = sources
        self._llms = {name: _isolated(llm) for name, llm in llms.items()}
        self._router = router
        self._prepared = OrderedDict()
        self.capabilities = check_capabilities(list(llms), self.capabilities)
        self._member_capabilities = {
            name: member_capabilities(llm, self.capabilities.get(name))
            for name, llm in llms.items()
        }
        if self.stick_to_run:
            span_roots()  # tracked from now on: the runs that will call this LLM

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serialises this LLM under."""
        return "MetaLLM"

    @property
    def router(self) -> Router:
        """The shared learner."""
        return self._router

    @property
    def _members(self) -> PoolMembers[LLM]:
        """The members, their prices and capabilities, changed with the router's pool."""
        return PoolMembers(
            self._router,
            self._llms,
            self.prices,
            self.capabilities,
            self._member_capabilities,
            member_capabilities,
            self._price_sources,
        )

    @property
    def llms(self) -> dict[str, LLM]:
        """The pool, by name."""
        return dict(self._llms)

    @property
    def metadata(self) -> LLMMetadata:
        """What the pool can do: the smallest window and output; chat if every member chats.

        Function calling if any member can: tool calls go to those that can.
        """
        members = [llm.metadata for llm in self._llms.values()]
        return LLMMetadata(
            context_window=min(m.context_window for m in members),
            num_output=min(m.num_output for m in members),
            is_chat_model=all(m.is_chat_model for m in members),
            is_function_calling_model=any(
                c.tool_calling is not False for c in self._member_capabilities.values()
            ),
            model_name="metallm:" + ",".join(sorted(self._llms)),
        )

    def add_model(
        self,
        name: str,
        llm: LLM,
        *,
        price: tuple[float, float] | None = None,
        capabilities: dict[str, Any] | None = None,
    ) -> None:
        """Add a member at runtime (``price``: USD per 1M input and output tokens).

        The router learns it from nothing (teach it with ``router.partial_fit`` on a
        ``router.quiz``); with a store, every process sharing it sees the new model, and a
        process that has not added the member itself leaves it out of its routing.
        `ConfigurationError` when the name is already a member.
        """
        if not isinstance(llm, LLM):
            raise ConfigurationError(f"{name!r} must be a LlamaIndex LLM, got {type(llm).__name__}")
        self._members.add(
            name, _isolated(llm), price=price, capabilities=capabilities, price_ref=_price_ref(llm)
        )

    def onboard_model(
        self,
        name: str,
        llm: LLM,
        prompts: Sequence[str],
        evaluator: Callable[[str, str], float],
        *,
        n: int = 30,
        price: tuple[float, float] | None = None,
        capabilities: dict[str, Any] | None = None,
    ) -> list[float]:
        """Add a member and teach the router what it is worth from a short quiz.

        `add_model`, then ``router.quiz`` picks ``n`` of ``prompts`` (your traffic), the
        new model answers them (directly, not routed), ``evaluator(prompt, answer)`` grades each
        in [0, 1], and ``router.onboard`` learns the grades and costs. Returns the grades.
        """
        self.add_model(name, llm, price=price, capabilities=capabilities)
        member = self._llms[name]

        def ask(text: str) -> tuple[str, int | None, int | None]:
            response = member.complete(text)
            tokens = _usage(response) or (None, None, None)
            return response.text, tokens[0], tokens[1]

        return self._members.onboard(name, prompts, ask, evaluator, n=n)

    def remove_model(self, name: str) -> None:
        """Stop routing to a member (its provider retired it, say); the router keeps its history.

        `UnknownArmError` for a name not in the pool,
        `ConfigurationError` for the last member.
        """
        self._members.remove(name)

    def record_feedback(
        self,
        decision_id: str,
        *,
        quality: float,
        cost: float | None = None,
        source: str = "human",
    ) -> None:
        """Learn from the quality (in [0, 1]) of a routed answer; cost defaults to the measured one.

        A person's grade (the default source) replaces a judge's or a check's grade of the same
        answer (``Router.record``).

        Args:
            decision_id: The decision (``response.additional_kwargs["metallm"]["decision_id"]``).
            quality: The answer's quality in [0, 1].
            cost: USD (None: the cost measured when the model answered).
            source: Who graded it: ``"human"`` (the default), ``"check"`` or ``"judge"``.
        """
        self._router.record(decision_id, quality=quality, cost=cost, source=source)

    # -- routing ------------------------------------------------------------------------
    def _begin(
        self,
        text: str,
        kwargs: dict[str, Any],
        conversation: str | None = None,
        needs: Needs | None = None,
    ) -> RoutedCall:
        """Pop metallm's own call options and choose the first model."""
        force = kwargs.pop("model", None)
        session = pop_session(
            self.session_key,
            kwargs,
            _active_tags(),
            legacy_key=DEFAULT_SESSION_KEY,
            conversation=conversation
            if conversation is not None or self.session_key != CONVERSATION
            else conversation_id([("user", text)]),
        )
        if session is None and self.stick_to_run:
            session = agent_run_session()  # the run this call is a step of
        prepared = self._prepared.pop(kwargs.pop(_DECISION_KEY, None), None)
        if prepared is not None:
            # The tools were already formatted for this member: no fallback to another format.
            return self._router.route(
                text,
                decision=prepared,
                fallbacks=Fallbacks(enabled=False),
                record_errors=self.record_errors,
                prices=self.prices,
                needs=None if needs is None else replace(needs, tools=True),
                capabilities=self._member_capabilities,
            )
        routed = self._router.route(
            text,
            force=force,
            session=session,
            fallbacks=self.fallbacks,
            record_errors=self.record_errors,
            prices=self.prices,
            needs=needs,
            capabilities=self._member_capabilities,
            available=self._llms,
        )
        self._emit(routed.decision)
        return routed

    def _conversation(self, messages: Sequence[ChatMessage]) -> str | None:
        """The conversation's id, when the conversation is the session (else not computed)."""
        if self.session_key != CONVERSATION:
            return None
        return conversation_id((str(m.role.value), str(m.content or "")) for m in messages)

    def _emit(self, decision: Decision) -> None:
        dispatcher.event(
            MetaLLMDecisionEvent(decision={**decision.to_metadata(), "router_id": self._router.id})
        )

    def _member(self, routed: RoutedCall) -> Callable[[Decision], LLM]:
        """The member for each decision tried; a fallback's decision is announced as it is tried."""
        first = routed.decision.id

        def member(decision: Decision) -> LLM:
            if decision.id != first:
                self._emit(decision)
            return self._llms[decision.arm]

        return member

    def _annotate(
        self, response: _Response, routed: RoutedCall, *, final: bool = True
    ) -> _Response:
        if final:
            usage = _usage(response) or (None, None, None)
            meta = routed.succeeded(*usage)
            meta["price_source"] = self._price_sources.get(routed.decision.arm)
        else:
            meta = routed.metadata(None)
        annotated = response.model_copy()
        annotated.additional_kwargs = {**response.additional_kwargs, "metallm": meta}
        if annotated.raw is None or isinstance(annotated.raw, dict):
            annotated.raw = {**(annotated.raw or {}), "metallm": meta}
        return annotated

    def _run(
        self,
        text: str,
        kwargs: dict[str, Any],
        call: Callable[[LLM], _Response],
        conversation: str | None = None,
        needs: Needs | None = None,
    ) -> _Response:
        routed = self._begin(text, kwargs, conversation, needs)
        member = self._member(routed)
        return self._annotate(routed.run(lambda decision: call(member(decision))), routed)

    async def _arun(
        self,
        text: str,
        kwargs: dict[str, Any],
        call: Callable[[LLM], Awaitable[_Response]],
        conversation: str | None = None,
        needs: Needs | None = None,
    ) -> _Response:
        routed = self._begin(text, kwargs, conversation, needs)
        member = self._member(routed)
        return self._annotate(await routed.arun(lambda decision: call(member(decision))), routed)

    def _run_stream(
        self,
        text: str,
        kwargs: dict[str, Any],
        start: Callable[[LLM], Iterator[_Response]],
        conversation: str | None = None,
        needs: Needs | None = None,
    ) -> Generator[_Response, None, None]:
        routed = self._begin(text, kwargs, conversation, needs)
        member = self._member(routed)
        return self._relay(routed, routed.open_stream(lambda decision: start(member(decision))))

    def _relay(
        self, routed: RoutedCall, responses: Iterator[_Response]
    ) -> Generator[_Response, None, None]:
        """Each response annotated; the last one, held back, carries the cost."""
        previous = None
        for response in responses:
            if previous is not None:
                yield self._annotate(previous, routed, final=False)
            previous = response
        if previous is None:
            routed.succeeded()
        else:
            yield self._annotate(previous, routed)

    async def _arun_stream(
        self,
        text: str,
        kwargs: dict[str, Any],
        start: Callable[[LLM], Awaitable[AsyncIterator[_Response]]],
        conversation: str | None = None,
        needs: Needs | None = None,
    ) -> AsyncGenerator[_Response, None]:
        routed = self._begin(text, kwargs, conversation, needs)
        member = self._member(routed)
        return self._arelay(
            routed, await routed.aopen_stream(lambda decision: start(member(decision)))
        )

    async def _arelay(
        self, routed: RoutedCall, responses: AsyncIterator[_Response]
    ) -> AsyncGenerator[_Response, None]:
        """`_relay` for an async stream."""
        previous = None
        async for response in responses:
            if previous is not None:
                yield self._annotate(previous, routed, final=False)
            previous = response
        if previous is None:
            routed.succeeded()
        else:
            yield self._annotate(previous, routed)

    # -- chat -----------------------------------------------------------------------------
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Chat with the chosen member; the decision is in ``additional_kwargs['metallm']``."""
        return self._run(
            _routing_text(messages),
            kwargs,
            lambda llm: llm.chat(messages, **kwargs),
            self._conversation(messages),
            request_needs(messages),
        )

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Chat with the chosen member, awaiting its async path."""
        return await self._arun(
            _routing_text(messages),
            kwargs,
            lambda llm: llm.achat(messages, **kwargs),
            self._conversation(messages),
            request_needs(messages),
        )

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream a chat from the chosen member; the last response carries the cost."""
        return self._run_stream(
            _routing_text(messages),
            kwargs,
            lambda llm: llm.stream_chat(messages, **kwargs),
            self._conversation(messages),
            request_needs(messages),
        )

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Stream a chat asynchronously from the chosen member; the last response carries the cost."""
        return await self._arun_stream(
            _routing_text(messages),
            kwargs,
            lambda llm: llm.astream_chat(messages, **kwargs),
            self._conversation(messages),
            request_needs(messages),
        )

    # -- complete -------------------------------------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Complete the prompt with the chosen member; the decision is in ``additional_kwargs['metallm']``."""
        return self._run(
            check_prompt(prompt),
            kwargs,
            lambda llm: llm.complete(prompt, formatted=formatted, **kwargs),
            None,
            prompt_needs(prompt),
        )

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Complete the prompt with the chosen member, awaiting its async path."""
        return await self._arun(
            check_prompt(prompt),
            kwargs,
            lambda llm: llm.acomplete(prompt, formatted=formatted, **kwargs),
            None,
            prompt_needs(prompt),
        )

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Stream a completion from the chosen member; the last response carries the cost."""
        return self._run_stream(
            check_prompt(prompt),
            kwargs,
            lambda llm: llm.stream_complete(prompt, formatted=formatted, **kwargs),
            None,
            prompt_needs(prompt),
        )

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Stream a completion asynchronously from the chosen member; the last response carries the cost."""
        return await self._arun_stream(
            check_prompt(prompt),
            kwargs,
            lambda llm: llm.astream_complete(prompt, formatted=formatted, **kwargs),
            None,
            prompt_needs(prompt),
        )

    # -- tool calling ---------------------------------------------------------------------
    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Choose among the members that can call tools now, and let it format them its own way."""
        if not any(c.tool_calling is not False for c in self._member_capabilities.values()):
            raise ConfigurationError(f"no pool member can call tools: {sorted(self._llms)}")
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(
                user_msg
                if isinstance(user_msg, ChatMessage)
                else ChatMessage(role="user", content=user_msg)
            )
        kwargs.pop(_DECISION_KEY, None)
        force = kwargs.pop("model", None)
        session = pop_session(self.session_key, kwargs, _active_tags())
        if session is None and self.stick_to_run:
            session = agent_run_session()
        # The same routed call as every other: members that cannot call tools, or that this
        # process cannot call (added by another process), are left out by the router.
        decision = self._router.route(
            _routing_text(messages),
            force=force,
            session=session,
            fallbacks=Fallbacks(enabled=False),
            record_errors=self.record_errors,
            prices=self.prices,
            needs=replace(request_needs(messages), tools=True),
            capabilities=self._member_capabilities,
            available=self._llms,
        ).decision
        self._emit(decision)
        member = self._llms[decision.arm]
        assert isinstance(member, FunctionCallingLLM)
        prepared = member._prepare_chat_with_tools_compat(
            tools,
            user_msg=user_msg,
            chat_history=chat_history,
            verbose=verbose,
            allow_parallel_tool_calls=allow_parallel_tool_calls,
            tool_required=tool_required,
            **kwargs,
        )
        self._prepared[decision.id] = decision
        while len(self._prepared) > 1_000:
            self._prepared.popitem(last=False)
        return {**prepared, _DECISION_KEY: decision.id}

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """Read the tool calls the way the model that answered writes them."""
        meta = response.message.additional_kwargs.get("metallm") or response.additional_kwargs.get(
            "metallm"
        )
        if not meta:
            raise ValueError("this response was not produced by MetaLLM: no routing decision on it")
        member = self._llms[meta["model"]]
        assert isinstance(member, FunctionCallingLLM)
        return member.get_tool_calls_from_response(
            response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
        )


def _price_ref(llm: LLM) -> tuple[str | None, str | None]:
    """A member's model name at its provider (and the provider, when the class says), for prices."""
    name = getattr(llm, "model", None)
    if not isinstance(name, str):
        try:
            name = llm.metadata.model_name
        except Exception:  # a custom LLM whose metadata needs more
            name = None
    provider = "openai" if type(llm).__name__ == "OpenAI" else None
    return (name if isinstance(name, str) else None, provider)


def _isolated(llm: LLM) -> LLM:
    """A copy whose legacy callback manager has no handlers (the router's run reports)."""
    copy = llm.model_copy()
    manager = CallbackManager()
    manager.set_handlers([])  # CallbackManager() copies Settings' handlers: clear them
    copy.callback_manager = manager
    return copy


def _routing_text(messages: Sequence[ChatMessage]) -> str:
    return routing_text((m.role == MessageRole.USER, str(m.content or "")) for m in messages)


def _active_tags() -> dict[str, Any]:
    """The instrumentation tags of the running code (``instrument_tags({...})``)."""
    try:
        from llama_index_instrumentation.dispatcher import active_instrument_tags
    except ImportError:  # pragma: no cover - older llama-index-core
        return {}
    return dict(active_instrument_tags.get() or {})


def _usage(response: ChatResponse | CompletionResponse) -> tuple[int, int, int | None] | None:
    """(input, output, cached input) tokens as the provider reported them, if it did.

    Cached input tokens are OpenAI's ``usage.prompt_tokens_details.cached_tokens`` (None
    when the provider does not say), priced at the cached rate when the price has one.
    """
    usage = _field(response.raw, "usage")
    cached = _field(_field(usage, "prompt_tokens_details"), "cached_tokens")
    extra = response.additional_kwargs
    if "prompt_tokens" in extra and "completion_tokens" in extra:
        usage = extra
    prompt_tokens = _field(usage, "prompt_tokens")
    completion_tokens = _field(usage, "completion_tokens")
    if prompt_tokens is None or completion_tokens is None:
        return None
    return int(prompt_tokens), int(completion_tokens), None if cached is None else int(cached)


def _field(value: Any, name: str) -> Any:
    """``value[name]`` or ``value.name`` (a raw response is a dict or the client's object)."""
    if value is None:
        return None
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)
