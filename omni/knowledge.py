"""``omni knowledge sync DIR``: load a folder of Markdown articles into the assistant's knowledge base.

Every ``*.md`` file under ``DIR`` (``README.md`` files excepted) is checked locally, then
``PUT /knowledge/articles/{id}`` through the agent API - of the local stack by default (its
address is in ``.omni/local.json``; a local supervisor token is issued), of another stack with
``--endpoint URL --token JWT``. ``--delete`` also removes stored articles the folder no longer
has. The id is the front matter's ``id``, else the file name without ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO

from shared.domain.knowledge import ArticleError, parse_article, slugify


class SyncError(RuntimeError):
    pass


def read_folder(folder: Path) -> dict[str, str]:
    """``{article id: markdown}`` of the folder's articles; :class:`SyncError` names every bad file."""
    found: dict[str, str] = {}
    problems: list[str] = []
    for path in sorted(folder.rglob("*.md")):
        if path.name.lower() == "readme.md":
            continue
        text = path.read_text(encoding="utf-8")
        try:
            article = parse_article(text, fallback_id=slugify(path.stem))
        except ArticleError as error:
            problems.append(f"{path}: {error}")
            continue
        if article.article_id in found:
            problems.append(f"{path}: id {article.article_id!r} is used twice")
        found[article.article_id] = text
    if problems:
        raise SyncError("\n".join(problems))
    return found


def _call(method: str, url: str, token: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - given URL
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def sync(folder: Path, base_url: str, token: str, delete: bool = False, out: TextIO = sys.stdout) -> int:
    """Upload the folder's articles; the number of articles written (and deleted)."""
    articles = read_folder(folder)
    base = base_url.rstrip("/")
    changed = 0
    for article_id, text in articles.items():
        status, body = _call("PUT", f"{base}/knowledge/articles/{article_id}", token, {"markdown": text})
        if status != 200:
            raise SyncError(f"PUT {article_id}: {status} {body.get('message', body)}")
        print(f"  put     {article_id:<32} {body.get('language', '')}  {body.get('title', '')}", file=out)
        changed += 1
    if delete:
        status, listing = _call("GET", f"{base}/knowledge/articles", token)
        if status != 200:
            raise SyncError(f"GET /knowledge/articles: {status}")
        for item in listing.get("articles", []):
            if item["article_id"] not in articles:
                status, body = _call("DELETE", f"{base}/knowledge/articles/{item['article_id']}", token)
                if status not in (200, 404):
                    raise SyncError(f"DELETE {item['article_id']}: {status} {body.get('message', body)}")
                print(f"  deleted {item['article_id']}", file=out)
                changed += 1
    return changed


def cmd_sync(args: argparse.Namespace, out: TextIO) -> int:
    base_url, token = args.endpoint, args.token
    if not base_url:
        from omni.local.state import read_state  # noqa: PLC0415

        base_url = (read_state(Path(args.state_file)) or {}).get("base_url")
        if not base_url:
            print(
                "omni knowledge sync: no running local stack (start `omni local`) and no --endpoint",
                file=sys.stderr,
            )
            return 2
    if not token:
        if args.endpoint:
            print(
                "omni knowledge sync: --token (a supervisor's JWT) is needed with --endpoint", file=sys.stderr
            )
            return 2
        from omni.local.auth import issue_agent_token  # noqa: PLC0415

        token = issue_agent_token("knowledge-sync", 600, extra_claims={"cognito:groups": ["supervisors"]})
    try:
        count = sync(Path(args.folder), base_url, token, delete=args.delete, out=out)
    except (SyncError, OSError) as error:
        print(f"omni knowledge sync: {error}", file=sys.stderr)
        return 1
    print(f"{count} article(s) synced to {base_url}; indexed in a moment", file=out)
    return 0


def register(commands: Any) -> None:
    knowledge = commands.add_parser("knowledge", help="the assistant's knowledge base")
    actions = knowledge.add_subparsers(dest="action", required=True, metavar="ACTION")
    sync_parser = actions.add_parser("sync", help="upload a folder of Markdown articles")
    sync_parser.add_argument("folder", help="folder of *.md articles (front matter: title, language, ...)")
    sync_parser.add_argument("--endpoint", help="the stack's HTTP API (default: the running local stack)")
    sync_parser.add_argument("--token", help="a supervisor's JWT (default: a local token)")
    sync_parser.add_argument("--delete", action="store_true", help="delete stored articles the folder lacks")
    sync_parser.add_argument(
        "--state-file", default=str(Path(".omni") / "local.json"), help=argparse.SUPPRESS
    )
    sync_parser.set_defaults(run=cmd_sync)
