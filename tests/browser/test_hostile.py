"""Hostile data renders as text: no dialog ever opens, whatever the stores hold.

The corpus (tests/browser/conftest.py) puts script tags, attribute breakers, ``javascript:``
URLs, unicode tricks (RTL override, zero-width joiners, homoglyphs, combining marks), invalid
UTF-8 and very long tokens in every field a page shows: the project's name, the connection,
queue, job name, exception class and message, payload and traceback of jobs, the requester,
claimer, parameters and error of actions. Every page is then checked in Chromium: no dialog,
no element or attribute that came from data, no ``javascript:`` link, no page wider than the
window — and each hostile value is there, visible, as the very text it was.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.browser.conftest import (
    ACTION_CLAIMER,
    ACTION_ERROR,
    ACTION_QUEUE,
    ACTION_REQUESTER,
    BAD_BYTES_NAME,
    BREAKER,
    HOSTILE_CLASS,
    HOSTILE_CONNECTION,
    HOSTILE_MESSAGE,
    HOSTILE_NAME,
    HOSTILE_PROJECT,
    HOSTILE_QUEUE,
    LONG,
    LONG_NAME,
    LONG_QUEUE,
    RTL,
    SCRIPT,
    UNICODE_MESSAGE,
    UNICODE_NAME,
    ZWJ,
)

HOSTILE_ROWS = 7
BAD_BYTES_QUEUE = "q\ufffd<script>alert(10)</script>"  # b"q\xfe<script>…" as the page shows it

# Whatever of the page came from data rather than from failboard's templates.
FOREIGN = r"""() => {
  const found = [];
  for (const el of document.querySelectorAll("*")) {
    for (const attr of el.attributes) {
      if (attr.name.startsWith("on")) found.push(`${el.tagName} ${attr.name}`);
      const link = /^(href|src|action|formaction|xlink:href|data)$/.test(attr.name);
      if (link && /^\s*javascript:/i.test(attr.value)) found.push(`${el.tagName} ${attr.value}`);
    }
  }
  const tags = "img, iframe, object, embed, frame, base, meta[http-equiv]";
  for (const el of document.querySelectorAll(tags)) found.push(el.tagName);
  for (const el of document.querySelectorAll("script")) {
    const ours = /\/static\/(app|theme)\.js$/.test(el.src);
    if (!ours) found.push(`script ${el.src} ${el.textContent.slice(0, 60)}`);
  }
  return found;
}"""
# A page wider than the window would hide its actions behind a token that does not wrap.
WIDTH = "() => document.documentElement.scrollWidth - window.innerWidth"


@pytest.fixture
def dialogs(page: Page) -> Iterator[list[str]]:
    """Every dialog script opens (alert, confirm, prompt): none may open from data."""
    seen: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield seen
    assert seen == [], f"script from data ran: {seen}"


def _inert(page: Page, path: str) -> None:
    assert page.evaluate(FOREIGN) == [], path
    assert page.evaluate(WIDTH) <= 1, f"{path}: wider than the window"


def _shown(page: Page, text: str) -> None:
    """``text`` is on the page as one element's whole text, and visible."""
    expect(page.get_by_text(text, exact=True).first).to_be_visible()


def test_the_dialog_watch_sees_a_real_alert(page: Page) -> None:
    seen: list[str] = []
    page.on("dialog", lambda dialog: (seen.append(dialog.message), dialog.dismiss()))
    page.set_content("<script>alert('control')</script>")
    page.wait_for_timeout(100)
    assert seen == ["control"]
    # And the inertness probe sees a foreign element and a javascript: link.
    page.set_content('<a href=" JavaScript:alert(1)">x</a><img src="data:,">')
    assert len(page.evaluate(FOREIGN)) == 2


def test_the_jobs_list_shows_every_hostile_field_as_text(page: Page, dialogs: list[str]) -> None:
    page.goto("/?project=hostile")
    expect(page.locator("#jobs tbody tr")).to_have_count(HOSTILE_ROWS)
    for text in (
        HOSTILE_NAME,  # job name
        HOSTILE_QUEUE,  # queue
        HOSTILE_CONNECTION,  # connection, a javascript: URL that must not become a link
        BREAKER,  # connection
        HOSTILE_CLASS,  # exception class
        HOSTILE_MESSAGE,  # exception message
        UNICODE_NAME,
        RTL,
        ZWJ,
        BAD_BYTES_NAME,
        BAD_BYTES_QUEUE,
        LONG_NAME,
        LONG_QUEUE,
    ):
        _shown(page, text)
    expect(page.locator(".project-tag", has_text=HOSTILE_PROJECT).first).to_be_visible()
    expect(page.locator("#jobs tbody tr", has_text=UNICODE_NAME).locator("td.msg")).to_contain_text(
        UNICODE_MESSAGE
    )
    _inert(page, "/?project=hostile")
    for path in (
        "/?q=%3Cscript%3E",
        "/?project=hostile&q=javascript",
        "/?project=hostile&queue=" + "%22",
    ):
        page.goto(path)
        _inert(page, path)


