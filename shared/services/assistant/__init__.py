"""The assistant: answers a question from the knowledge base, or says why a person should.

:meth:`Assistant.answer` retrieves passages (lexical BM25, blended with vector similarity when
the index has embeddings and an embedder is configured), skips the model when nothing is
relevant enough, and asks the answerer: Bedrock Converse in the cloud
(:mod:`shared.services.assistant.bedrock`), the deterministic extractive answerer locally
and whenever Bedrock is not configured. It never raises: any failure becomes a hand-over
(:data:`~shared.domain.assistant.ASSISTANT_ERROR`), so no message is lost to the assistant.

Configuration (environment):

* ``OMNI_ASSISTANT`` - ``bedrock``, ``extractive`` (default) or ``off``.
* ``OMNI_ASSISTANT_MODEL_ID`` - the Converse model (default :data:`bedrock.DEFAULT_MODEL_ID`).
* ``OMNI_ASSISTANT_GUARDRAIL_ID`` / ``OMNI_ASSISTANT_GUARDRAIL_VERSION`` - optional guardrail.
* ``OMNI_EMBEDDING_MODEL_ID`` - the embedding model (empty: lexical retrieval only).
* ``OMNI_ASSISTANT_MIN_CONFIDENCE`` - the hand-over threshold (default: ``assistant.toml``).
* ``KNOWLEDGE_BUCKET`` - the knowledge bucket (set by the topology grant).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from shared.domain.assistant import (
    ASSISTANT_ERROR,
    LOW_CONFIDENCE,
    AssistantConfig,
    AssistantReply,
    Passage,
    extractive_answer,
    load_config,
    retrieve,
)
from shared.platform import settings
from shared.repositories.knowledge import IndexCache, KnowledgeStore

logger = logging.getLogger(__name__)

MODE_ENV = settings.OMNI_ASSISTANT
MODEL_ENV = settings.OMNI_ASSISTANT_MODEL_ID
GUARDRAIL_ENV = settings.OMNI_ASSISTANT_GUARDRAIL_ID
GUARDRAIL_VERSION_ENV = settings.OMNI_ASSISTANT_GUARDRAIL_VERSION
EMBEDDING_ENV = settings.OMNI_EMBEDDING_MODEL_ID
REFRESH_ENV = settings.OMNI_KNOWLEDGE_REFRESH_S
MIN_CONFIDENCE_ENV = settings.OMNI_ASSISTANT_MIN_CONFIDENCE


class Answerer(Protocol):
    def answer(self, question: str, language: str, passages: Sequence[Passage]) -> AssistantReply: ...


class Embedder(Protocol):
    model_id: str
    tokens: int

    def embed(self, texts: Sequence[str], kind: str = "search_document") -> list[list[float]]: ...


class ExtractiveAnswerer:
    """The best passage, when confident enough (same contract as the model)."""

    def __init__(self, config: AssistantConfig) -> None:
        self.config = config

    def answer(self, question: str, language: str, passages: Sequence[Passage]) -> AssistantReply:
        return extractive_answer(passages, self.config)


class Assistant:
    def __init__(
        self,
        index: IndexCache,
        config: AssistantConfig | None = None,
        answerer: Answerer | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.index = index
        self.config = config or load_config()
        self.answerer = answerer or ExtractiveAnswerer(self.config)
        self.embedder = embedder

    def passages(self, question: str, language: str, channel: str | None) -> list[Passage]:
        index = self.index.get()
        if index is None:
            return []
        vector = None
        if self.embedder is not None and index.embeddings is not None:
            try:
                vector = self.embedder.embed([question], kind="search_query")[0]
            except Exception as error:  # lexical retrieval still works
                logger.warning("query embedding failed; lexical retrieval only: %s", error)
        return retrieve(
            index,
            question,
            language=language,
            channel=channel,
            query_vector=vector,
            limit=self.config.max_passages,
        )

    def answer(self, question: str, language: str, channel: str | None = None) -> AssistantReply:
        """The answer to ``question``, or a hand-over reason; never raises."""
        try:
            passages = self.passages(question, language, channel)
        except Exception:
            logger.exception("knowledge retrieval failed")
            return AssistantReply(False, None, handover_reason=ASSISTANT_ERROR)
        relevant = [p for p in passages if p.score >= self.config.min_confidence]
        if not relevant:
            best = passages[0].score if passages else 0.0
            return AssistantReply(False, None, handover_reason=LOW_CONFIDENCE, confidence=best)
        try:
            reply = self.answerer.answer(question, language, relevant)
        except Exception as error:  # AnswererError and anything unexpected: a person answers
            logger.warning("the assistant could not answer: %s", error)
            return AssistantReply(False, None, handover_reason=ASSISTANT_ERROR, confidence=relevant[0].score)
        if self.embedder is not None and self.embedder.tokens:
            from shared.services.assistant.bedrock import cost_usd  # noqa: PLC0415

            reply = replace(
                reply,
                cost_usd=round(reply.cost_usd + cost_usd(self.embedder.model_id, self.embedder.tokens, 0), 8),
            )
            self.embedder.tokens = 0
        return reply


def assistant_from_env(config: AssistantConfig | None = None) -> Assistant | None:
    """The assistant the environment configures; None when it is off or has no knowledge bucket."""
    mode = os.environ.get(MODE_ENV, "extractive").strip().lower()
    if mode == "off" or not KnowledgeStore.configured():
        return None
    config = config or load_config()
    threshold = settings.env_str(MIN_CONFIDENCE_ENV)
    if threshold is not None:
        config = replace(config, min_confidence=min(1.0, max(0.0, float(threshold))))
    cache = IndexCache(KnowledgeStore(), refresh_s=float(os.environ.get(REFRESH_ENV, "30")))
    if mode != "bedrock":
        return Assistant(cache, config)
    from shared.services.assistant.bedrock import (  # noqa: PLC0415 - cloud only
        DEFAULT_MODEL_ID,
        BedrockEmbedder,
        ConverseAnswerer,
    )

    answerer = ConverseAnswerer(
        model_id=os.environ.get(MODEL_ENV) or DEFAULT_MODEL_ID,
        guardrail_id=os.environ.get(GUARDRAIL_ENV) or None,
        guardrail_version=os.environ.get(GUARDRAIL_VERSION_ENV) or "DRAFT",
    )
    embedding_model = os.environ.get(EMBEDDING_ENV)
    embedder = BedrockEmbedder(embedding_model) if embedding_model else None
    return Assistant(cache, config, answerer, embedder)
