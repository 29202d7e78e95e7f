"""Browser tests: Python Playwright drives the Debian Chromium against a real server.

The server is `tests.support.server` (a real uvicorn on a free port, with the
scripted model as its default). Pages sign in with a session cookie set
through the browser context's own request client, so only the sign-in test
types a password. `artifacts/screenshots/` receives the screenshots.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect

from tests.support.server import LiveServer, start, stop

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
STATIC = Path(__file__).resolve().parents[2] / "src" / "gapless" / "web" / "static"

# Every text an assistant message's content showed, per message id, in order.
RECORDER = """
window.__renders = {};
new MutationObserver(() => {
  for (const el of document.querySelectorAll('.msg.assistant[data-id]')) {
    const text = el.querySelector('.content').textContent;
    const seen = (window.__renders[el.dataset.id] ||= []);
    if (seen.at(-1) !== text) seen.push(text);
  }
}).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not (STATIC / "vendor" / "marked.js").exists():
        skip = pytest.mark.skip(reason="run `npm ci && node scripts/vendor.mjs` first")
        for item in items:
            if "tests/browser" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LiveServer]]:
    """Start servers (`debounce=` and other `start` options); all stop at the end."""
    running: list[Any] = []

    def make(**options: Any) -> LiveServer:
        live, thread, server = start(tmp_path_factory.mktemp("gapless"), **options)
        running.append((server, thread))
        return live

    yield make
    for server, thread in running:
        stop(server, thread)


@pytest.fixture(scope="session")
def server(make_server: Callable[..., LiveServer]) -> LiveServer:
    """One server shared by the tests; each test makes its own chats."""
    return make_server()


class Api:
    """The API as a program uses it (bearer token), to set the scene for a page."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        self.http = httpx.Client(
            base_url=live.url, headers={"Authorization": f"Bearer {live.token}"}
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def chat(self, title: str = "Test chat", **fields: Any) -> dict[str, Any]:
        return self.call("POST", "/api/chats", json={"title": title, **fields})

    def send(self, chat_id: str, content: str, **fields: Any) -> dict[str, Any]:
        return self.call(
            "POST", f"/api/chats/{chat_id}/messages", json={"content": content, **fields}
        )


@pytest.fixture
def api(server: LiveServer) -> Iterator[Api]:
    client = Api(server)
    yield client
    client.http.close()


def sign_in(context: BrowserContext, live: LiveServer) -> None:
    response = context.request.post(
        f"{live.url}/api/session", data={"email": live.email, "password": live.password}
    )
    assert response.ok, response.text()


@pytest.fixture(scope="session")
def session_state(browser: Browser, server: LiveServer) -> Any:
    """One signed-in session shared by the tests' contexts (a sign-in per test is slow)."""
    context = browser.new_context()
    sign_in(context, server)
    state = context.storage_state()
    context.close()
    return state


def new_context(browser: Browser, live: LiveServer, state: Any = None) -> BrowserContext:
    """A desktop-sized context on the server; signed in when given a session state."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 860}, base_url=live.url, storage_state=state
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    context.add_init_script(RECORDER)
    return context


@pytest.fixture
def context(browser: Browser, server: LiveServer, session_state: Any) -> Iterator[BrowserContext]:
    context = new_context(browser, server, session_state)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, server: LiveServer) -> Iterator[Page]:
    """A signed-in page that must raise no error and load nothing from elsewhere (no CDN)."""
    page = context.new_page()
    errors: list[str] = []
    foreign: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "request",
        lambda request: (
            None if request.url.startswith((server.url, "data:")) else foreign.append(request.url)
        ),
    )
    yield page
    assert errors == [], f"uncaught errors in the page: {errors}"
    assert foreign == [], f"requests to other origins: {foreign}"


def words(text: str) -> str:
    """Text as a reader sees it: whitespace runs are one space."""
    return " ".join(text.split())


def renders(page: Page, message_id: str) -> list[str]:
    return page.evaluate("id => window.__renders[id] || []", message_id)


def shown(page: Page, message_id: str) -> dict[str, Any]:
    """The page's own copy of a message (its reducer state)."""
    return page.evaluate("id => window.gapless.messages[id] || null", message_id)


def assistant(page: Page, message_id: str) -> Any:
    return page.locator(f'.msg.assistant[data-id="{message_id}"]')


def wait_final(page: Page, message_id: str, status: str = "complete") -> None:
    expect(assistant(page, message_id)).to_have_attribute("data-status", status, timeout=30_000)


def assert_gapless(page: Page, live: LiveServer, message_id: str) -> dict[str, Any]:
    """The page shows exactly the database text, and every render was a prefix of it."""
    stored = live.message(message_id)
    mine = shown(page, message_id)
    assert mine["content"] == stored["content"]
    assert mine["thinking"] == stored["thinking"]
    assert mine["seq"] == stored["seq"]
    final = words(assistant(page, message_id).locator(".content").text_content() or "")
    assert final == words(stored["content"])
    history = renders(page, message_id)
    assert history, "the message was never rendered"
    for text in history:
        assert final.startswith(words(text)), f"a render was not a prefix: {text!r}"
    return stored


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


STATUS = re.compile(r"^(pending|streaming)$")
