"""ChatMetaLLM: a LangChain chat model that sends each call to one model of a pool.

The learning and the fallback loop live in the core (`metallm.Router.route`); this
module only translates LangChain calls into one routed call and forwards to the chosen model
so its run nests under the router's run.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, NamedTuple, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata, add_usage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableLambda,
    RunnableMap,
    RunnablePassthrough,
    ensure_config,
)
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from metallm import ConfigurationError, Decision, Fallbacks, RoutedCall, Router
from metallm.exceptions import InvalidFeedbackError
from metallm.integrations import (
    CONVERSATION,
    Capabilities,
    Needs,
    PoolMembers,
    check_capabilities,
    check_pool,
    conversation_id,
    estimate_tokens,
    pop_session,
    routing_text,
)
from metallm_langchain._internals import (
    CALL_CONFIG,
    STREAM_PARENT,
    RunParent,
    StreamParent,
    aopened,
    child_config,
    member_context,
    opened,
    run_metadata,
    take_stream_parent,
    with_run_id,
)
from metallm_langchain.capabilities import (
    member_capabilities,
    request_needs,
    structured_output_options,
)
from metallm_langchain.runs import RUN_ROOTS, agent_run_session

__all__ = ["ChatMetaLLM"]

logger = logging.getLogger(__name__)

_MAX_RUN_ALIASES = 100_000
"""Ancestor run ids remembered for feedback (the most recent ones)."""

_ROLES = {"human": "user", "ai": "assistant", "system": "system"}

_TOOL_OPTIONS = ("tool_choice", "strict", "parallel_tool_calls")
"""What ``bind_tools`` takes beside the tools, passed on to the chosen member's ``bind_tools``."""


STRUCTURED_METHODS = ("function_calling", "json_schema", "json_mode")
"""The ``method`` values of ``with_structured_output`` (ChatOpenAI's)."""


class _Structured(NamedTuple):
    """A ``with_structured_output`` request, passed on to the chosen member's own."""

    schema: Any
    method: str
    strict: bool | None


class _Call(NamedTuple):
    """One routed call, prepared before any model is chosen."""

    text: str
    force: str | None
    tools: list[dict[str, Any]] | None
    tool_options: dict[str, Any]
    """``tool_choice``, ``strict``, ``parallel_tool_calls``: for the member's own ``bind_tools``."""
    stop: list[str] | None
    kwargs: dict[str, Any]
    conversation: str | None = None
    needs: Needs | None = None
    structured: _Structured | None = None