def test_every_job_page_shows_its_hostile_fields_as_text(page: Page, dialogs: list[str]) -> None:
    page.goto("/?project=hostile")
    links = page.locator("#jobs tbody tr td:nth-child(3) a")
    expect(links).to_have_count(HOSTILE_ROWS)
    hrefs = [links.nth(i).get_attribute("href") or "" for i in range(HOSTILE_ROWS)]
    names = []
    for href in hrefs:
        page.goto(href, timeout=20_000)
        expect(page.locator("#payload-text")).to_be_attached()
        expect(page.locator(".crumbs")).to_contain_text(HOSTILE_PROJECT)
        names.append(page.locator("h1").inner_text())
        _inert(page, href)
        if page.locator("h1").inner_text() == HOSTILE_NAME:
            _shown(page, HOSTILE_CONNECTION)
            payload = page.locator("#payload-text")
            for text in ("javascript:alert(4)", BREAKER.replace('"', '\\"'), SCRIPT):
                expect(payload).to_contain_text(text)
            expect(page.locator(".exception-line")).to_contain_text(HOSTILE_MESSAGE)
        elif page.get_by_text(HOSTILE_QUEUE, exact=True).count():
            expect(page.locator(".exception-line")).to_contain_text(HOSTILE_CLASS)
            expect(page.locator("#payload-text")).to_contain_text("</pre><script>alert(5)</script>")
        elif page.locator("h1").inner_text() == UNICODE_NAME:
            _shown(page, RTL)
            _shown(page, ZWJ)
            expect(page.locator(".exception-line")).to_contain_text(UNICODE_MESSAGE)
            # The payload keeps the tricks as JSON escapes or as the characters themselves.
            expect(page.locator("#payload-text")).to_contain_text("rtl")
        elif page.locator("h1").inner_text() == BAD_BYTES_NAME:
            _shown(page, BAD_BYTES_QUEUE)
            expect(page.locator("#exception-text")).to_contain_text(
                "bad \ufffd\ufffd bytes <script>alert(6)</script>"
            )
        elif page.locator("h1").inner_text() == LONG_NAME:
            _shown(page, LONG_QUEUE)
            expect(page.locator("#payload-text")).to_contain_text(LONG[:500])
            expect(page.locator("#exception-text")).to_contain_text(LONG[:500])
        elif "Huge" in page.locator("h1").inner_text():
            # 5 MB: a highlighted head, a plain rest, and a page that still answers.
            expect(page.locator("#payload-text")).to_contain_text("AAAA")
            expect(page.get_by_text("Cut here")).to_have_count(1)
            # The 5 MB serialized command beside it is cut too (it made the page 4M px wide).
            expect(page.locator("dl.fields")).to_contain_text("more characters: see the payload")
    assert {HOSTILE_NAME, UNICODE_NAME, BAD_BYTES_NAME, LONG_NAME} <= set(names)


def test_groups_actions_and_projects_show_hostile_data_as_text(
    page: Page, dialogs: list[str]
) -> None:
    page.goto("/groups?project=hostile")
    expect(page.locator(".group-msg", has_text=HOSTILE_MESSAGE)).to_be_visible()
    _shown(page, HOSTILE_CLASS)
    _shown(page, HOSTILE_NAME)  # the group's job-name tag
    expect(page.locator(".project-tag", has_text=HOSTILE_PROJECT).first).to_be_visible()
    expect(page.locator(".group-msg", has_text=UNICODE_MESSAGE)).to_be_visible()
    _inert(page, "/groups")
    page.goto("/actions")
    rows = page.locator("#actions-rows tr", has_text=ACTION_REQUESTER)
    expect(rows).to_have_count(2)
    _shown(page, ACTION_REQUESTER)
    _shown(page, ACTION_CLAIMER)
    _shown(page, ACTION_ERROR)
    _shown(page, ACTION_QUEUE)
    _inert(page, "/actions")
    page.goto("/projects")
    _shown(page, HOSTILE_PROJECT)
    _inert(page, "/projects")


def test_a_ten_thousand_line_traceback_is_readable(page: Page) -> None:
    page.goto("/?project=hostile&q=deep+stack")
    page.locator("#jobs tbody tr td:nth-child(3) a").first.click()
    expect(page.locator("#exception-text")).to_contain_text("#9999 /app/vendor/<b>x</b>.php")
    expect(page.get_by_text("10,002 lines")).to_be_visible()
