"""The AWS cost of an AI-answered message: a routine web chat question answered from the knowledge
base, measured on the local stack like :mod:`bench.cost`'s windows, plus the model's part at the
default model's list price.

The local stack answers with the extractive answerer (same contract, no model), so the model's
tokens are counted from the Converse request the cloud would send for the same question and the
same retrieved passages (``ConverseAnswerer.request``: the system prompt, the passages, the
question) and from the JSON answer of the contract around the answer the stack sent, at
:data:`bench.prices.CHARS_PER_TOKEN`. The query embedding (optional) is left out: Titan v2 costs
USD 0.00002 per 1,000 tokens, ~20 tokens per question.
"""

from __future__ import annotations

import io
import json
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from bench import prices
from bench.cost import Costed, index_table, largest_table, price
from bench.meter import Meter
from omni.knowledge import read_folder, sync
from omni.local.auth import issue_agent_token
from omni.local.runtime import LocalRuntime
from shared.channels.webchat import compute_user_hash
from shared.domain.assistant import load_config, retrieve
from shared.domain.knowledge import build_index, parse_article
from shared.services.assistant.bedrock import SYSTEM_PROMPT, ConverseAnswerer
from topology import TOPOLOGY

KNOWLEDGE = Path(__file__).resolve().parents[1] / "examples" / "knowledge"
#: Routine questions the example knowledge base answers, phrased unlike its articles.
QUESTIONS = (
    ("How do I send back a jacket I ordered?", "en"),
    ("How long is a gift card valid?", "en"),
    ("What does shipping to Austria cost?", "en"),
    ("I forgot my password, how do I get a new one?", "en"),
    ("Ich habe mein Passwort vergessen, was kann ich tun?", "de"),
)


@dataclass
class AiAnswered:
    aws: Costed
    input_tokens: float
    output_tokens: float

    @property
    def model_usd(self) -> float:
        return (
            self.input_tokens / 1000 * prices.BEDROCK_INPUT_PER_1K
            + self.output_tokens / 1000 * prices.BEDROCK_OUTPUT_PER_1K
        )

    @property
    def aws_usd(self) -> float:
        return self.aws.total_per_million / 1_000_000

    @property
    def total_usd(self) -> float:
        return self.aws_usd + self.model_usd


def tokens(text: str) -> int:
    return math.ceil(len(text) / prices.CHARS_PER_TOKEN)


def model_tokens(question: str, language: str, answer: str) -> tuple[int, int]:
    """Input and output tokens of the Converse call the cloud makes for ``question``."""
    articles = read_folder(KNOWLEDGE)
    index = build_index([parse_article(text, article_id) for article_id, text in articles.items()])
    config = load_config()
    passages = retrieve(index, question, language=language, channel="webchat", limit=config.max_passages)
    request = ConverseAnswerer().request(question, language, passages)
    prompt = SYSTEM_PROMPT.format(language=language) + request["messages"][0]["content"][0]["text"]
    contract = {
        "answerable": True,
        "answer": answer,
        "article_ids": [passages[0].article_id] if passages else [],
        "handover_reason": None,
        "summary": f"The customer asks: {question}",
    }
    return tokens(prompt), tokens(json.dumps(contract, ensure_ascii=False))


def _session(base: str) -> dict[str, Any]:
    account = f"bench-ai-{uuid.uuid4().hex[:8]}"
    secret = TOPOLOGY.secret("webchat-identity").local_default
    body = {"customer": {"account_id": account, "user_hash": compute_user_hash(secret, account)}}
    response = requests.post(f"{base}/webchat/sessions", json=body, timeout=30)
    response.raise_for_status()
    return {**response.json(), "account": account}


def _ask(base: str, session: dict[str, Any], text: str) -> int:
    response = requests.post(
        f"{base}/webchat/sessions/{session['session_id']}/messages",
        json={"message_id": uuid.uuid4().hex[:12], "text": text, "sent_at": datetime.now(UTC).isoformat()},
        headers={"Authorization": f"Bearer {session['token']}"},
        timeout=30,
    )
    if response.status_code != 202:
        raise RuntimeError(f"message refused: {response.status_code} {response.text}")
    return 1


def _answers(base: str, session: dict[str, Any]) -> list[dict[str, Any]]:
    shown = requests.get(
        f"{base}/webchat/sessions/{session['session_id']}/messages",
        headers={"Authorization": f"Bearer {session['token']}"},
        timeout=30,
    ).json()["messages"]
    return [m for m in shown if m["direction"] == "outbound"]


