"""Agent API: the assistant's knowledge base (docs/assistant.md).

Every agent may read the articles; writing them (``PUT``/``DELETE``) is for supervisors.
An article is Markdown with a small front matter (``title``, ``language``, optional ``id``,
``tags``, ``channels``); it is checked before it is stored, so a broken article never reaches
the index. Stored under ``articles/<id>.md`` in the versioned knowledge bucket, it is indexed
by the knowledge-index function a moment later (``indexed`` in the listing says when).
"""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field

from functions.agent_api.deps import is_supervisor, json_body
from shared.domain.knowledge import ARTICLE_ID, MAX_ARTICLE_BYTES, ArticleError, parse_article
from shared.platform.http import documented, error
from shared.repositories.knowledge import KnowledgeStore

router = APIGatewayHttpRouter()
store = KnowledgeStore()
ArticleId = Annotated[str, Path(pattern=ARTICLE_ID.pattern, max_length=80)]


class ArticleBody(BaseModel):
    model_config = ConfigDict(defer_build=True)

    #: The article: Markdown with front matter.
    markdown: Annotated[str, Field(min_length=1, max_length=MAX_ARTICLE_BYTES)]


class ArticleInfo(BaseModel):
    model_config = ConfigDict(defer_build=True)

    article_id: str
    title: str | None = None
    language: str | None = None
    tags: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    #: The stored object's ETag.
    version: str | None = None
    #: The index has this version of the article.
    indexed: bool = False
    #: Why the indexer could not index it (it was changed outside the API).
    problem: str | None = None


class ArticleList(BaseModel):
    model_config = ConfigDict(defer_build=True)

    articles: list[ArticleInfo]
    #: When the index was last built, and how many chunks it has.
    indexed_at: str | None = None
    chunks: int = 0


class ArticleDocument(ArticleInfo):
    markdown: str


def _forbidden() -> Response[dict[str, Any]]:
    return error(403, "only supervisors may change the knowledge base")


@router.get("/knowledge/articles", responses=documented(200, ArticleList, 401))
def list_articles() -> Response[dict[str, Any]]:
    """The stored articles (at most 1,000) and whether the index has their current version."""
    index, _ = store.get_index()
    meta: dict[str, Any] = (index or {}).get("articles", {})
    problems: dict[str, str] = (index or {}).get("problems", {})
    infos = []
    for item in store.list_articles():
        known = meta.get(item["article_id"], {})
        infos.append(
            ArticleInfo(
                article_id=item["article_id"],
                title=known.get("title"),
                language=known.get("language"),
                tags=list(known.get("tags", [])),
                channels=list(known.get("channels", [])),
                version=item["etag"],
                indexed=known.get("version") == item["etag"],
                problem=problems.get(item["article_id"]),
            )
        )
    return json_body(
        200,
        ArticleList(
            articles=infos,
            indexed_at=(index or {}).get("built_at"),
            chunks=len((index or {}).get("chunks", [])),
        ),
    )


@router.get("/knowledge/articles/<article_id>", responses=documented(200, ArticleDocument, 401, 404))
def get_article(article_id: ArticleId) -> Response[dict[str, Any]]:
    found = store.get_article(article_id)
    if found is None:
        return error(404, f"no article {article_id!r}")
    text, version = found
    try:
        article = parse_article(text, fallback_id=article_id)
        extra: dict[str, Any] = {"title": article.title, "language": article.language}
    except ArticleError as problem:
        extra = {"problem": str(problem)}
    return json_body(200, ArticleDocument(article_id=article_id, version=version, markdown=text, **extra))


@router.put("/knowledge/articles/<article_id>", responses=documented(200, ArticleInfo, 400, 401, 403))
def put_article(article_id: ArticleId, body: ArticleBody) -> Response[dict[str, Any]]:
    """Create or replace an article (supervisors); indexed a moment later."""
    if not is_supervisor(router):
        return _forbidden()
    try:
        article = parse_article(body.markdown, fallback_id=article_id)
    except ArticleError as problem:
        return error(400, str(problem))
    if article.article_id != article_id:
        return error(400, f"the front matter's id {article.article_id!r} is not the path's {article_id!r}")
    version = store.put_article(article_id, body.markdown)
    return json_body(
        200,
        ArticleInfo(
            article_id=article_id,
            title=article.title,
            language=article.language,
            tags=list(article.tags),
            channels=list(article.channels),
            version=version,
        ),
    )


@router.delete("/knowledge/articles/<article_id>", responses=documented(200, ArticleInfo, 401, 403, 404))
def delete_article(article_id: ArticleId) -> Response[dict[str, Any]]:
    """Delete an article (supervisors); earlier versions stay in the versioned bucket."""
    if not is_supervisor(router):
        return _forbidden()
    if not store.delete_article(article_id):
        return error(404, f"no article {article_id!r}")
    return json_body(200, ArticleInfo(article_id=article_id))
