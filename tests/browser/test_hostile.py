"""Hostile data renders as text: no dialog ever opens, whatever the stores hold."""

from __future__ import annotations

import re

from playwright.sync_api import Dialog, Page, expect

from tests.browser.conftest import HOSTILE_NAME, HOSTILE_QUEUE


def _watch(page: Page) -> list[str]:
    seen: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


def test_the_dialog_watch_sees_a_real_alert(page: Page) -> None:
    seen = _watch(page)
    page.set_content("<script>alert('control')</script>")
    page.wait_for_timeout(100)
    assert seen == ["control"]


def test_hostile_names_queues_payloads_and_messages_never_run(page: Page) -> None:
    seen = _watch(page)
    page.goto("/?project=hostile")
    expect(page.locator("#jobs tbody tr")).to_have_count(5)
    expect(page.get_by_text(HOSTILE_NAME, exact=True)).to_be_visible()
    expect(page.get_by_text(HOSTILE_QUEUE, exact=True)).to_be_visible()
    huge = page.locator("#jobs tbody tr", has_text="App\\Jobs\\Huge").locator("a").first
    huge_href = huge.get_attribute("href") or ""
    links = page.locator("#jobs tbody tr td:nth-child(3) a")
    hrefs = [links.nth(i).get_attribute("href") or "" for i in range(links.count())]
    for href in hrefs:
        page.goto(href, timeout=20_000)
        expect(page.locator("#payload-text")).to_be_attached()
        if href == huge_href:
            # 5 MB: a highlighted head, a plain rest, and a page that still answers.
            expect(page.locator("#payload-text")).to_contain_text("AAAA")
            expect(page.get_by_text("Cut here")).to_have_count(1)
    for path in ("/groups?project=hostile", "/actions", "/projects", "/?q=%3Cscript%3E"):
        page.goto(path)
    page.goto("/?project=hostile&q=javascript")
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    assert seen == []
    # No element came from the data: no <img> at all, no script but ours.
    assert page.locator("img").count() == 0
    sources = page.eval_on_selector_all("script", "els => els.map(e => e.src)")
    assert all(re.search(r"/static/(app|theme)\.js$", src) for src in sources)


def test_a_ten_thousand_line_traceback_is_readable(page: Page) -> None:
    page.goto("/?project=hostile&q=deep+stack")
    page.locator("#jobs tbody tr td:nth-child(3) a").first.click()
    expect(page.locator("#exception-text")).to_contain_text("#9999 /app/vendor/<b>x</b>.php")
    expect(page.get_by_text("10,002 lines")).to_be_visible()
