"""Judges over LangChain chat models: grade routed answers where nobody labels them.

`ChatModelJudge` asks any chat model to grade an answer against a rubric, through openevals'
LLM-as-judge (``pip install "metallm[judges]"``): the judge answers in a schema (a score in
[0, 1] and its reasoning) by the model's own structured output. Its cost is priced from the
usage the judge's provider reported. A judge can be a pool member or any other model.

>>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
>>> from metallm import Router
>>> router = Router(["small", "large"], embedder=None)
>>> judge = ChatModelJudge(FakeListChatModel(responses=["unused"]))  # doctest: +SKIP
>>> grader = router.grade_with(judge, sample_rate=0.1)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.language_models import BaseChatModel

from metallm import ConfigurationError
from metallm.integrations import usage_cost
from metallm.serving import Grade

__all__ = ["RUBRICS", "ChatModelJudge"]

_WITHOUT_REFERENCE = """You are an expert grader. Grade how correct, complete and helpful the
answer is for the question, from 0 (wrong or useless) to 1 (fully correct and helpful).

<question>
{inputs}
</question>

<answer>
{outputs}
</answer>
"""

_GROUNDED = """You are an expert grader. Grade whether the answer to the question rests on the
retrieved context only, from 0 (claims the context does not support) to 1 (fully supported).

<question>
{inputs}
</question>

<context>
{context}
</context>

<answer>
{outputs}
</answer>
"""


def _rubrics() -> dict[str, str]:
    from openevals.prompts import CORRECTNESS_PROMPT

    return {
        "correctness": CORRECTNESS_PROMPT,  # openevals' own, with {reference_outputs}
        "helpfulness": _WITHOUT_REFERENCE,
        "groundedness": _GROUNDED,
    }


RUBRICS = ("correctness", "helpfulness", "groundedness")
"""The rubrics by name: ``correctness`` (openevals' rubric, against a reference answer when
one is given), ``helpfulness`` (no reference needed), ``groundedness`` (RAG: against the
retrieved context). Or pass your own prompt with ``{inputs}`` and ``{outputs}``."""


class ChatModelJudge:
    """Grades an answer with a chat model and a rubric (openevals' LLM-as-judge).

    Args:
        model: The judge: any chat model that can answer in a schema (``with_structured_output``).
        rubric: A rubric's name (`RUBRICS`) or your own prompt, with ``{inputs}`` (the question),
            ``{outputs}`` (the answer) and optionally ``{reference_outputs}``, ``{context}``.
        price: The judge's USD per 1M input and output tokens (its spend is counted apart from
            routing's, and held by the grader's own budget); None: its spend is unknown (0).
        reference_model: Pairwise grading: when no reference answer is given, this model (a
            stronger one, say) answers the prompt and the judge grades the routed answer
            against its answer (the ``correctness`` rubric). Its calls are the judge's spend.
        reference_price: The reference model's USD per 1M input and output tokens.

    Raises:
        ConfigurationError: openevals is not installed, or the rubric is unknown.
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        rubric: str = "helpfulness",
        price: tuple[float, ...] | None = None,
        reference_model: BaseChatModel | None = None,
        reference_price: tuple[float, ...] | None = None,
    ) -> None:
        try:
            from openevals.llm import create_llm_as_judge
        except ImportError as e:
            raise ConfigurationError(
                'ChatModelJudge needs openevals: pip install "metallm[judges]"'
            ) from e
        rubrics = _rubrics()
        if reference_model is not None and rubric == "helpfulness":
            rubric = "correctness"  # pairwise: graded against the reference model's answer
        if rubric not in rubrics and "{outputs}" not in rubric:
            raise ConfigurationError(
                f"unknown rubric {rubric!r}: use one of {list(rubrics)} or a prompt with "
                "{inputs} and {outputs}"
            )
        self.model = model
        self.rubric = rubric
        self.price = price
        self.reference_model = reference_model
        self.reference_price = reference_price
        self._evaluate: Any = create_llm_as_judge(
            prompt=rubrics.get(rubric, rubric), judge=model, continuous=True, feedback_key="quality"
        )

    def __call__(
        self,
        prompt: str,
        answer: str,
        *,
        reference: str | None = None,
        context: Sequence[str] | None = None,
    ) -> Grade:
        """Grade ``answer`` to ``prompt`` with the judge model.

        Args:
            prompt: The question.
            answer: The routed model's answer.
            reference: A reference answer (the ``correctness`` rubric uses it).
            context: Retrieved passages (the ``groundedness`` rubric uses them).

        Returns:
            The grade in [0, 1], what the judge's call cost, and its reasoning.
        """
        extra: dict[str, Any] = {"context": "\n\n".join(context or [])}
        reference_cost = None
        if reference is None and self.reference_model is not None:
            with get_usage_metadata_callback() as asked:
                reference = self.reference_model.invoke(prompt).text
            reference_cost = _priced(self.reference_price, asked.usage_metadata)
        with get_usage_metadata_callback() as usage:
            result = self._evaluate(
                inputs=prompt,
                outputs=answer,
                reference_outputs=reference if reference is not None else "(none given)",
                **extra,
            )
        score = float(result["score"])
        judged = _priced(self.price, usage.usage_metadata)
        costs = [c for c in (judged, reference_cost) if c is not None]
        return Grade(
            quality=min(1.0, max(0.0, score)),
            cost_usd=sum(costs) if costs else None,
            comment=result.get("comment"),
        )


def _priced(price: tuple[float, ...] | None, by_model: dict[str, Any]) -> float | None:
    """Calls priced at ``price`` from their reported usage (None without a price or usage)."""
    if price is None or not by_model:
        return None
    total = 0.0
    for usage in by_model.values():
        cached = (usage.get("input_token_details") or {}).get("cache_read") or 0
        cost = usage_cost(
            {"model": price},
            "model",
            usage.get("input_tokens", 0),
            usage.get("output_tokens", 0),
            cached,
        )
        total += cost or 0.0
    return total
