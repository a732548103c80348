"""The knowledge base the assistant answers from: articles, chunks, and lexical retrieval (pure).

An article is a Markdown file with a small front matter::

    ---
    title: Returning an item
    language: en
    id: returns            # optional: the file name without .md otherwise
    tags: [return, send back, refund]
    channels: [webchat, email]   # optional: every channel when absent
    ---
    # Returning an item
    ...

Articles are split into chunks by heading (a section per ``#``/``##``/``###`` heading; long
sections by paragraph), and the chunks are indexed with BM25 over a language-aware
tokenisation (English and German stop words, a light suffix stemmer, umlauts folded,
German compounds split against the index's own vocabulary). Everything here is pure and
JSON-serialisable: the indexing function builds an :class:`Index` and stores
:meth:`Index.to_dict`, the assistant loads it with :meth:`Index.from_dict`.

Search is bounded: a query reads only the postings of its own terms (at most
:data:`MAX_QUERY_TERMS`), so a knowledge base of a few thousand chunks answers in
milliseconds.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: Index format version (a function meeting a newer one refuses it rather than misreading it).
INDEX_FORMAT = 1
#: Longest chunk (characters); longer sections are split at paragraph boundaries.
MAX_CHUNK_CHARS = 1200
MAX_ARTICLE_BYTES = 200_000
MAX_QUERY_TERMS = 32
BM25_K1 = 1.2
BM25_B = 0.75
#: Weight of the title, heading and tags relative to the body (they are repeated this often).
TITLE_WEIGHT = 2
ARTICLE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")
LANGUAGE = re.compile(r"^[a-z]{2}(-[A-Z]{2})?$")


class ArticleError(ValueError):
    """An article that cannot be indexed; the message says why."""


@dataclass(frozen=True)
class Article:
    article_id: str
    title: str
    language: str
    body: str
    tags: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    article_id: str
    title: str
    language: str
    heading: str
    text: str
    tags: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        """Changes when what is embedded changes (embeddings are reused otherwise)."""
        return hashlib.sha256(f"{self.title}\n{self.heading}\n{self.text}".encode()).hexdigest()[:16]

    def embedding_text(self) -> str:
        return (
            f"{self.title} - {self.heading}\n{self.text}"
            if self.heading != self.title
            else (f"{self.title}\n{self.text}")
        )


# --------------------------------------------------------------------------- #
# Articles
# --------------------------------------------------------------------------- #


def slugify(value: str) -> str:
    folded = fold(value)
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9]+", "-", folded)).strip("-")[:80]


def _front_value(raw: str) -> str | tuple[str, ...]:
    raw = raw.strip()
    if raw.startswith("[") and raw.endswith("]"):
        return tuple(v.strip().strip("'\"") for v in raw[1:-1].split(",") if v.strip().strip("'\""))
    return raw.strip("'\"")


def parse_article(text: str, fallback_id: str | None = None) -> Article:
    """An article from Markdown with front matter; :class:`ArticleError` when it is not one."""
    if len(text.encode()) > MAX_ARTICLE_BYTES:
        raise ArticleError(f"an article may have at most {MAX_ARTICLE_BYTES} bytes")
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        raise ArticleError("an article starts with a front matter block (---)")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise ArticleError("the front matter is not closed (---)") from None
    front: dict[str, str | tuple[str, ...]] = {}
    for number, line in enumerate(lines[1:end], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ArticleError(f"front matter line {number}: expected 'key: value'")
        front[key.strip().lower()] = _front_value(value.split(" #", 1)[0])
    unknown = set(front) - {"title", "language", "id", "tags", "channels"}
    if unknown:
        raise ArticleError(f"unknown front matter keys {sorted(unknown)}")
    title, language = front.get("title"), front.get("language")
    if not isinstance(title, str) or not title:
        raise ArticleError("front matter: title is required")
    if not isinstance(language, str) or not LANGUAGE.match(language):
        raise ArticleError("front matter: language is required (e.g. en, de)")
    raw_id = front.get("id") or fallback_id or slugify(title)
    article_id = raw_id if isinstance(raw_id, str) else ""
    if not ARTICLE_ID.match(article_id):
        raise ArticleError(f"article id {article_id!r}: lower-case letters, digits and hyphens (max 80)")
    tags, channels = front.get("tags", ()), front.get("channels", ())
    body = "\n".join(lines[end + 1 :]).strip()
    if not body:
        raise ArticleError("the article has no text")
    return Article(
        article_id=article_id,
        title=title,
        language=language.split("-")[0],
        body=body,
        tags=tuple(tags) if isinstance(tags, tuple) else (tags,),
        channels=tuple(channels) if isinstance(channels, tuple) else (channels,),
    )


_HEADING = re.compile(r"^(#{1,3})\s+(.+?)\s*#*\s*$")


def chunk_article(article: Article, max_chars: int = MAX_CHUNK_CHARS) -> list[Chunk]:
    """One chunk per section under a heading (text before the first heading under the title);
    sections longer than ``max_chars`` split at paragraph boundaries."""
    sections: list[tuple[str, list[str]]] = [(article.title, [])]
    for line in article.body.splitlines():
        match = _HEADING.match(line)
        if match:
            sections.append((match.group(2).strip(), []))
        else:
            sections[-1][1].append(line)
    chunks: list[Chunk] = []
    for heading, body_lines in sections:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", "\n".join(body_lines)) if p.strip()]
        for part in _pack(paragraphs, max_chars):
            chunks.append(
                Chunk(
                    chunk_id=f"{article.article_id}#{len(chunks)}",
                    article_id=article.article_id,
                    title=article.title,
                    language=article.language,
                    heading=heading,
                    text=part,
                    tags=article.tags,
                    channels=article.channels,
                )
            )
    return chunks


def _pack(paragraphs: Sequence[str], max_chars: int) -> list[str]:
    parts: list[str] = []
    current = ""
    for whole in paragraphs:
        paragraph = whole
        while len(paragraph) > max_chars:  # one huge paragraph: cut at a sentence end if possible
            cut = paragraph.rfind(". ", 0, max_chars)
            cut = cut + 1 if cut > max_chars // 2 else max_chars
            if current:
                parts.append(current)
                current = ""
            parts.append(paragraph[:cut].strip())
            paragraph = paragraph[cut:].strip()
        if current and len(current) + 2 + len(paragraph) > max_chars:
            parts.append(current)
            current = paragraph
        else:
            current = f"{current}\n\n{paragraph}" if current else paragraph
    if current:
        parts.append(current)
    return parts


def plain_text(markdown: str) -> str:
    """Markdown made readable as a chat message (emphasis, links and list markers removed)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    text = re.sub(r"[*_`]{1,3}([^*_`]+)[*_`]{1,3}", r"\1", text)
    text = re.sub(r"^\s*[-*+]\s+", "- ", text, flags=re.MULTILINE)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --------------------------------------------------------------------------- #
