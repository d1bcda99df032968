"""The judge a separate ``metallm grade`` process imports: a ChatOpenAI judge on the local server.

``metallm grade --judge tests.integration.grading_judge:judge`` with ``JUDGE_URL`` set to the
judge server's base URL (the test's own ``judge_server``).
"""

from __future__ import annotations

import os

from langchain_openai import ChatOpenAI

from metallm_langchain.judges import ChatModelJudge

judge = ChatModelJudge(
    ChatOpenAI(model="judge", base_url=os.environ["JUDGE_URL"], api_key="k", max_retries=0),
    price=(1.0, 4.0),
)
