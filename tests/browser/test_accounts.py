"""Account management in Chromium: an owner invites a member by link, the member chooses a
password on the invitation page and lands signed in, then manages their own tokens,
sessions and password; the admin changes a role and removes the member. No page breaks
the Content-Security-Policy the server sends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.browser.conftest import new_context, screenshot
from tests.support.server import LiveServer


@pytest.fixture
def violations(page: Page) -> Iterator[list[str]]:
    found: list[str] = []

    def seen(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            found.append(message.text)

    page.on("console", seen)
    yield found
    assert found == [], found


def test_an_owner_invites_a_member_who_chooses_a_password_and_manages_credentials(
    page: Page, browser: Browser, server: LiveServer, violations: list[str]
) -> None:
    page.goto("/admin")
    card = page.locator(".account-card[data-account]").first
    expect(card).to_be_visible()
    card.locator("input[name=email]").fill("zoe@example.com")
    card.locator("input[name=name]").fill("Zoe")
    card.get_by_role("button", name="Add member").click()
    link = page.locator("#invite-link")
    expect(link).to_contain_text("/invite#")
    invite = link.text_content() or ""
    expect(page.locator(".account-card[data-account]").first).to_contain_text("zoe@example.com")
    screenshot(page, "accounts-invite")

    guest = new_context(browser, server)
    zoe = guest.new_page()
    csp: list[str] = []
    zoe.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None)
    zoe.goto(invite)
    zoe.fill("#invite-password", "short")
    zoe.fill("#invite-again", "short")
    zoe.get_by_role("button", name="Set password and sign in").click()
    expect(zoe.locator("#invite-error")).to_contain_text("at least 12 characters")
    zoe.fill("#invite-password", "amber kettle rooftop swan")
    zoe.fill("#invite-again", "amber kettle rooftop swan")
    zoe.get_by_role("button", name="Set password and sign in").click()
    expect(zoe.locator("#account-email")).to_have_text("zoe@example.com")

    zoe.goto("/settings")
    tokens = zoe.locator("#tokens")
    tokens.locator("input[name=name]").fill("laptop")
    tokens.get_by_role("button", name="Create token").click()
    expect(zoe.locator("#new-token")).to_contain_text("gl_")
    expect(zoe.locator("#tokens")).to_contain_text("laptop")
    expect(zoe.locator("#sessions")).to_contain_text("This browser")
    screenshot(zoe, "settings")
    password = zoe.locator("#password-form")
    password.locator("input[name=current]").fill("amber kettle rooftop swan")
    password.locator("input[name=new]").fill("password1234")
    password.locator("input[name=again]").fill("password1234")
    password.get_by_role("button", name="Change password").click()
    expect(password.locator(".form-error")).to_contain_text("common")
    password.locator("input[name=new]").fill("velvet compass lagoon nine")
    password.locator("input[name=again]").fill("velvet compass lagoon nine")
    password.get_by_role("button", name="Change password").click()
    expect(zoe.locator("#toast")).to_contain_text("Password changed")
    assert csp == []

    page.goto("/admin")
    row = page.locator("tr", has_text="zoe@example.com").first
    row.locator("select.member-role").select_option("owner")
    expect(page.locator("#toast")).to_contain_text("Role changed")
    zoe_row = page.locator("tr", has_text="zoe@example.com").first
    zoe_row.get_by_role("button", name="Remove").click()
    expect(page.locator(".account-card[data-account]").first).not_to_contain_text("zoe@example.com")
    guest.close()


def test_signing_out_everywhere_brings_back_the_sign_in_page(
    browser: Browser, server: LiveServer, api: Any
) -> None:
    account_id = api.call("GET", "/api/accounts")["accounts"][0]["id"]
    api.call(
        "POST",
        f"/api/accounts/{account_id}/members",
        json={"email": "yan@example.com", "password": "saffron glacier pocket ten"},
    )
    context = new_context(browser, server)
    page = context.new_page()
    page.goto("/login")
    page.fill("#login-email", "yan@example.com")
    page.fill("#login-password", "saffron glacier pocket ten")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#account-email")).to_have_text("yan@example.com")
    page.goto("/settings")
    page.locator("#sign-out-everywhere").click()
    expect(page.locator("#login-view")).to_be_visible()
    page.goto("/settings")  # and the session is gone on the server too
    expect(page.locator("#login-view")).to_be_visible()
    context.close()


PAGES = ["/", "/generations", "/agents", "/dashboard", "/prompts", "/traces", "/settings", "/admin"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_runs_under_the_content_security_policy(
    page: Page, violations: list[str], path: str
) -> None:
    response = page.goto(path)
    assert response is not None
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    expect(page.locator("#account-email")).to_be_visible()
    page.wait_for_load_state("networkidle")
