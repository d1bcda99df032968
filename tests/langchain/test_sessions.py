"""Sticky sessions through every path LangChain users reach them (an exploring router, real MiniLM).

Without a session the same questions spread over the models (checked below); with one, a
conversation stays on the model its first call went to.
"""

from __future__ import annotations

from langchain_core.chat_history import InMemoryChatMessageHistory
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from metallm import LinUCB, Router
from metallm_langchain import ChatMetaLLM
from tests.langchain.fakes import ScriptedChatModel
from tests.topics import ASTRONOMY, COOKING

QUESTIONS = COOKING[:4] + ASTRONOMY[:4]


def _llm(embedder, session_key):
    pool = {name: ScriptedChatModel(reply=f"{name} says") for name in ("a", "b", "c")}
    router = Router(list(pool), embedder=embedder, policy=LinUCB(alpha=5.0), seed=0)
    return ChatMetaLLM(models=pool, router=router, session_key=session_key)


def _model(message) -> str:
    return message.response_metadata["metallm"]["model"]


def test_without_a_session_the_questions_spread(embedder):
    llm = _llm(embedder, None)
    assert len({_model(llm.invoke(q)) for q in QUESTIONS}) > 1


def test_configurable_session_id_sticks_on_invoke_ainvoke_and_batch(embedder):
    llm = _llm(embedder, "session_id")
    config = {"configurable": {"session_id": "s-1"}}
    assert len({_model(llm.invoke(q, config=config)) for q in QUESTIONS}) == 1
    assert (
        len(
            {
                _model(m)
                for m in llm.batch(QUESTIONS, config={"configurable": {"session_id": "s-2"}})
            }
        )
        == 1
    )


async def test_configurable_session_id_sticks_on_ainvoke(embedder):
    llm = _llm(embedder, "session_id")
    config = {"configurable": {"session_id": "s-3"}}
    assert len({_model(await llm.ainvoke(q, config=config)) for q in QUESTIONS}) == 1


def test_langgraph_style_thread_id_sticks(embedder):
    llm = _llm(embedder, "thread_id")
    config = {"configurable": {"thread_id": "thread-9"}}
    assert len({_model(llm.invoke(q, config=config)) for q in QUESTIONS}) == 1


def test_runnable_with_message_history_keeps_each_session_on_one_model(embedder):
    llm = _llm(embedder, "session_id")
    histories: dict[str, InMemoryChatMessageHistory] = {}
    prompt = ChatPromptTemplate.from_messages(
        [MessagesPlaceholder("history"), ("human", "{question}")]
    )
    chat = RunnableWithMessageHistory(
        prompt | llm,
        lambda session_id: histories.setdefault(session_id, InMemoryChatMessageHistory()),
        input_messages_key="question",
        history_messages_key="history",
    )
    for session in ("alice", "bob"):
        config = {"configurable": {"session_id": session}}
        assert len({_model(chat.invoke({"question": q}, config=config)) for q in QUESTIONS}) == 1
    assert len(histories["alice"].messages) == 2 * len(QUESTIONS)


def test_the_conversation_itself_can_be_the_session(embedder):
    """session_key="conversation": no id needed, the history identifies the conversation."""
    llm = _llm(embedder, "conversation")
    history: list = [("system", "Be brief.")]
    models = set()
    for question in QUESTIONS:
        history.append(("human", question))
        answer = llm.invoke(history)
        history.append(("ai", answer.content))
        models.add(_model(answer))
    assert len(models) == 1
