"""MetaLLM inside real LlamaIndex machinery: a query engine, a chat engine, an agent with tools."""

from __future__ import annotations

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.tools import FunctionTool
from llama_index.llms.openai_like import OpenAILike

from metallm import Router
from metallm.testing import OpenAICompatibleServer, ScriptedModel
from metallm_llamaindex import MetaLLM

DOCS = [
    Document(text="The Eiffel Tower is in Paris and was finished in 1889."),
    Document(text="The Colosseum is in Rome and held up to 50,000 spectators."),
    Document(text="Big Ben is the nickname of the great bell in London's clock tower."),
]


@pytest.fixture
def index():
    Settings.embed_model = MockEmbedding(embed_dim=8)
    return VectorStoreIndex.from_documents(DOCS)


def test_settings_llm_drives_a_query_engine(llm, pool, index):
    Settings.llm = llm
    response = index.as_query_engine().query("When was the Eiffel Tower finished?")
    assert str(response) in {m.reply for m in pool.values()}
    assert llm.router.pending_decisions >= 1  # the engine's LLM calls were routed
    assert len(response.source_nodes) > 0


def test_a_chat_engine_routes_each_turn(llm, pool, index):
    Settings.llm = llm
    engine = index.as_chat_engine(chat_mode="context")
    first = engine.chat("Where is the Colosseum?")
    second = engine.chat("And how many people did it hold?")
    replies = {m.reply for m in pool.values()}
    assert str(first) in replies and str(second) in replies
    assert llm.router.pending_decisions == 2


def add(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    return a + b


def _member(server: OpenAICompatibleServer, name: str) -> OpenAILike:
    return OpenAILike(
        model=name,
        api_base=server.base_url,
        api_key="not-needed",
        is_chat_model=True,
        is_function_calling_model=True,
        context_window=16000,
        max_retries=0,
    )


async def test_an_agent_calls_a_tool_through_the_router(embedder):
    scripts = {
        name: ScriptedModel(reply=f"The sum is 3 ({name}).", tool_args={"a": 1, "b": 2})
        for name in ("mini", "pro")
    }
    with OpenAICompatibleServer(scripts) as server:
        llm = MetaLLM(
            llms={n: _member(server, n) for n in scripts},
            router=Router(list(scripts), embedder=embedder, seed=0),
        )
        assert llm.metadata.is_function_calling_model
        agent = FunctionAgent(tools=[FunctionTool.from_defaults(add)], llm=llm)
        result = await agent.run("What is 1 + 2? Use the add tool.")
        assert "The sum is 3" in str(result)
        assert [c.tool_name for c in result.tool_calls] == ["add"]
        assert result.tool_calls[0].tool_output.raw_output == 3
        bodies = server.requests
        assert bodies[0]["tools"][0]["function"]["name"] == "add"  # the member formatted the tool
        assert bodies[-1]["messages"][-1]["role"] == "tool"
        assert llm.router.pending_decisions == 2  # the tool call and the final answer


def test_predict_and_call_runs_the_chosen_members_tool_call(embedder):
    scripts = {
        "mini": ScriptedModel(tool_args={"a": 20, "b": 22}),
        "pro": ScriptedModel(tool_args={"a": 20, "b": 22}),
    }
    with OpenAICompatibleServer(scripts) as server:
        llm = MetaLLM(
            llms={n: _member(server, n) for n in scripts},
            router=Router(list(scripts), embedder=embedder),
        )
        response = llm.predict_and_call([FunctionTool.from_defaults(add)], "What is 20 + 22?")
        assert response.response == "42"


def test_a_chat_engine_conversation_stays_on_one_model(embedder):
    """A chat engine carries its history but no session id: session_key="conversation" keys on it."""
    from llama_index.core.chat_engine import SimpleChatEngine

    from metallm import LinUCB
    from tests.llamaindex.fakes import ScriptedLLM
    from tests.topics import ASTRONOMY, COOKING

    pool = {name: ScriptedLLM(reply=f"{name} says") for name in ("a", "b", "c")}
    exploring = Router(list(pool), embedder=embedder, policy=LinUCB(alpha=5.0), seed=0)
    llm = MetaLLM(llms=pool, router=exploring, session_key="conversation")
    engine = SimpleChatEngine.from_defaults(llm=llm)
    replies = {engine.chat(q).response for q in COOKING[:4] + ASTRONOMY[:4]}
    assert len(replies) == 1
    spread = MetaLLM(
        llms=pool, router=Router(list(pool), embedder=embedder, policy=LinUCB(alpha=5.0), seed=0)
    )
    assert len({spread.complete(q).text for q in COOKING[:4] + ASTRONOMY[:4]}) > 1
