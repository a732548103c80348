"""The knowledge base in S3: articles under ``articles/<id>.md``, the index at :data:`INDEX_KEY`.

The only code that knows the bucket's layout. The bucket is versioned and encrypted (see
``topology``); the indexing function rebuilds the index object when an article is written or
deleted, and the assistant keeps the index in memory between invocations, asking S3 at most
every ``refresh_s`` seconds whether a new version was published (a conditional GET on the
ETag: an unchanged index costs one small request, never a download).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from shared.domain.knowledge import Index
from shared.platform import aws, settings

BUCKET_ENV = settings.KNOWLEDGE_BUCKET
ARTICLES_PREFIX = "articles/"
INDEX_KEY = "index/knowledge-index.json"
#: At most this many articles are listed and indexed (a few thousand chunks).
MAX_ARTICLES = 1000


def article_key(article_id: str) -> str:
    return f"{ARTICLES_PREFIX}{article_id}.md"


def article_id_of(key: str) -> str | None:
    if not key.startswith(ARTICLES_PREFIX) or not key.endswith(".md"):
        return None
    return key[len(ARTICLES_PREFIX) : -3] or None


def _code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class KnowledgeStore:
    def __init__(self, bucket: str | None = None, s3: Any = None) -> None:
        self._bucket = bucket
        self._s3 = s3

    @property
    def bucket(self) -> str:
        if self._bucket is not None:
            return self._bucket
        from shared.platform.config import require_env  # noqa: PLC0415

        return require_env(BUCKET_ENV)  # read on each use: cheap, and follows a changed environment

    @property
    def s3(self) -> Any:
        return self._s3 if self._s3 is not None else aws.client("s3")

    @staticmethod
    def configured() -> bool:
        return bool(os.environ.get(BUCKET_ENV))

    # -- articles ----------------------------------------------------------- #
    def put_article(self, article_id: str, text: str) -> str:
        """Store the article's Markdown; its new version id (or ETag without versioning)."""
        response = self.s3.put_object(
            Bucket=self.bucket,
            Key=article_key(article_id),
            Body=text.encode(),
            ContentType="text/markdown; charset=utf-8",
        )
        return str(response.get("VersionId") or response.get("ETag", "")).strip('"')

    def get_article(self, article_id: str) -> tuple[str, str] | None:
        """``(text, version)`` of the article, or None."""
        try:
            found = self.s3.get_object(Bucket=self.bucket, Key=article_key(article_id))
        except Exception as error:
            if _code(error) in ("NoSuchKey", "404"):
                return None
            raise
        version = str(found.get("VersionId") or found.get("ETag", "")).strip('"')
        return found["Body"].read().decode("utf-8", errors="replace"), version

    def delete_article(self, article_id: str) -> bool:
        """Delete the article (a delete marker in the versioned bucket); False when there was none."""
        if self.head(article_id) is None:
            return False
        self.s3.delete_object(Bucket=self.bucket, Key=article_key(article_id))
        return True

    def head(self, article_id: str) -> dict[str, Any] | None:
        try:
            return dict(self.s3.head_object(Bucket=self.bucket, Key=article_key(article_id)))
        except Exception as error:
            if _code(error) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise

    def list_articles(self, limit: int = MAX_ARTICLES) -> list[dict[str, Any]]:
        """``{article_id, etag, size, last_modified}`` of the stored articles (at most ``limit``)."""
        out: list[dict[str, Any]] = []
        token: str | None = None
        while len(out) < limit:
            request: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": ARTICLES_PREFIX,
                "MaxKeys": min(1000, limit - len(out)),
            }
            if token:
                request["ContinuationToken"] = token
            page = self.s3.list_objects_v2(**request)
            for item in page.get("Contents", []):
                article_id = article_id_of(item["Key"])
                if article_id:
                    out.append(
                        {
                            "article_id": article_id,
                            "etag": str(item.get("ETag", "")).strip('"'),
                            "size": int(item.get("Size", 0)),
                            "last_modified": item["LastModified"].isoformat()
                            if hasattr(item.get("LastModified"), "isoformat")
                            else str(item.get("LastModified", "")),
                        }
                    )
            token = page.get("NextContinuationToken")
            if not token:
                break
        return out[:limit]

    # -- the index ------------------------------------------------------------ #
    def put_index(self, data: dict[str, Any]) -> str:
        response = self.s3.put_object(
            Bucket=self.bucket,
            Key=INDEX_KEY,
            Body=json.dumps(data, separators=(",", ":")).encode(),
            ContentType="application/json",
        )
        return str(response.get("ETag", "")).strip('"')

    def get_index(self, if_none_match: str | None = None) -> tuple[dict[str, Any] | None, str | None]:
        """``(index, etag)``; ``(None, etag)`` when unchanged since ``if_none_match``; ``(None, None)``
        when there is no index yet."""
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": INDEX_KEY}
        if if_none_match:
            request["IfNoneMatch"] = f'"{if_none_match}"'
        try:
            found = self.s3.get_object(**request)
        except Exception as error:
            code = _code(error)
            if code in ("304", "NotModified"):
                return None, if_none_match
            if code in ("NoSuchKey", "404"):
                return None, None
            raise
        return json.loads(found["Body"].read()), str(found.get("ETag", "")).strip('"')


class IndexCache:
    """The index kept between invocations; S3 is asked for a newer version at most every ``refresh_s``."""

    def __init__(
        self, store: KnowledgeStore, refresh_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self.clock = clock
        self.index: Index | None = None
        self.etag: str | None = None
        self._checked: float | None = None

    def get(self) -> Index | None:
        now = self.clock()
        if self._checked is not None and now - self._checked < self.refresh_s:
            return self.index
        self._checked = now
        try:
            data, etag = self.store.get_index(self.etag if self.index is not None else None)
        except Exception:  # S3 unavailable: answer from the index we have (none: hand over)
            return self.index
        if data is not None:
            self.index, self.etag = Index.from_dict(data), etag
        elif etag is None:
            self.index, self.etag = None, None  # no index (yet, or any more)
        return self.index
