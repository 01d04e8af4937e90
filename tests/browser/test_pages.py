"""The dashboard in a real browser: filters, actions through the spool, groups, themes."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect


def _first_status(page: Page) -> str:
    return page.locator("#actions-rows tr").first.get_attribute("data-status") or ""


def test_filters_live_in_the_url_and_survive_a_reload(page: Page) -> None:
    page.goto("/")
    page.locator("#search").fill("Connection refused")
    page.locator("label.chip", has_text="Billing").click()
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"project=billing.*q=Connection\+refused"))
    page.reload()
    expect(page.locator("#search")).to_have_value("Connection refused")
    expect(page.locator("label.chip", has_text="Billing").locator("input")).to_be_checked()
    projects = page.locator("#jobs tbody tr").evaluate_all(
        "rows => [...new Set(rows.map(r => r.dataset.project))]"
    )
    assert projects == ["billing"]
    expect(page.locator("#count")).to_have_text(re.compile(r"^\d[\d,]* failed jobs?$"))


def test_an_unreachable_project_shows_a_banner_and_the_rest_renders(page: Page) -> None:
    page.goto("/")
    expect(page.locator("[data-unreachable=down]")).to_contain_text("Down Service")
    expect(page.locator("#jobs tbody tr")).to_have_count(50)
    page.goto("/projects")
    expect(page.locator("[data-unreachable=down]")).to_be_visible()
    expect(page.locator("svg.chart").first).to_be_visible()


def test_retry_a_row_and_watch_it_complete(page: Page) -> None:
    page.goto("/?project=shop&queue=emails")
    row = page.locator("#jobs tbody tr").first
    job_id = row.get_attribute("data-id")
    row.get_by_role("button", name="Retry").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text("Retry exactly 1 job.")
    dialog.get_by_role("button", name="Retry 1 job").click()
    expect(page.locator("#flash")).to_contain_text("queued")
    # The filters survived the action.
    expect(page).to_have_url(re.compile(r"project=shop&queue=emails"))
    page.goto("/actions")
    expect(page.locator("#actions-rows tr").first).to_have_attribute(
        "data-status", "completed", timeout=15_000
    )
    expect(page.locator("#actions-rows tr").first).to_contain_text("inline:shop")
    page.goto(f"/?project=shop&q={job_id}")
    expect(page.locator(f'#jobs tr[data-id="{job_id}"]')).to_have_count(0)


def test_bulk_delete_of_selected_rows(page: Page) -> None:
    page.goto("/?project=shop&queue=low")
    boxes = page.locator(".row-check")
    boxes.nth(0).check()
    boxes.nth(1).check()
    expect(page.locator("#bulk-text")).to_have_text("2 selected on this page.")
    page.locator("#bulk-delete").click()
    expect(page.locator("#confirm")).to_contain_text("Delete exactly 2 jobs.")
    page.locator("#confirm-ok").click()
    expect(page.locator("#flash")).to_contain_text("queued")
    page.goto("/actions?project=shop")
    first = page.locator("#actions-rows tr").first
    expect(first).to_contain_text("delete")
    expect(first).to_contain_text("(2 jobs)")


def test_select_all_matching_states_the_exact_count(page: Page) -> None:
    page.goto("/?project=billing&queue=webhooks&limit=10")
    expect(page.locator("#count")).to_have_text(re.compile(r"\d"))
    total = int(re.sub(r"\D", "", page.locator("#count").inner_text()))
    assert total > 10
    page.locator("#select-page").check()
    matching = page.locator("#select-matching")
    expect(matching).to_be_visible()
    expect(matching).to_contain_text(f"Select all {total}")
    matching.click()
    expect(page.locator("#bulk-text")).to_contain_text(f"All {total} jobs matching")
    page.locator("#bulk-delete").click()
    expect(page.locator("#confirm")).to_contain_text(f"Delete exactly {total} jobs.")
    page.locator("#confirm-ok").click()
    expect(page.locator("#flash")).to_contain_text("queued")
    page.goto("/actions?project=billing")
    first = page.locator("#actions-rows tr").first
    expect(first).to_contain_text(f"({total} jobs)")
    expect(first).to_have_attribute("data-status", "completed", timeout=15_000)
    page.goto("/?project=billing&queue=webhooks")
    expect(page.locator("#count")).to_have_text("0 failed jobs")


def test_prune_shows_a_dry_run_count_first(page: Page) -> None:
    page.goto("/")
    page.locator("#prune-open").click()
    page.locator("#confirm input[name=hours]").fill("48")
    page.locator("#confirm-ok").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text("older than 48 h (dry run")
    text = dialog.inner_text()
    assert re.search(r"Delete [\d,]+ jobs? older than 48 h", text), text
    page.locator("#confirm-cancel").click()
    page.goto("/actions")
    expect(page.locator("#actions-rows")).not_to_contain_text("prune")


def test_retry_a_whole_group_and_see_it_complete(page: Page) -> None:
    page.goto("/groups?project=search")
    card = page.locator("li.group", has_text="ParseStockFeed").first
    count = int(re.sub(r"\D", "", card.locator(".group-count strong").inner_text()))
    expect(card.locator("svg.spark")).to_be_visible()
    card.get_by_role("button", name="Retry group").click()
    expect(page.locator("#confirm")).to_contain_text(f"Retry exactly {count} job")
    page.locator("#confirm-ok").click()
    expect(page.locator("#flash")).to_contain_text("queued")
    page.goto("/actions?project=search")
    first = page.locator("#actions-rows tr").first
    expect(first).to_have_attribute("data-status", "completed", timeout=15_000)
    expect(first.locator("progress")).to_have_attribute("value", str(count))


def test_dark_mode_follows_the_system_and_the_toggle(page: Page) -> None:
    page.emulate_media(color_scheme="dark")
    page.goto("/groups")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)"
    page.locator("#theme-toggle").click()  # system -> dark
    page.locator("#theme-toggle").click()  # dark -> light
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    page.reload()
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(246, 247, 249)"


def test_browser_posts_without_the_csrf_token_are_refused(page: Page) -> None:
    page.goto("/")
    body = {"action": "retry", "jobs": [{"project": "shop", "id": "x"}], "key": "k" * 12}
    response = page.request.post("/ui/actions", data=body)
    assert response.status == 403
    cancel = page.request.post("/ui/actions/1/cancel")
    assert cancel.status == 403


def test_the_detail_page_reads_well(page: Page) -> None:
    page.goto("/?project=search&exception=UnicodeDecodeError")
    page.locator("#jobs tbody tr td:nth-child(3) a").first.click()
    expect(page.locator("h1")).to_contain_text("ImportCatalogCsv")
    expect(page.locator("#exception-text")).to_contain_text("Traceback (most recent call last)")
    expect(page.locator("#payload-text .nt").first).to_be_visible()  # Pygments JSON keys
    expect(page.get_by_role("button", name="Copy").first).to_be_visible()
    expect(page.get_by_role("heading", name="Other jobs with this fingerprint")).to_be_visible()
