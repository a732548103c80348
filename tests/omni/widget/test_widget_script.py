"""The widget script's budget and rules, read from the file itself.

The widget in a browser: tests/e2e/test_widget_browser.py."""

from __future__ import annotations

import re

from omni.widget import (
    MAX_GZIPPED_BYTES,
    SCRIPT,
    content_security_policy,
    gzipped_size,
    script_tag,
    versioned_name,
)
from tests.helpers import REPO_ROOT


def code() -> str:
    """The script without its comments (block comments and whole-line // comments)."""
    text = re.sub(r"/\*.*?\*/", "", SCRIPT.read_text(), flags=re.DOTALL)
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith("//"))


def test_the_script_is_under_30_kb_gzipped() -> None:
    size = gzipped_size()
    assert size < MAX_GZIPPED_BYTES == 30 * 1024, f"{size} bytes gzipped"


def test_no_html_is_ever_parsed_from_strings() -> None:
    source = code()
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "createContextualFragment",
    ):
        assert sink not in source, sink
    assert not re.search(r"\beval\s*\(|new Function\s*\(|setTimeout\(\s*[\"']", source)
    # Message text reaches the page through textContent only.
    assert "textContent" in source


def test_nothing_is_loaded_from_anywhere_else() -> None:
    source = code()
    urls = set(re.findall(r"https?://[^\s\"')]+", source))
    assert urls == {"http://www.w3.org/2000/svg"}  # a namespace name, never fetched
    assert 'createElement("script")' not in source
    assert "import(" not in source


def test_the_versioned_name_changes_with_the_content() -> None:
    assert re.fullmatch(r"omni-chat\.[0-9a-f]{10}\.js", versioned_name())
    assert versioned_name() == versioned_name()


def test_the_tag_and_the_csp_a_host_page_needs() -> None:
    tag = script_tag(
        "https://cdn.example/widget/omni-chat.js",
        "https://api.example",
        "wss://ws.example/prod",
        title='A "B"',
    )
    assert tag == (
        '<script src="https://cdn.example/widget/omni-chat.js" data-api="https://api.example" '
        'data-socket="wss://ws.example/prod" data-title="A &quot;B&quot;" async></script>'
    )
    csp = content_security_policy("https://api.example", "wss://ws.example", "https://cdn.example")
    assert "script-src 'self' https://cdn.example;" in csp
    assert "connect-src 'self' https://api.example wss://ws.example;" in csp
    assert "unsafe" not in csp


def test_the_readme_web_chat_section_starts_with_the_script_tag() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("\n## Web chat\n", 1)[1].lstrip()
    assert section.startswith("```html\n<script src=")
    assert "/widget/omni-chat." in section.split("```", 2)[1]
