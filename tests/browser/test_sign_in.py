"""Sign-in in a real browser: the form, the table, sign-out, and a viewer without buttons.

Its own live server (the demo's stores, with users), since the shared one runs without sign-in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from failboard.auth import hash_password
from failboard.config import load_settings
from failboard.demo import seed_demo
from failboard.web import create_app
from tests.browser.conftest import serve

ADMIN_PASSWORD = "admin-password-for-the-browser"
VIEWER_PASSWORD = "viewer-password-for-the-browser"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = seed_demo(tmp_path_factory.mktemp("signin") / "demo", admin_password=ADMIN_PASSWORD)
    config.write_text(
        config.read_text()
        + f"""
[[users]]
name = "support"
password_hash = "{hash_password(VIEWER_PASSWORD)}"
role = "viewer"
projects = ["shop"]
"""
    )
    with serve(create_app(load_settings(config))) as url:
        yield url


def _sign_in(page: Page, server: str, name: str, password: str) -> None:
    page.goto(f"{server}/groups")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fgroups$"))
    page.locator("#login-name").fill(name)
    page.locator("#login-password").fill(password)
    page.locator("#login-submit").click()


def test_sign_in_see_the_table_and_sign_out(page: Page, server: str) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _sign_in(page, server, "admin", "wrong password")
    expect(page.locator("#login-error")).to_contain_text("Wrong name or password")
    errors.clear()  # the browser logs the 401 of the refused sign-in as a console error
    page.locator("#login-password").fill(ADMIN_PASSWORD)
    page.locator("#login-submit").click()
    # Back where the sign-in started.
    expect(page).to_have_url(f"{server}/groups")
    page.goto(f"{server}/")
    expect(page.locator("#jobs tbody tr").first).to_be_visible()
    expect(page.locator("#whoami")).to_have_text("admin · admin")
    expect(page.locator("#jobs [data-act=retry]").first).to_be_visible()
    page.locator("#sign-out").click()
    expect(page).to_have_url(f"{server}/login")
    page.goto(f"{server}/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    assert errors == []


def test_a_viewer_sees_only_its_project_and_no_buttons(page: Page, server: str) -> None:
    _sign_in(page, server, "support", VIEWER_PASSWORD)
    expect(page).to_have_url(f"{server}/groups")
    page.goto(f"{server}/")
    expect(page.locator("#jobs tbody tr").first).to_be_visible()
    projects = page.locator("#jobs tbody tr").evaluate_all(
        "rows => [...new Set(rows.map(r => r.dataset.project))]"
    )
    assert projects == ["shop"]
    expect(page.locator("#jobs button[data-act]")).to_have_count(0)
    expect(page.locator("#jobs .row-check")).to_have_count(0)
    expect(page.locator("#retry-queue-open")).to_have_count(0)
    expect(page.locator("#prune-open")).to_have_count(0)
    page.goto(f"{server}/groups")
    expect(page.locator("button[data-group-act]")).to_have_count(0)
    # The server is the guard: a write from this page's own session is refused anyway.
    status = page.evaluate(
        """async () => {
            const csrf = document.querySelector("meta[name=csrf-token]").content;
            const r = await fetch("/ui/selections", {method: "POST", credentials: "same-origin",
                headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
                body: JSON.stringify({kind: "prune", hours: 1})});
            return r.status;
        }"""
    )
    assert status == 403
