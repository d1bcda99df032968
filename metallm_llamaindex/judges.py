"""Judges over LlamaIndex's own evaluators: grade RAG answers against what was retrieved.

`EvaluatorJudge` turns any LlamaIndex evaluator (``CorrectnessEvaluator``,
``FaithfulnessEvaluator``, ``RelevancyEvaluator``, or your own ``BaseEvaluator``) into a
`metallm.serving.Judge`: the question, the answer, the reference answer and the retrieved
passages go to ``evaluator.evaluate``, and its result becomes a grade in [0, 1].

Example (the judge LLM is any LlamaIndex LLM, a pool member or another)::

    from llama_index.core.evaluation import FaithfulnessEvaluator

    grader = llm.router.grade_with(EvaluatorJudge(FaithfulnessEvaluator(llm=judge_llm)),
                                   sample_rate=0.1)
    response = query_engine.query(question)
    grader.submit(decision_id, question, str(response),
                  context=[node.get_content() for node in response.source_nodes])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.evaluation import BaseEvaluator, CorrectnessEvaluator, EvaluationResult

from metallm import ConfigurationError
from metallm.serving import Grade

__all__ = ["EvaluatorJudge"]


class EvaluatorJudge:
    """A LlamaIndex evaluator as a judge: its result as a grade in [0, 1].

    The grade is the evaluator's score where it has one on a known scale (``CorrectnessEvaluator``
    scores 1 to 5, mapped to 0 to 1), else its pass or fail (``FaithfulnessEvaluator``,
    ``RelevancyEvaluator``: 1 or 0).

    Args:
        evaluator: The evaluator.
        scale: The (lowest, highest) score the evaluator gives, mapped to 0 and 1 (default:
            1 to 5 for ``CorrectnessEvaluator``; others are graded by pass or fail).

    Raises:
        ConfigurationError: ``evaluator`` is not a LlamaIndex evaluator, or the scale is empty.
    """

    def __init__(
        self, evaluator: BaseEvaluator, *, scale: tuple[float, float] | None = None
    ) -> None:
        if not isinstance(evaluator, BaseEvaluator):
            raise ConfigurationError(
                f"EvaluatorJudge takes a LlamaIndex evaluator (BaseEvaluator), got {type(evaluator).__name__}"
            )
        if scale is None and isinstance(evaluator, CorrectnessEvaluator):
            scale = (1.0, 5.0)
        if scale is not None and not scale[1] > scale[0]:
            raise ConfigurationError(
                f"scale must be (lowest, highest) with highest > lowest, got {scale}"
            )
        self.evaluator = evaluator
        self.scale = scale

    def __call__(
        self,
        prompt: str,
        answer: str,
        *,
        reference: str | None = None,
        context: Sequence[str] | None = None,
    ) -> Grade:
        """Grade ``answer`` with the evaluator.

        Args:
            prompt: The question (the evaluator's ``query``).
            answer: The routed model's answer (its ``response``).
            reference: A reference answer (``CorrectnessEvaluator`` uses it).
            context: The retrieved passages (``FaithfulnessEvaluator`` and
                ``RelevancyEvaluator`` use them).

        Returns:
            The grade in [0, 1] and the evaluator's feedback.

        Raises:
            ValueError: The evaluator gave neither a score nor a verdict.
        """
        kwargs: dict[str, Any] = {"query": prompt, "response": answer}
        if context is not None:
            kwargs["contexts"] = list(context)
        if reference is not None:
            kwargs["reference"] = reference
        result: EvaluationResult = self.evaluator.evaluate(**kwargs)
        return Grade(quality=self._quality(result), comment=result.feedback)

    def _quality(self, result: EvaluationResult) -> float:
        if self.scale is not None and result.score is not None:
            low, high = self.scale
            return min(1.0, max(0.0, (float(result.score) - low) / (high - low)))
        if result.passing is not None:
            return 1.0 if result.passing else 0.0
        if result.score is not None and 0.0 <= float(result.score) <= 1.0:
            return float(result.score)
        raise ValueError(
            f"{type(self.evaluator).__name__} gave no score and no verdict: {result!r}"
        )