class ChatMetaLLM(BaseChatModel):
    """A chat model that routes each call to the pool member with the best answer for the money.

    It learns from feedback which member that is for which kind of query (MetaLLM, arXiv 2407.10834).

    Setup:
        ``pip install "metallm[langchain,openai]"``

    Instantiate:
        .. code-block:: python

            from langchain_openai import ChatOpenAI
            from metallm_langchain import ChatMetaLLM

            llm = ChatMetaLLM(
                models={"mini": ChatOpenAI(model="gpt-4o-mini"), "big": ChatOpenAI(model="gpt-4o")},
                prices={"mini": (0.15, 0.60), "big": (2.50, 10.00)},  # USD per 1M in/out tokens
            )

    Invoke:
        .. code-block:: python

            msg = llm.invoke("What is the capital of France?")
            msg.response_metadata["metallm"]  # decision_id, model, scores, cost_usd, ...

    Stream / Async / Batch:
        ``llm.stream(...)``, ``await llm.ainvoke(...)``, ``llm.astream(...)``,
        ``llm.batch([...])`` all route; the decision rides on the last streamed chunk.

    Tool calling and structured output:
        ``llm.bind_tools([tool])`` binds the tools to every pool member and the chosen
        one answers; ``llm.with_structured_output(Schema)`` works the same way.
        ``llm.invoke(..., model="big")`` forces a member.

    Feedback:
        .. code-block:: python

            llm.record_feedback(msg.response_metadata["metallm"]["decision_id"], quality=1.0)

        or attach ``MetaLLMFeedbackHandler(evaluator=...)`` to a chain run.
    """

    models: dict[str, BaseChatModel]
    """The pool: a name per chat model."""
    prices: dict[str, tuple[float, ...]] = Field(default_factory=dict)
    """USD per 1M input and output tokens per model; used for ``cost_usd``."""
    router: Router | None = Field(default=None, exclude=True)
    """The learner; default a new `metallm.Router` over the pool's names."""
    model_name: str = "metallm"
    """Name reported for tracing."""
    temperature: float | None = None
    """Forwarded to the chosen model when set."""
    max_tokens: int | None = None
    """Forwarded to the chosen model when set."""
    stop: list[str] | None = None
    """Default stop sequences, forwarded to the chosen model."""
    record_errors: bool = True
    """Record a provider error as quality 0 for the model that raised it."""
    fallbacks: Fallbacks = Field(default_factory=Fallbacks)
    """On a provider error, move on to the next-best model (``Fallbacks(enabled=False)`` re-raises)."""
    warmup: bool = True
    """Load the embedding model in a background thread at construction, so the first call does
    not wait for it. False (or ``METALLM_WARMUP=0``) when workers are forked after construction
    (gunicorn's ``preload_app``): each then loads on first use."""
    capabilities: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per member, what it can serve, over what its ``profile`` says: e.g.
    ``{"mini": {"image_inputs": False, "max_input_tokens": 8192}}`` (keys of ``ModelProfile``:
    ``max_input_tokens``, ``tool_calling``, ``structured_output``, ``image_inputs``,
    ``pdf_inputs``, ``audio_inputs``). Members that cannot serve a request are left out of its
    routing, with the reason in the metadata's ``excluded``."""
    shadows: dict[str, Router] = Field(default_factory=dict, exclude=True)
    """Shadow routers by name: each sees every call and logs the member it would have chosen
    (never calling it), learning from the same feedback; ``metallm evaluate --log`` estimates
    each from the store's log beside this router. Promote one by passing it as ``router``."""
    stick_to_run: bool = True
    """Keep every step of one agent run (the same root run: a LangGraph graph, a
    ``create_agent`` agent, a chain calling the model several times) on the model its first step
    chose, unless that model fails or cannot serve a step. False routes every step on its own."""
    session_key: str | None = None
    """Keep a conversation on one model: the run metadata key (or configurable) naming the
    session, e.g. ``"session_id"`` or LangGraph's ``"thread_id"``. None: every call routes."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _member_capabilities: dict[str, Capabilities] = PrivateAttr(default_factory=dict)
    _price_sources: dict[str, str] = PrivateAttr(default_factory=dict)
    """Where each member's price came from: ``given``, ``genai-prices``."""
    _run_aliases: OrderedDict[str, str] = PrivateAttr(default_factory=OrderedDict)
    """The run id of each model call's chain, root and the runs between -> the call's own."""

    @field_validator("fallbacks", mode="before")
    @classmethod
    def _fallbacks_from_json(cls, value: Any) -> Any:
        """``load`` hands back the ``{"enabled": ..., "max_attempts": ...}`` that ``dumpd`` wrote."""
        return Fallbacks(**value) if isinstance(value, Mapping) else value

    def to_json(self) -> Any:
        """``dumpd``'s form: the pool, prices and settings; fallbacks as their two settings.

        Fallbacks with extra ``provider_errors`` (exception classes) stay unserializable, so
        ``load`` says so instead of dropping them.
        """
        serialized = super().to_json()
        kwargs = serialized.get("kwargs")
        if isinstance(kwargs, dict) and isinstance(self.fallbacks, Fallbacks):
            if self.fallbacks == Fallbacks():
                kwargs.pop("fallbacks", None)
            elif not self.fallbacks.provider_errors:
                kwargs["fallbacks"] = {
                    "enabled": self.fallbacks.enabled,
                    "max_attempts": self.fallbacks.max_attempts,
                }
        return serialized

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Checked here rather than in a pydantic validator so callers get a typed
        # ConfigurationError, not a ValidationError wrapping it.
        self._check_pool()

    def _check_pool(self) -> None:
        self.capabilities = check_capabilities(list(self.models), self.capabilities)
        self._member_capabilities = {
            name: member_capabilities(model, self.capabilities.get(name))
            for name, model in self.models.items()
        }
        self.prices, self.router = check_pool(
            self.models,
            self.prices,
            self.router,
            what="models",
            warmup=self.warmup,
            shadows=self.shadows,
            price_refs={name: _price_ref(model) for name, model in self.models.items()},
            price_sources=self._price_sources,
        )

    @property
    def _router(self) -> Router:
        assert self.router is not None
        return self.router

    @property
    def _members(self) -> PoolMembers[BaseChatModel]:
        """The members, their prices and capabilities, changed with the router's pool."""
        return PoolMembers(
            self._router,
            self.models,
            self.prices,
            self.capabilities,
            self._member_capabilities,
            member_capabilities,
            self._price_sources,
        )

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """``dumpd``/``load`` carry the pool (members that serialize) and prices, not the router.

        The learned state travels by ``router.save``/``Router.load``, a shared store, or pickle.
        """
        return True

    @property
    def _llm_type(self) -> str:
        return "metallm"

    def _resolve_model_profile(self) -> ModelProfile | None:
        """The union of the members' profiles: what a caller may ask of the pool.

        A capability is there when any member has it (requests that need it are routed
        among those members), a limit is the largest member's; descriptive fields are left out.
        """
        profiles = [
            p for m in self.models.values() if isinstance(p := getattr(m, "profile", None), Mapping)
        ]
        if not profiles:
            return None
        union: dict[str, Any] = {}
        for profile in profiles:
            for key, value in profile.items():
                if key == "open_weights":
                    continue
                if isinstance(value, bool):
                    union[key] = union.get(key, False) or value
                elif isinstance(value, int):
                    union[key] = max(union.get(key, value), value)
        return cast(ModelProfile, union)

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "models": sorted(self.models)}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="metallm",
            ls_model_name=str(kwargs.get("model") or self.model_name),
            ls_model_type="chat",
        )
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def get_num_tokens(self, text: str) -> int:
        """Tokens in ``text`` by the first member's own count (its tokenizer).

        A member that cannot count offline (ChatOpenAI's tiktoken downloads its tables) falls
        back to about four characters a token, not LangChain's GPT-2 count (0 offline).

        Args:
            text: The text.
        """
        member = next(iter(self.models.values()))
        try:
            return member.get_num_tokens(text)
        except Exception as e:
            logger.debug("metallm: %s cannot count tokens (%s); estimating", type(member), e)
            return estimate_tokens(len(text))

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        """Tokens in ``messages`` (and ``tools``) by the first member's own count.

        Args:
            messages: The messages.
            tools: Tools bound to the call, counted too where the member counts them.
        """
        member = next(iter(self.models.values()))
        try:
            return member.get_num_tokens_from_messages(messages, tools=tools)
        except Exception as e:
            logger.debug("metallm: %s cannot count tokens (%s); estimating", type(member), e)
            return estimate_tokens(sum(len(m.text) for m in messages))

    # -- the public extras --------------------------------------------------------------
    def add_model(
        self,
        name: str,
        model: BaseChatModel,
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
        if not isinstance(model, BaseChatModel):
            raise ConfigurationError(
                f"{name!r} must be a LangChain chat model, got {type(model).__name__}"
            )
        self._members.add(
            name, model, price=price, capabilities=capabilities, price_ref=_price_ref(model)
        )

    def onboard_model(
        self,
        name: str,
        model: BaseChatModel,
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
        self.add_model(name, model, price=price, capabilities=capabilities)

        def ask(text: str) -> tuple[str, int | None, int | None]:
            answer = model.invoke(text)
            usage = getattr(answer, "usage_metadata", None) or {}
            return answer.text, usage.get("input_tokens"), usage.get("output_tokens")

        return self._members.onboard(name, prompts, ask, evaluator, n=n)

    def remove_model(self, name: str) -> None:
        """Stop routing to a member (its provider retired it, say); the router keeps its history.

        `UnknownArmError` for a name not in the pool,
        `ConfigurationError` for the last member.
        """
        self._members.remove(name)

    def record_feedback(
        self,
        decision_id: str | None = None,
        *,
        quality: float,
        cost: float | None = None,
        run_id: str | uuid.UUID | None = None,
        source: str = "human",
    ) -> None:
        """Learn from the quality (in [0, 1]) of a routed answer; cost defaults to the measured one.

        Name the answer by its ``decision_id`` (``response_metadata["metallm"]["decision_id"]``)
        or by a ``run_id``: the model call's, or that of any run above it in this process (the
        chain's, or the root run an app started with ``config={"run_id": ...}`` and LangSmith
        shows; for a root with several model calls, such as an agent's steps, the last one).
        With a store, decision ids and the model call's run id work from any process sharing it.
        A person's grade (the default source) replaces a judge's or a check's grade of the same
        answer (``Router.record``); a judge grading later never replaces it.

        Args:
            decision_id: The decision.
            quality: The answer's quality in [0, 1].
            cost: USD (None: the cost measured when the model answered).
            run_id: A run id instead of the decision id.
            source: Who graded it: ``"human"`` (a user's thumbs: the default), ``"check"`` or
                ``"judge"``.

        Raises:
            InvalidFeedbackError: Neither or both of ``decision_id`` and ``run_id``.
            UnknownDecisionError: No decision is known under that id.
            DuplicateFeedbackError: Already graded by this source or one ranked above it.
        """
        if (decision_id is None) == (run_id is None):
            raise InvalidFeedbackError("name the answer by decision_id or by run_id (one of them)")
        if run_id is not None:
            own = self._run_aliases.get(str(run_id), str(run_id))
            self._router.record_run(own, quality=quality, cost=cost, source=source)
        else:
            self._router.record(str(decision_id), quality=quality, cost=cost, source=source)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools for the members that can call them; the chosen one answers with its tool calls.

        ``tool_choice``, ``strict`` and ``parallel_tool_calls`` go to the chosen member's own
        ``bind_tools``, so it does what it does when called directly. Members without tool calling (their class cannot bind tools, or their profile or
        ``capabilities`` say so) are left out of these calls' routing; a pool with none is a
        `ConfigurationError`.
        """
        if not any(c.tool_calling is not False for c in self._member_capabilities.values()):
            raise ConfigurationError(f"no pool member supports tool calling: {sorted(self.models)}")
        # formatted as ChatOpenAI does (strict schemas when asked); each member's own
        # bind_tools gets these and the options below when it is chosen
        formatted = [convert_to_openai_tool(t, strict=kwargs.get("strict")) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None,
        *,
        method: str = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Answers in ``schema``, by the chosen member's own ``with_structured_output``.

        The router chooses among the members that can honour ``method`` (one whose class
        forces a tool call is left out of ``json_schema`` and ``json_mode`` calls, with the
        reason in the metadata's ``excluded``); the chosen one is asked exactly as a direct call
        would ask it, and its answer parsed as ChatOpenAI parses it.

        Args:
            schema: A pydantic class, a TypedDict, or a JSON schema / OpenAI tool dict
                (``json_mode``: may be None, for any JSON object).
            method: ``"function_calling"`` (a forced tool call), ``"json_schema"`` (the
                provider's structured output) or ``"json_mode"`` (JSON, the schema in the prompt).
            include_raw: Return ``{"raw", "parsed", "parsing_error"}`` instead of the parsed
                answer (a parsing error is then kept, not raised).
            strict: The provider's strict schema adherence (None: the provider's default).
            kwargs: None are accepted (as in langchain-core); a typo is an error.

        Returns:
            A runnable of messages to the parsed answer.

        Raises:
            ConfigurationError: An unknown ``method`` or argument, or no member can answer in
                a schema.
        """
        if method not in STRUCTURED_METHODS:
            raise ConfigurationError(
                f"method must be one of {', '.join(STRUCTURED_METHODS)} (as for ChatOpenAI), "
                f"got {method!r}"
            )
        if kwargs:
            raise ConfigurationError(
                f"with_structured_output got unknown arguments {sorted(kwargs)}"
            )
        if strict is not None and method == "json_mode":  # as ChatOpenAI refuses it
            raise ConfigurationError("strict is not supported with method='json_mode'")
        if not any(c.structured_output is not False for c in self._member_capabilities.values()):
            raise ConfigurationError(
                f"no pool member supports structured output: {sorted(self.models)}"
            )
        tool = None if schema is None else convert_to_openai_tool(schema)
        llm = self.bind(
            **{_STRUCTURED_KEY: _Structured(schema, method, strict)},
            ls_structured_output_format={
                "kwargs": {"method": method, "strict": strict},
                "schema": tool,
            },
        )
        parser = _structured_parser(schema, method)
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        failed = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([failed], exception_key="parsing_error")

    # -- routing ------------------------------------------------------------------------
    def _prepare(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> _Call:
        kwargs = dict(kwargs)
        force = kwargs.pop("model", None)
        structured = kwargs.pop(_STRUCTURED_KEY, None)
        tools = kwargs.pop("tools", None)
        tool_options = {
            name: kwargs.pop(name)
            for name in _TOOL_OPTIONS
            if kwargs.get(name) is not None and (tools is not None or name == "tool_choice")
        }
        for name in ("temperature", "max_tokens"):
            value = getattr(self, name)
            if value is not None:
                kwargs.setdefault(name, value)
        text = routing_text((isinstance(m, HumanMessage), m.text) for m in messages)
        conversation = None
        if self.session_key == CONVERSATION:  # hashed only when it is the session
            conversation = conversation_id((_ROLES.get(m.type, m.type), m.text) for m in messages)
        needs = request_needs(
            messages,
            tools=bool(tools),
            structured_output="ls_structured_output_format" in kwargs
            or "response_format" in kwargs
            or structured is not None,
            structured_output_method=None if structured is None else structured.method,
        )
        return _Call(
            text,
            force,
            tools,
            tool_options,
            stop or self.stop,
            kwargs,
            conversation,
            needs,
            structured,
        )

    def _route(self, call: _Call, parent: StreamParent | RunParent | None) -> RoutedCall:
        session = pop_session(
            self.session_key, call.kwargs, *run_metadata(parent), conversation=call.conversation
        )
        if session is None and self.stick_to_run and parent is not None:
            session = agent_run_session(parent.run_id)  # the run this call is a step of
        if parent is not None:
            self._alias_ancestors(parent.run_id)
        return self._router.route(
            call.text,
            force=call.force,
            session=session,
            fallbacks=self.fallbacks,
            record_errors=self.record_errors,
            prices=self.prices,
            run_id=None if parent is None else str(parent.run_id),
            needs=call.needs,
            capabilities=self._member_capabilities,
            available=self.models,
        )

    def _alias_ancestors(self, run_id: uuid.UUID) -> None:
        """Let feedback name this call by any run above it (its chain's, the root's)."""
        aliases, own = self._run_aliases, str(run_id)
        for ancestor in RUN_ROOTS.ancestors(run_id):
            aliases[str(ancestor)] = own  # the latest model call of that chain wins
            aliases.move_to_end(str(ancestor))
        while len(aliases) > _MAX_RUN_ALIASES:
            aliases.popitem(last=False)

    def _member(self, call: _Call, decision: Decision) -> Runnable[LanguageModelInput, BaseMessage]:
        model = self.models[decision.arm]
        if call.structured is not None:
            return _structured_member(model, call.structured)
        if call.tools is None:
            return model
        options, tools = call.tool_options, call.tools
        if "response_format" in call.kwargs and "strict" not in options and _openai_style(model):
            # what create_agent's ProviderStrategy does for a ChatOpenAI called directly
            options, tools = {**options, "strict": True}, [_strict_tool(t) for t in tools]
        return model.bind_tools(tools, **options)

    def _child_config(
        self, parent: StreamParent | RunParent | None, decision: Decision
    ) -> RunnableConfig:
        """Config for the chosen model's call: its run nests under the router's run."""
        return child_config(
            parent, decision, self.callbacks, self.verbose, self.tags, self.metadata
        )

    def _annotate(
        self,
        message: AIMessage | AIMessageChunk,
        routed: RoutedCall,
        usage: UsageMetadata | None,
        *,
        add_model_name: bool = True,
    ) -> Any:
        tokens = (
            (None, None, None)
            if usage is None
            else (
                usage.get("input_tokens", 0),
                usage.get("output_tokens", 0),
                (usage.get("input_token_details") or {}).get("cache_read"),
            )
        )
        decision_metadata = routed.succeeded(*tokens)
        decision_metadata["price_source"] = self._price_sources.get(routed.decision.arm)
        metadata = dict(message.response_metadata)
        if add_model_name:
            metadata.setdefault("model_name", routed.decision.arm)
        metadata["metallm"] = decision_metadata
        return message.model_copy(update={"response_metadata": metadata})

    # -- invoke / ainvoke ---------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._prepare(messages, stop, kwargs)
        routed = self._route(call, run_manager)

        def attempt(decision: Decision) -> BaseMessage:
            config = self._child_config(run_manager, decision)
            with member_context(config):
                return self._member(call, decision).invoke(
                    messages, config=config, stop=call.stop, **call.kwargs
                )

        message = routed.run(attempt)
        return _result(
            self._annotate(_as_ai(message), routed, getattr(message, "usage_metadata", None))
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._prepare(messages, stop, kwargs)
        routed = self._route(call, run_manager)

        async def attempt(decision: Decision) -> BaseMessage:
            config = self._child_config(run_manager, decision)
            with member_context(config):
                return await self._member(call, decision).ainvoke(
                    messages, config=config, stop=call.stop, **call.kwargs
                )

        message = await routed.arun(attempt)
        return _result(
            self._annotate(_as_ai(message), routed, getattr(message, "usage_metadata", None))
        )

    # -- the config, for sessions -------------------------------------------------------
    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Route one call; its config (and so a session in ``configurable``) reaches the routing."""
        token = CALL_CONFIG.set(ensure_config(config))
        try:
            return super().invoke(input, config, stop=stop, **kwargs)
        finally:
            CALL_CONFIG.reset(token)

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Route one call asynchronously; its config reaches the routing, as with `invoke`."""
        token = CALL_CONFIG.set(ensure_config(config))
        try:
            return await super().ainvoke(input, config, stop=stop, **kwargs)
        finally:
            CALL_CONFIG.reset(token)

    # -- streaming ----------------------------------------------------------------------
    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Stream the chosen model's answer; the decision rides on the last chunk."""
        config, parent = with_run_id(config)
        chunks = super().stream(input, config, stop=stop, **kwargs)
        token = STREAM_PARENT.set(parent)
        try:  # the router's run opens and _stream starts inside this first step
            first = next(chunks, None)
        finally:
            STREAM_PARENT.reset(token)
        if first is None:
            return
        yield first
        yield from chunks

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        """Stream the chosen model's answer asynchronously; the decision rides on the last chunk."""
        config, parent = with_run_id(config)
        chunks = super().astream(input, config, stop=stop, **kwargs)
        token = STREAM_PARENT.set(parent)
        try:
            first = await anext(chunks, None)
        finally:
            STREAM_PARENT.reset(token)
        if first is None:
            return
        yield first
        async for chunk in chunks:
            yield chunk

    def _should_stream(
        self,
        *,
        async_api: bool,
        run_manager: RunParent | None = None,
        **kwargs: Any,
    ) -> bool:
        should = super()._should_stream(async_api=async_api, run_manager=run_manager, **kwargs)
        if not should and "stream" not in kwargs and not self._streaming_disabled(**kwargs):
            # a member built with streaming=True streams when called directly: so does the
            # router, so the router's run reports its tokens (on_llm_new_token) on invoke too
            should = any(getattr(m, "streaming", False) is True for m in self.models.values())
        if should and run_manager is not None:
            # invoke() is about to call _stream without its run manager (implicit streaming).
            STREAM_PARENT.set(run_manager)
        return should

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        parent = run_manager or take_stream_parent()
        call = self._prepare(messages, stop, kwargs)
        routed = self._route(call, parent)

        def start(decision: Decision) -> Iterator[BaseMessage]:
            config = self._child_config(parent, decision)
            return opened(
                config,
                self._member(call, decision).stream(
                    messages, config=config, stop=call.stop, **call.kwargs
                ),
            )

        tail = _StreamTail()
        for chunk in routed.open_stream(start):
            if passed := tail.take(chunk):
                yield ChatGenerationChunk(message=passed)
        yield ChatGenerationChunk(message=tail.finish(self, routed))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        parent = run_manager or take_stream_parent()
        call = self._prepare(messages, stop, kwargs)
        routed = self._route(call, parent)

        def start(decision: Decision) -> AsyncIterator[BaseMessage]:
            config = self._child_config(parent, decision)
            return aopened(
                config,
                self._member(call, decision).astream(
                    messages, config=config, stop=call.stop, **call.kwargs
                ),
            )

        tail = _StreamTail()
        async for chunk in await routed.aopen_stream(start):
            if passed := tail.take(chunk):
                yield ChatGenerationChunk(message=passed)
        yield ChatGenerationChunk(message=tail.finish(self, routed))


_STRUCTURED_KEY = "metallm_structured_output"
"""The call option carrying a ``with_structured_output`` request to ``_generate``."""


def _price_ref(model: BaseChatModel) -> tuple[str | None, str | None]:
    """A member's model name at its provider and the provider's id, to look its price up."""
    name = getattr(model, "model_name", None) or getattr(model, "model", None)
    try:
        provider = model._get_ls_params().get("ls_provider")
    except Exception:  # a model whose tracing params need a call's arguments
        provider = None
    return (name if isinstance(name, str) else None, provider)


def _openai_style(model: BaseChatModel) -> bool:
    """Whether ``model`` is langchain-openai's (ChatOpenAI and its kin) on chat completions."""
    is_openai = any(
        cls.__name__ == "BaseChatOpenAI" and cls.__module__.startswith("langchain_openai")
        for cls in type(model).__mro__
    )
    return is_openai and not getattr(model, "use_responses_api", False)


def _strict_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI tool dict made strict, as ``convert_to_openai_tool(..., strict=True)`` makes it.

    (Converting an already formatted dict again leaves it as it is.)
    """
    function = tool.get("function")
    if tool.get("type") != "function" or not isinstance(function, dict):
        return tool
    return {**tool, "function": {**function, "strict": True,
                                 "parameters": _closed(function.get("parameters") or {})}}  # fmt: skip


def _closed(schema: Any) -> Any:
    """A JSON schema with every object closed and every property required (strict mode's rule)."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: _closed(value) for key, value in schema.items()}
    if closed.get("type") == "object" and "properties" in closed:
        closed["additionalProperties"] = False
        closed["required"] = list(closed["properties"])
    return closed


def _structured_member(model: BaseChatModel, request: _Structured) -> Runnable[Any, BaseMessage]:
    """The member asked for ``request`` by its own ``with_structured_output``; its raw answer.

    One answer, streamed or not (a schema's answer is parsed whole); the call's ``stop`` and
    other options are the member's own here, as when it is asked directly.
    """
    options = structured_output_options(model)
    kwargs: dict[str, Any] = {}
    if "method" in options:
        kwargs["method"] = request.method
    if "strict" in options and request.strict is not None:
        kwargs["strict"] = request.strict
    structured = model.with_structured_output(request.schema, include_raw=True, **kwargs)

    def answer(messages: Any, config: RunnableConfig, **_: Any) -> BaseMessage:
        return cast(dict[str, BaseMessage], structured.invoke(messages, config))["raw"]

    async def aanswer(messages: Any, config: RunnableConfig, **_: Any) -> BaseMessage:
        return cast(dict[str, BaseMessage], await structured.ainvoke(messages, config))["raw"]

    return RunnableLambda(answer, afunc=aanswer)


def _structured_parser(schema: Any, method: str) -> Runnable[BaseMessage, Any]:
    """How ChatOpenAI parses a structured answer of ``method`` into ``schema``."""
    is_model = isinstance(schema, type) and is_basemodel_subclass(schema)  # pydantic 1 or 2
    if method == "function_calling":
        if is_model:
            return PydanticToolsParser(tools=[schema], first_tool_only=True)
        name = convert_to_openai_tool(schema)["function"]["name"]
        return JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
    if is_model:
        return PydanticOutputParser(pydantic_object=schema)
    return JsonOutputParser()


class _StreamTail:
    """Tracks usage over a stream and builds the last chunk, which carries the decision."""

    def __init__(self) -> None:
        self.usage: UsageMetadata | None = None
        self.has_model_name = False
        self.held: AIMessageChunk | None = None

    def take(self, chunk: BaseMessage) -> AIMessageChunk | None:
        """Note a chunk; the chunk to pass on, or None for the inner stream's own last chunk (held back)."""
        if not isinstance(chunk, AIMessageChunk):
            chunk = _as_chunk(chunk)
        usage = chunk.usage_metadata
        if usage:
            self.usage = add_usage(self.usage, usage)
        self.has_model_name = self.has_model_name or "model_name" in chunk.response_metadata
        if chunk.chunk_position == "last":
            self.held = chunk
            return None
        return chunk

    def finish(self, llm: ChatMetaLLM, routed: RoutedCall) -> AIMessageChunk:
        # Usage already reached the consumer through earlier chunks (or rides on the held
        # one); this chunk only adds the decision, so nothing is counted twice.
        last = self.held if self.held is not None else AIMessageChunk(content="")
        last = last.model_copy(update={"chunk_position": "last"})
        usage = self.usage
        annotated: AIMessageChunk = llm._annotate(
            last, routed, usage, add_model_name=not self.has_model_name
        )
        return annotated


def _as_chunk(message: BaseMessage) -> AIMessageChunk:
    """A whole message as one chunk of a stream, its tool calls and usage kept."""
    if not isinstance(message, AIMessage):
        return AIMessageChunk(content=message.content)
    return AIMessageChunk(
        content=message.content,
        additional_kwargs=dict(message.additional_kwargs),
        response_metadata=dict(message.response_metadata),
        usage_metadata=message.usage_metadata,
        id=message.id,
        tool_call_chunks=[
            {
                "name": call["name"],
                "args": json.dumps(call["args"]),
                "id": call.get("id"),
                "index": i,
                "type": "tool_call_chunk",
            }
            for i, call in enumerate(message.tool_calls)
        ],
    )


def _as_ai(message: BaseMessage) -> AIMessage:
    if isinstance(message, AIMessage):
        return message
    return AIMessage(content=message.content, response_metadata=dict(message.response_metadata))


def _result(message: AIMessage) -> ChatResult:
    return ChatResult(generations=[ChatGeneration(message=message)])
