"""Knowledge indexing: S3 notifications of the knowledge bucket (through the knowledge-index
queue) trigger a rebuild of the index object. One rebuild per batch, whatever it holds (an
object created, an object removed, S3's test event): the rebuild reads the bucket itself.
A failure fails the whole batch, which SQS delivers again (the rebuild is idempotent).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.knowledge_index.indexer import rebuild
from shared.platform.observability import new_logger, new_tracer
from shared.repositories.knowledge import KnowledgeStore
from shared.services.assistant import EMBEDDING_ENV, MODE_ENV, Embedder

logger = new_logger()
tracer = new_tracer()
store = KnowledgeStore()


def embedder_from_env() -> Embedder | None:
    model = os.environ.get(EMBEDDING_ENV)
    if os.environ.get(MODE_ENV, "extractive").lower() != "bedrock" or not model:
        return None
    from shared.services.assistant.bedrock import BedrockEmbedder  # noqa: PLC0415 - cloud only

    return BedrockEmbedder(model)


@tracer.capture_method
def batch_handler(records: list[dict[str, Any]]) -> None:
    """One rebuild for the whole batch (the rebuild reads the bucket, not the records)."""
    result = rebuild(store, embedder_from_env())
    logger.info(
        "knowledge indexed",
        extra={
            "records": len(records),
            "articles": result.articles,
            "chunks": result.chunks,
            "rounds": result.rounds,
        },
    )


@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch_handler(event.get("Records", []))
    return {"batchItemFailures": []}