# Tokenisation
# --------------------------------------------------------------------------- #

STOPWORDS = frozenset(
    """a an and are as at be been but by can could did do does doing for from had has have how i if in
    into is it its me my of on or our please so that the their them then there these they this to was
    we were what when where which who why will with would you your yours hi hello hey thanks thank
    am any also just get got want need know tell let about ok
    aber als am an auch auf aus bei bin bis bitte da dann das dass dem den der des die dies diese doch du
    ein eine einem einen einer es euch für fuer hab habe haben hallo hat ich ihr ihre im in ist ja kann
    können koennen man mein meine meinem meinen mich mir mit muss nach nicht noch nur oder sein sie sind
    so um und uns unser vom von vor war was wie wir wird wo zu zum zur danke gerne guten tag moechte möchte
    """.split()  # noqa: SIM905 - a word list reads better as text
)
_SUFFIXES = ("ungen", "ung", "ing", "ern", "en", "er", "ed", "es", "e", "n", "s")


def fold(text: str) -> str:
    """Lower case without diacritics (``Rücksendung`` -> ``rucksendung``); ``ß`` -> ``ss``."""
    text = text.lower().replace("ß", "ss")
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def stem(word: str) -> str:
    """A light suffix stemmer for English and German (one suffix, the stem keeps 3+ letters)."""
    if word.endswith("ies") and len(word) > 5:
        return word[:-3] + "y"
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def tokenize(text: str) -> list[str]:
    """Stemmed terms of ``text`` without stop words (English and German)."""
    lowered = text.lower()
    out: list[str] = []
    for word in re.findall(r"[^\W_]+", lowered):
        if word in STOPWORDS:
            continue
        folded = fold(word)
        if folded in STOPWORDS or len(folded) < 2:
            continue
        out.append(stem(folded))
    return out


# --------------------------------------------------------------------------- #
# BM25 index
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    #: BM25 score (unbounded).
    score: float
    #: Share of the query's weight (IDF) the chunk contains, 0..1: the lexical confidence.
    coverage: float


