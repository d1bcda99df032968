"""The documented feedback-only process beside routing workers (docs/deployment.md).

``Router(models, embedder=None, store=...)`` grades what workers that embed text decided. It
follows the store's setting for the prompt's length, so its snapshots fit every worker started
after them, and all processes hold the same statistics at the same position of the log.
"""

from __future__ import annotations

import numpy as np
import pytest
from langchain_openai import ChatOpenAI

from metallm import ConfigurationError, Router
from metallm.testing import OpenAICompatibleServer, ScriptedModel
from metallm_langchain import ChatMetaLLM

ARMS = ["mini", "pro"]


@pytest.fixture(scope="module")
def provider():
    with OpenAICompatibleServer({m: ScriptedModel(reply=f"{m} says hi") for m in ARMS}) as server:
        yield server


def _worker(store, embedder, provider) -> ChatMetaLLM:
    router = Router(ARMS, embedder=embedder, store=store, snapshot_every=5)
    members = {m: ChatOpenAI(model=m, base_url=provider.base_url, api_key="k") for m in ARMS}
    return ChatMetaLLM(models=members, router=router, prices={"mini": (0.1, 0.1), "pro": (1, 1)})


@pytest.mark.parametrize("grader_first", [True, False])
def test_a_worker_started_after_the_graders_snapshot_routes(
    shared, embedder, provider, grader_first
):
    _, make = shared
    if grader_first:  # the grader opens the store before any worker has said anything
        grader = Router(ARMS, embedder=None, store=make(), snapshot_every=5, sync_interval=None)
    first = _worker(make(), embedder, provider)
    if not grader_first:
        grader = Router(ARMS, embedder=None, store=make(), snapshot_every=5, sync_interval=None)
    for i in range(12):
        answer = first.invoke(f"question number {i} about the weather")
        grader.record(answer.response_metadata["metallm"]["decision_id"], quality=1.0)
    assert grader.reads_prompt_length and grader.health()["refused_snapshots"] == 0
    later = _worker(make(), embedder, provider)  # adopts the grader's latest snapshot
    assert later.invoke("a question for the new worker").content.endswith("says hi")
    first.router.sync()
    later.router.sync()
    grader.sync()
    positions = {r.health()["store_position"] for r in (first.router, later.router, grader)}
    assert len(positions) == 1  # the same place in the log ...
    np.testing.assert_allclose(first.router.bandit.stats.A, grader.bandit.stats.A)  # ... same state
    np.testing.assert_allclose(later.router.bandit.stats.A, grader.bandit.stats.A)


def test_an_explicit_setting_that_differs_from_the_fleet_is_refused_at_construction(shared):
    _, make = shared
    Router(ARMS, embedder=None, prompt_length=True, store=make())
    with pytest.raises(ConfigurationError, match="prompt_length=False"):
        Router(ARMS, embedder=None, prompt_length=False, store=make())