def _cited(base: str, session: dict[str, Any]) -> bool:
    """The conversation's bot answer cites an article (the agent API's view of it)."""
    headers = {"Authorization": f"Bearer {issue_agent_token('bench-kb', 600)}"}
    found = requests.get(
        f"{base}/customers", params={"identity": f"account:{session['account']}"}, headers=headers, timeout=30
    ).json()["customers"]
    customer_id = found[0]["customer_id"]
    listed = requests.get(f"{base}/customers/{customer_id}/conversations", headers=headers, timeout=30).json()
    conversation_id = listed["conversations"][0]["conversation_id"]
    detail = requests.get(f"{base}/conversations/{conversation_id}", headers=headers, timeout=30).json()
    return any(m.get("citations") for m in detail["messages"])


def load_knowledge(runtime: LocalRuntime, timeout_s: float = 60) -> None:
    token = issue_agent_token("bench-kb", 600, extra_claims={"cognito:groups": ["supervisors"]})
    sync(KNOWLEDGE, runtime.base_url, token, out=io.StringIO())
    deadline = time.monotonic() + timeout_s
    while True:
        listing = requests.get(
            f"{runtime.base_url}/knowledge/articles", headers={"Authorization": f"Bearer {token}"}, timeout=30
        ).json()
        if listing["articles"] and all(a["indexed"] for a in listing["articles"]):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the knowledge base was not indexed in time")
        runtime.wait_idle(timeout=10)


def measure(
    runtime: LocalRuntime,
    meter: Meter,
    log_bytes: Callable[[], Counter[str]],
    clear: Callable[[], None],
    rounds: int,
) -> AiAnswered:
    """``rounds`` x :data:`QUESTIONS`, each from a new web chat customer (sessions opened first)."""
    load_knowledge(runtime)
    base = runtime.base_url
    asked = [(q, lang, _session(base)) for _ in range(rounds) for q, lang in QUESTIONS]
    runtime.wait_idle(timeout=60)
    with meter.window() as snap:
        clear()
        http = sum(_ask(base, session, q) for q, _, session in asked)
        runtime.wait_idle(timeout=120)
        aws = price("AI-answered message", len(asked), http, snap, Counter(log_bytes()))
    in_tokens = out_tokens = 0
    for question, language, session in asked:
        answers = _answers(base, session)
        if not answers or not _cited(base, session):
            raise RuntimeError(f"not answered from the knowledge base: {question!r}: {answers}")
        i, o = model_tokens(question, language, answers[-1]["text"])
        in_tokens, out_tokens = in_tokens + i, out_tokens + o
    s3_gets = snap.calls_of().get(("s3", "GetObject"), 0)
    aws.lines.append(
        (
            "S3 GET (knowledge index)",
            s3_gets / len(asked),
            s3_gets * prices.S3_GET_PER_REQUEST * 1e6 / len(asked),
        )
    )
    return AiAnswered(aws, in_tokens / len(asked), out_tokens / len(asked))


def describe(result: AiAnswered) -> str:
    per_million_model = result.model_usd * 1e6
    list_price = f"{prices.BEDROCK_INPUT_PER_1K * 1000:.2f} / {prices.BEDROCK_OUTPUT_PER_1K * 1000:.2f}"
    return (
        "## Cost of an AI-answered message\n\n"
        f"{result.aws.units} web chat questions answered from the example knowledge base, each with its "
        "citation (`bench/assistant.py`).\n\n"
        "| part | per message (USD) | $ per 1M |\n|---|---:|---:|\n"
        f"| AWS: webhook -> profile -> conversation -> routing (retrieval, index check) -> answer sent "
        f"(+ KPIs) | {result.aws_usd:.7f} | {result.aws.total_per_million:.2f} |\n"
        f"| model: {prices.BEDROCK_DEFAULT_MODEL}, {result.input_tokens:.0f} input + "
        f"{result.output_tokens:.0f} output tokens at USD {list_price} per 1M | "
        f"{result.model_usd:.7f} | {per_million_model:.2f} |\n"
        f"| **AI-answered message** | **{result.total_usd:.7f}** | **{result.total_usd * 1e6:.2f}** |\n"
        + "\n".join(index_table(result.aws.snapshot, result.aws.units) + largest_table(result.aws.snapshot))
        + "\n\n"
    )