@dataclass
class Index:
    chunks: list[Chunk]
    #: term -> [[chunk number, term frequency], ...]
    postings: dict[str, list[list[int]]]
    lengths: list[int]
    #: The article id -> {title, language, source} of every indexed article.
    articles: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Embedding per chunk (cloud only), and the model that made them.
    embeddings: list[list[float]] | None = None
    embedding_model: str | None = None
    #: BM25's length normalisation per chunk, computed on the first search (the index is immutable).
    _norms: list[float] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def average_length(self) -> float:
        return (sum(self.lengths) / len(self.lengths)) if self.lengths else 0.0

    def idf(self, term: str) -> float:
        n = len(self.chunks)
        df = len(self.postings.get(term, ()))
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def query_terms(self, text: str) -> list[str]:
        """The query's terms; an unknown long word is split into two known ones (German compounds)."""
        terms: list[str] = []
        for term in tokenize(text):
            if term not in self.postings and len(term) >= 8:
                terms.extend(split_compound(term, self.postings))
            else:
                terms.append(term)
        return list(dict.fromkeys(terms))[:MAX_QUERY_TERMS]

    def search(
        self,
        text: str,
        *,
        language: str | None = None,
        channel: str | None = None,
        limit: int = 5,
    ) -> list[Hit]:
        """The best chunks for ``text`` (only ``language``'s and ``channel``'s when given)."""
        terms = self.query_terms(text)
        if not terms or not self.chunks:
            return []
        weights = {t: self.idf(t) for t in terms}
        total = sum(weights.values()) or 1.0
        norms = self._length_norms()
        scores: dict[int, float] = {}
        covered: dict[int, float] = {}
        for term in terms:
            idf = weights[term]
            for number, tf in self.postings.get(term, ()):
                scores[number] = scores.get(number, 0.0) + idf * tf * (BM25_K1 + 1) / (tf + norms[number])
                covered[number] = covered.get(number, 0.0) + idf
        ranked = sorted(scores, key=lambda n: (-scores[n], self.chunks[n].chunk_id))
        hits: list[Hit] = []
        for n in ranked:
            if allowed(self.chunks[n], language, channel):
                hits.append(Hit(self.chunks[n], round(scores[n], 6), round(covered[n] / total, 6)))
                if len(hits) == limit:
                    break
        return hits

    def _length_norms(self) -> list[float]:
        if self._norms is None:
            avg = self.average_length or 1.0
            self._norms = [BM25_K1 * (1 - BM25_B + BM25_B * length / avg) for length in self.lengths]
        return self._norms

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "chunks": [asdict(c) for c in self.chunks],
            "postings": self.postings,
            "lengths": self.lengths,
            "articles": self.articles,
            "embeddings": self.embeddings,
            "embedding_model": self.embedding_model,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Index:
        if data.get("format") != INDEX_FORMAT:
            raise ValueError(f"unsupported knowledge index format {data.get('format')!r}")
        chunks = [
            Chunk(**{**c, "tags": tuple(c.get("tags", ())), "channels": tuple(c.get("channels", ()))})
            for c in data["chunks"]
        ]
        return cls(
            chunks=chunks,
            postings={k: [list(p) for p in v] for k, v in data["postings"].items()},
            lengths=list(data["lengths"]),
            articles=dict(data.get("articles") or {}),
            embeddings=data.get("embeddings"),
            embedding_model=data.get("embedding_model"),
        )


def allowed(chunk: Chunk, language: str | None, channel: str | None) -> bool:
    if language is not None and chunk.language != language:
        return False
    return not (channel is not None and chunk.channels and channel not in chunk.channels)


def split_compound(term: str, vocabulary: dict[str, Any] | Iterable[str]) -> list[str]:
    """``term`` as two known terms (``passwortander`` -> ``passwort``, ``ander``), else itself."""
    known = vocabulary if isinstance(vocabulary, dict) else set(vocabulary)
    for cut in range(len(term) - 3, 3, -1):
        head, tail = term[:cut], term[cut:]
        tail = tail[1:] if tail.startswith("s") and tail[1:] in known else tail  # Fugen-s
        if head in known and (tail in known or stem(tail) in known):
            return [head, tail if tail in known else stem(tail)]
    return [term]


def chunk_terms(chunk: Chunk) -> list[str]:
    header = f"{chunk.title} {chunk.heading} {' '.join(chunk.tags)}"
    return tokenize(header) * TITLE_WEIGHT + tokenize(chunk.text)


def build_index(articles: Sequence[Article], sources: dict[str, str] | None = None) -> Index:
    """The index of ``articles`` (``sources``: article id -> the object version it came from)."""
    chunks = [c for a in sorted(articles, key=lambda a: a.article_id) for c in chunk_article(a)]
    postings: dict[str, list[list[int]]] = {}
    lengths: list[int] = []
    for number, chunk in enumerate(chunks):
        counts = Counter(chunk_terms(chunk))
        lengths.append(sum(counts.values()))
        for term, tf in sorted(counts.items()):
            postings.setdefault(term, []).append([number, tf])
    meta = {
        a.article_id: {
            "title": a.title,
            "language": a.language,
            "tags": list(a.tags),
            "channels": list(a.channels),
            **({"version": sources[a.article_id]} if sources and a.article_id in sources else {}),
        }
        for a in articles
    }
    return Index(chunks=chunks, postings=postings, lengths=lengths, articles=meta)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0
