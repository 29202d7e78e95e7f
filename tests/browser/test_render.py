"""The Markdown pipeline in the browser, on unfinished and hostile text.

`render.js` is imported into a signed-in page (through the page's import map)
and fed literal inputs; what matters is the DOM a reader would get.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

RENDER = """async ([text, streaming]) => {
  const { toFragment } = await import('/static/render.js');
  const box = document.createElement('div');
  box.append(toFragment(text, { streaming }));
  return {
    html: box.innerHTML,
    text: box.textContent,
    tags: [...box.querySelectorAll('*')].map((el) => el.tagName.toLowerCase()),
    hrefs: [...box.querySelectorAll('a')].map((a) => a.getAttribute('href')),
    attributes: [...box.querySelectorAll('*')].flatMap((el) => el.getAttributeNames()),
  };
}"""


@pytest.fixture
def render(page: Page) -> Any:
    page.goto("/")
    page.wait_for_selector("#shell:not([hidden])")

    def run(text: str, streaming: bool = True) -> dict[str, Any]:
        return page.evaluate(RENDER, [text, streaming])

    return run


def test_an_open_code_fence_renders_as_highlighted_code(render: Any) -> None:
    out = render("Here:\n\n```python\ndef f():\n    return 1")
    assert "pre" in out["tags"] and "code" in out["tags"]
    assert "```" not in out["text"]
    assert 'class="hljs-keyword"' in out["html"]


def test_unfinished_emphasis_code_and_links_are_closed_while_streaming(render: Any) -> None:
    assert "strong" in render("Some **bold te")["tags"]
    assert "code" in render("Run `pip ins")["tags"]
    link = render("See [the docs](https://exa")
    assert link["text"].strip() == "See the docs"
    assert link["hrefs"] == [None]  # a placeholder, not a half URL


def test_finished_text_is_not_healed(render: Any) -> None:
    assert render("2 * 3 is 6 and **not closed", streaming=False)["text"].strip() == (
        "2 * 3 is 6 and **not closed"
    )


def test_headings_lists_tables_and_links_render(render: Any) -> None:
    out = render(
        "# Title\n\n- a\n- b\n\n| x | y |\n|---|---|\n| 1 | 2 |\n\n[go](https://example.com)"
    )
    assert {"h1", "ul", "li", "table", "th", "td", "a"} <= set(out["tags"])
    assert out["hrefs"] == ["https://example.com"]
    assert 'target="_blank"' in out["html"] and 'rel="noopener noreferrer nofollow"' in out["html"]


@pytest.mark.parametrize(
    "hostile",
    [
        '<img src=x onerror="alert(1)">',
        "<script>alert(1)</script>",
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](data:text/html,<script>alert(1)</script>)",
        "![x](https://tracker.example/pixel.png)",
        '<a href="javascript:alert(1)">x</a>',
        "<iframe src=https://example.com></iframe>",
        '<svg><g onload="alert(1)"></g></svg>',
    ],
)
def test_hostile_markup_renders_inert(render: Any, hostile: str) -> None:
    for streaming in (True, False):
        out = render(hostile, streaming)
        assert not {"img", "script", "iframe", "svg"} & set(out["tags"])
        assert all(
            href is None or href.startswith(("http://", "https://")) for href in out["hrefs"]
        ), out["hrefs"]
        assert not [name for name in out["attributes"] if name.startswith("on")]
