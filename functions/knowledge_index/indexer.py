"""Rebuilds the knowledge index object from the articles in the knowledge bucket.

Order-independent and idempotent: every rebuild lists the bucket and indexes what is there,
so S3 notifications may arrive late, twice or out of order. Articles whose version is
unchanged keep their chunks (and, in the cloud, their embeddings: only new or changed chunks
are embedded). After writing the index the bucket is listed again; if an article changed
meanwhile, the index is rebuilt (at most :data:`MAX_ROUNDS` times; the change's own
notification triggers another rebuild anyway).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from shared.domain.knowledge import Article, ArticleError, Chunk, Index, build_index, parse_article
from shared.repositories.knowledge import KnowledgeStore
from shared.services.assistant import Embedder

logger = logging.getLogger(__name__)
MAX_ROUNDS = 3


@dataclass
class Rebuilt:
    articles: int = 0
    chunks: int = 0
    embedded: int = 0
    problems: dict[str, str] = field(default_factory=dict)
    rounds: int = 0


def _previous(store: KnowledgeStore) -> Index | None:
    try:
        data, _ = store.get_index()
        return Index.from_dict(data) if data else None
    except (ValueError, KeyError, TypeError):
        return None  # an unreadable or older index is simply rebuilt


def _article_from_index(index: Index, article_id: str) -> Article | None:
    """The article as the previous index has it (its chunks' text), when its version is unchanged."""
    meta = index.articles.get(article_id)
    chunks = [c for c in index.chunks if c.article_id == article_id]
    if not meta or not chunks:
        return None
    body = "\n\n".join((f"## {c.heading}\n\n{c.text}" if c.heading != c.title else c.text) for c in chunks)
    return Article(
        article_id=article_id,
        title=str(meta["title"]),
        language=str(meta["language"]),
        body=body,
        tags=tuple(meta.get("tags", ())),
        channels=tuple(meta.get("channels", ())),
    )


def rebuild(store: KnowledgeStore, embedder: Embedder | None = None) -> Rebuilt:
    result = Rebuilt()
    for round_number in range(1, MAX_ROUNDS + 1):
        result, seen = _build_once(store, embedder)
        result.rounds = round_number
        if {item["article_id"]: item["etag"] for item in store.list_articles()} == seen:
            break
    return result


def _build_once(store: KnowledgeStore, embedder: Embedder | None) -> tuple[Rebuilt, dict[str, str]]:
    listing = store.list_articles()
    previous = _previous(store)
    articles: list[Article] = []
    sources: dict[str, str] = {}
    problems: dict[str, str] = {}
    for item in listing:
        article_id, etag = item["article_id"], item["etag"]
        reused = None
        if previous is not None and previous.articles.get(article_id, {}).get("version") == etag:
            reused = _article_from_index(previous, article_id)
        if reused is not None:
            articles.append(reused)
            sources[article_id] = etag
            continue
        found = store.get_article(article_id)
        if found is None:
            continue  # deleted meanwhile
        text, _ = found
        try:
            article = parse_article(text, fallback_id=article_id)
        except ArticleError as error:
            problems[article_id] = str(error)
            continue
        articles.append(replace(article, article_id=article_id))
        sources[article_id] = etag
    index = build_index(articles, sources)
    embedded = 0
    if embedder is not None:
        embedded = _embed(index, previous, embedder)
    data: dict[str, Any] = index.to_dict()
    data["built_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data["problems"] = problems
    store.put_index(data)
    logger.info(
        "knowledge index rebuilt",
        extra={
            "articles": len(articles),
            "chunks": len(index.chunks),
            "embedded": embedded,
            "problems": problems,
        },
    )
    seen = {item["article_id"]: item["etag"] for item in listing}
    return Rebuilt(len(articles), len(index.chunks), embedded, problems), seen


def _embed(index: Index, previous: Index | None, embedder: Embedder) -> int:
    """Embeddings for every chunk; unchanged chunks keep the previous index's (same model)."""
    known: dict[str, list[float]] = {}
    if previous is not None and previous.embeddings and previous.embedding_model == embedder.model_id:
        known = {c.digest: v for c, v in zip(previous.chunks, previous.embeddings, strict=False)}
    missing: list[Chunk] = [c for c in index.chunks if c.digest not in known]
    if missing:
        vectors = embedder.embed([c.embedding_text() for c in missing], kind="search_document")
        known.update({c.digest: v for c, v in zip(missing, vectors, strict=True)})
    index.embeddings = [known[c.digest] for c in index.chunks]
    index.embedding_model = embedder.model_id
    return len(missing)
