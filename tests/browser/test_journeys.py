"""The dashboard's journeys end to end in a real browser: the issue's "Done when" path, order and
time range, capped counts, the job page's actions and look-alikes, cancelling, deleting a group,
the projects' health and charts, hideable columns and auto-refresh.

Its own live server, so what these tests change never meets the shared one's tests: the demo's
three projects with inline agents, a small ``count_cap``, and "legacy", a project of hand-made
failures whose actions no agent takes (they stay pending until cancelled). Expected values are
read from the SQLite files themselves, never through failboard.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect

from failboard.board import Board
from failboard.config import load_settings
from failboard.db import create_engine
from failboard.demo import seed_demo
from failboard.drivers.laravel import payload as laravel_payload
from failboard.drivers.laravel import schema as laravel_schema
from failboard.web import create_app
from tests.browser.conftest import _php, _row, serve

CAP = 120  # below the shop's 160 seeded failures, above the search indexer's 100
LEDGER = "App\\Jobs\\SyncLedger"
STAMP = "%Y-%m-%d %H:%M:%S"  # how the Laravel schema stores failed_at (UTC)
OPEN = ("pending", "processing")


@dataclass(frozen=True)
class Site:
    url: str
    board: Board
    folder: Path
    legacy: dict[str, str]  # a..e -> the id of that hand-made legacy failure

    def rows(self, project: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.folder / f"{project}.db")) as db:
            return db.execute(sql, args).fetchall()

    def count(self, project: str, where: str = "1 = 1", *args: Any) -> int:
        (found,) = self.rows(project, f"SELECT count(*) FROM failed_jobs WHERE {where}", *args)
        return int(found[0])

    def spool(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.folder / "spool.db")) as db:
            return db.execute(sql, args).fetchall()


def _insert(path: Path, rows: list[dict[str, Any]]) -> None:
    engine = create_engine(f"sqlite:///{path}")
    try:
        laravel_schema.create_tables(engine)
        with engine.begin() as connection:
            laravel_schema.insert_failed_jobs(connection, rows)
    finally:
        engine.dispose()


def _legacy(path: Path) -> dict[str, str]:
    """a, b and c are one bug (their messages differ only in numbers); d and e are two others.
    a's payload carries the fields Laravel puts beside the command."""
    rows = {
        "a": _row(LEDGER, exception=_php("Ledger 41 is locked by batch 7"), minutes=10),
        "b": _row(LEDGER, exception=_php("Ledger 58 is locked by batch 3"), minutes=20),
        "c": _row(LEDGER, exception=_php("Ledger 12 is locked by batch 9"), minutes=30),
        "d": _row("App\\Jobs\\PurgeArchive", exception=_php("bucket is read-only"), minutes=40),
        "e": _row("App\\Jobs\\NotifyPartner", exception=_php("partner said no"), minutes=50),
    }
    a = rows["a"]
    a["payload"] = laravel_payload.build_payload(
        LEDGER, uuid=a["uuid"], max_tries=5, timeout=90, attempts=2, properties={"ledger": 41}
    )
    _insert(path, list(rows.values()))
    return {key: row["uuid"] for key, row in rows.items()}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("journeys")
    config = seed_demo(folder)
    legacy = _legacy(folder / "legacy.db")
    text = config.read_text().replace("[server]\n", f"[server]\ncount_cap = {CAP}\n", 1)
    # No `agent = "inline"`: a remote agent that never comes, so its actions stay pending.
    text += f"""
[[projects]]
key = "legacy"
name = "Legacy Worker"
driver = "laravel"
url = "sqlite:///{folder / "legacy.db"}"
"""
    config.write_text(text)
    app = create_app(load_settings(config))
    board: Board = app.state.board
    for _ in range(2):
        board.spool.submit("legacy", "retry", {"job_ids": ["long-gone"]}, requested_by="journeys")
    # Its agent was last seen three hours ago.
    board.spool.record_agent("legacy", "legacy-worker")
    seen = (datetime.now(UTC) - timedelta(hours=3, minutes=5)).strftime(f"{STAMP}.%f")
    with closing(sqlite3.connect(folder / "spool.db")) as db, db:
        db.execute("UPDATE failboard_agents SET last_seen = ? WHERE project = 'legacy'", (seen,))
    with serve(app) as url:
        yield Site(url, board, folder, legacy)


def _jobs_text(value: int, capped: bool = False) -> str:
    return f"{value:,}{'+' if capped else ''} failed job{'' if value == 1 and not capped else 's'}"


def _iso(stamp: str) -> str:
    return stamp.replace(" ", "T") + "Z"


def _queued(page: Page) -> str:
    """The id of the action the flash message says was just queued."""
    flash = page.locator("#flash")
    expect(flash).to_contain_text(re.compile(r"Action #\d+ queued\."))
    found = re.search(r"#(\d+)", flash.inner_text())
    assert found is not None
    return found.group(1)


def _field(page: Page, name: str) -> Locator:
    label = page.locator("dt", has_text=re.compile(f"^{re.escape(name)}$"))
    return page.locator("dl.fields > div").filter(has=label).locator("dd")


def _mark(page: Page) -> None:
    """Tag the document: the tag survives DOM updates, not a reload."""
    page.evaluate("window.__sameDocument = true")


def _same_document(page: Page) -> bool:
    try:
        return bool(page.evaluate("window.__sameDocument === true"))
    except PlaywrightError:  # "execution context was destroyed": it is reloading
        return False


def test_done_when_search_read_the_trace_and_retry_the_group_live(page: Page, site: Site) -> None:
    # Search by a word of the message: the filter lives in the URL and survives a reload.
    page.goto(f"{site.url}/")
    page.locator("#search").fill("literal")
    page.locator("#search").press("Enter")
    expect(page).to_have_url(re.compile(r"[?&]q=literal(&|$)"))
    assert "=&" not in page.url and not page.url.endswith("="), page.url  # only fields in use
    page.reload()
    expect(page.locator("#search")).to_have_value("literal")
    matching = site.count("search", "exception LIKE '%literal%'")
    assert matching > 1
    expect(page.locator("#count")).to_have_text(_jobs_text(matching))
    rows = page.locator("#jobs tbody tr")
    assert set(rows.locator("td.name").all_inner_texts()) == {"App\\Jobs\\ParseStockFeed"}

    # The job's page: its traceback shown whole, one line of text per line.
    job_id = rows.first.get_attribute("data-id")
    rows.first.locator("td:nth-child(3) a").click()
    expect(page).to_have_url(f"{site.url}/jobs/search/{job_id}")
    expect(page.locator("h1")).to_have_text("App\\Jobs\\ParseStockFeed")
    trace = page.locator("#exception-text")
    expect(trace).to_be_visible()
    expect(trace).to_contain_text("Traceback (most recent call last)")
    expect(trace).to_contain_text("ValueError: invalid literal for int() with base 10")
    where = trace.evaluate(
        """pre => {
          const at = (needle) => {
            const walk = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
            for (let n = walk.nextNode(); n; n = walk.nextNode()) {
              const i = n.data.indexOf(needle);
              if (i < 0) continue;
              const r = document.createRange();
              r.setStart(n, i);
              r.setEnd(n, i + needle.length);
              return r.getBoundingClientRect();
            }
            return null;
          };
          const head = at("Traceback"), last = at("ValueError");
          return {headTop: head.top, headLeft: head.left, lastTop: last.top,
                  lastLeft: last.left, size: parseFloat(getComputedStyle(pre).fontSize)};
        }"""
    )
    # "Traceback" opens the first line and "ValueError" the last, at the same left edge and
    # several lines further down (not run together into one wrapped paragraph).
    assert abs(where["lastLeft"] - where["headLeft"]) < 1, where
    assert where["lastTop"] - where["headTop"] > 4 * where["size"], where

    # Its group, from the job's page.
    link = page.locator("dl.fields a[href^='/groups#fp-']")
    fingerprint = (link.get_attribute("href") or "").split("#fp-")[1]
    link.click()
    expect(page).to_have_url(f"{site.url}/groups#fp-{fingerprint}")
    card = page.locator(f"li.group#fp-{fingerprint}")
    expect(card).to_contain_text("App\\Jobs\\ParseStockFeed")
    count = int(card.locator(".group-count strong").inner_text())
    assert count == matching

    # The actions page, open in another tab before the retry exists: it must show the new
    # action and its progress reaching the end by polling, never by reloading.
    watcher = page.context.new_page()
    watcher.goto(f"{site.url}/actions")
    expect(watcher.locator("#actions-rows")).to_be_visible()
    _mark(watcher)

    card.get_by_role("button", name="Retry group").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text(f"Retry exactly {count} jobs.")
    dialog.get_by_role("button", name=f"Retry {count} jobs").click()
    action = _queued(page)

    row = watcher.locator(f'#actions-rows tr[data-action-id="{action}"]')
    expect(row).to_have_attribute("data-status", "completed", timeout=15_000)
    expect(row.locator("progress")).to_have_attribute("max", str(count))
    expect(row.locator("progress")).to_have_attribute("value", str(count))
    expect(row).to_contain_text(f"{count} ok")
    assert _same_document(watcher), "the actions page reloaded instead of polling"
    assert site.count("search", "exception LIKE '%literal%'") == 0


def test_newest_oldest_and_the_time_range_change_the_rows(page: Page, site: Site) -> None:
    shown = "#jobs tbody tr time"
    page.goto(f"{site.url}/?project=search")
    newest = site.rows("search", "SELECT failed_at FROM failed_jobs ORDER BY failed_at DESC")
    got = page.locator(shown).evaluate_all("ts => ts.map(t => t.getAttribute('datetime'))")
    assert got == [_iso(r[0]) for r in newest[:50]]

    def last_day() -> list[tuple[Any, ...]]:
        since = (datetime.now(UTC) - timedelta(hours=24)).strftime(STAMP)
        return site.rows(
            "search",
            "SELECT failed_at FROM failed_jobs WHERE failed_at >= ? ORDER BY failed_at",
            since,
        )

    page.locator("select[name=order]").select_option("oldest")
    page.locator("select[name=range]").select_option("24h")
    # The server draws the 24 h edge when it answers, between these two readings; a row that
    # failed 24 h before that very moment may fall either way, so both are right answers.
    early = last_day()
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"project=search&.*range=24h&.*order=oldest"))
    late = last_day()
    assert 0 < len(late) <= len(early) < len(newest)  # the range leaves some out
    counts = {_jobs_text(len(early)), _jobs_text(len(late))}
    expect(page.locator("#count")).to_have_text(
        re.compile(f"^(?:{'|'.join(map(re.escape, counts))})$")
    )
    got = page.locator(shown).evaluate_all("ts => ts.map(t => t.getAttribute('datetime'))")
    assert got in ([_iso(r[0]) for r in early[:50]], [_iso(r[0]) for r in late[:50]])

    page.reload()
    expect(page.locator("select[name=order]")).to_have_value("oldest")
    expect(page.locator("select[name=range]")).to_have_value("24h")


def test_counts_past_the_cap_read_n_plus(page: Page, site: Site) -> None:
    shop, legacy = site.count("shop"), site.count("legacy")
    assert shop > CAP > legacy
    page.goto(f"{site.url}/?project=shop")
    expect(page.locator("#count")).to_have_text(_jobs_text(CAP, capped=True))
    page.goto(f"{site.url}/?project=legacy")
    expect(page.locator("#count")).to_have_text(_jobs_text(legacy))
    # Every project: each counted to the cap, and the sum says it is more.
    total = sum(min(site.count(p), CAP) for p in ("shop", "billing", "search", "legacy"))
    page.goto(f"{site.url}/")
    expect(page.locator("#count")).to_have_text(_jobs_text(total, capped=True))


def test_the_job_page_acts_lists_its_history_and_its_lookalikes(page: Page, site: Site) -> None:
    a, b, c, d = (site.legacy[k] for k in "abcd")
    page.goto(f"{site.url}/jobs/legacy/{a}")
    # Laravel's payload fields, beside the payload.
    expect(_field(page, "displayName")).to_have_text(LEDGER)
    expect(_field(page, "maxTries")).to_have_text("5")
    expect(_field(page, "timeout")).to_have_text("90")
    expect(_field(page, "attempts")).to_have_text("2")
    expect(_field(page, "failOnTimeout")).to_have_text("false")
    expect(_field(page, "Attempts")).to_have_text("2 of 5")
    # Look-alikes: exactly the other two failures of the same bug.
    similar = page.locator("ul.similar a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    assert sorted(similar) == sorted([f"/jobs/legacy/{b}", f"/jobs/legacy/{c}"])

    history = page.locator("#actions-rows")
    expect(history).to_contain_text("No actions yet.")
    page.locator("#job-actions").get_by_role("button", name="Retry").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text("Retry exactly 1 job.")
    dialog.get_by_role("button", name="Retry 1 job").click()
    action = _queued(page)
    mine = history.locator(f'tr[data-action-id="{action}"]')
    expect(mine).to_have_attribute("data-status", "pending")
    expect(mine).to_contain_text("retry (1 job)")
    expect(history.locator("tr")).to_have_count(1)
    # While it is open, the page shows it instead of the buttons.
    expect(page.locator("#job-actions")).to_have_text("retry pending")

    page.goto(f"{site.url}/jobs/legacy/{d}")
    delete = page.locator("#job-actions").get_by_role("button", name="Delete")
    delete.click()
    expect(dialog).to_contain_text("Delete exactly 1 job.")
    expect(dialog).to_contain_text("cannot be undone")
    page.locator("#confirm-cancel").click()  # cancelled: nothing is asked of the spool
    expect(dialog).not_to_be_visible()
    page.reload()
    expect(history).to_contain_text("No actions yet.")
    delete.click()
    dialog.get_by_role("button", name="Delete 1 job").click()
    action = _queued(page)
    expect(history.locator(f'tr[data-action-id="{action}"]')).to_contain_text("delete (1 job)")
    (status,) = site.spool("SELECT status FROM failboard_actions WHERE id = ?", int(action))
    assert status == ("pending",)


def test_cancel_a_pending_action_and_read_a_finished_one(page: Page, site: Site) -> None:
    e = site.legacy["e"]
    page.goto(f"{site.url}/?project=legacy")
    page.locator(f'#jobs tr[data-id="{e}"]').get_by_role("button", name="Retry").click()
    page.locator("#confirm-ok").click()
    action = _queued(page)

    page.goto(f"{site.url}/actions?project=legacy")
    row = page.locator(f'#actions-rows tr[data-action-id="{action}"]')
    expect(row).to_have_attribute("data-status", "pending")
    _mark(page)
    row.get_by_role("button", name="Cancel").click()
    expect(row).to_have_attribute("data-status", "cancelled")
    expect(row.get_by_role("button", name="Cancel")).to_have_count(0)
    assert _same_document(page)
    assert site.spool("SELECT status FROM failboard_actions WHERE id = ?", int(action)) == [
        ("cancelled",)
    ]

    # A finished action shows what it did and how long it took.
    ((newest,),) = site.rows("shop", "SELECT uuid FROM failed_jobs ORDER BY failed_at DESC LIMIT 1")
    done = site.board.submit("shop", "retry", {"job_ids": [newest, "no-such-job"]})
    page.goto(f"{site.url}/actions?project=shop")
    row = page.locator(f'#actions-rows tr[data-action-id="{done.id}"]')
    expect(row).to_have_attribute("data-status", "completed", timeout=15_000)
    cells = row.locator("td")
    expect(cells.nth(5)).to_have_text("1 ok · 1 missing · 0 failed")
    expect(cells.nth(7)).to_have_text("inline:shop")
    ((created, finished),) = site.spool(
        "SELECT created_at, finished_at FROM failboard_actions WHERE id = ?", done.id
    )
    took = datetime.fromisoformat(finished) - datetime.fromisoformat(created)
    expect(cells.nth(9)).to_have_text(f"{took.total_seconds():.1f} s")


def test_delete_a_group_and_its_jobs_are_gone(page: Page, site: Site) -> None:
    name = "RecordGatewayReply"
    before, members = site.count("billing"), site.count("billing", "payload LIKE ?", f"%{name}%")
    assert members > 1
    page.goto(f"{site.url}/groups?project=billing")
    card = page.locator("li.group", has_text=name)
    expect(card.locator(".group-count strong")).to_have_text(str(members))
    card.get_by_role("button", name="Delete group").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text(f"Delete exactly {members} jobs.")
    dialog.get_by_role("button", name=f"Delete {members} jobs").click()
    action = _queued(page)

    page.goto(f"{site.url}/actions?project=billing")
    row = page.locator(f'#actions-rows tr[data-action-id="{action}"]')
    expect(row).to_have_attribute("data-status", "completed", timeout=15_000)
    expect(row).to_contain_text(f"delete ({members} jobs)")
    expect(row).to_contain_text(f"{members} ok")
    page.goto(f"{site.url}/?project=billing&name=App%5CJobs%5C{name}")
    expect(page.locator("#count")).to_have_text(_jobs_text(0))
    expect(page.locator("#jobs tbody")).to_contain_text("No failed jobs match these filters.")
    assert site.count("billing", "payload LIKE ?", f"%{name}%") == 0
    assert site.count("billing") == before - members  # and nothing else went


def _stat(card: Locator, name: str) -> Locator:
    label = card.page.locator("dt", has_text=re.compile(f"^{re.escape(name)}$"))
    return card.locator("dl.stats > div").filter(has=label).locator("dd")


def test_projects_show_their_health_and_hourly_failures(page: Page, site: Site) -> None:
    for _ in range(2):  # once more if the hour turned while the page was made
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        page.goto(f"{site.url}/projects")
        if datetime.now(UTC).replace(minute=0, second=0, microsecond=0) == hour:
            break
    end = hour + timedelta(hours=1)
    start = end - timedelta(hours=24)
    open_actions = dict(
        site.spool(
            "SELECT project, count(*) FROM failboard_actions WHERE status IN (?, ?) "
            "GROUP BY project",
            *OPEN,
        )
    )
    assert open_actions.get("legacy", 0) >= 2
    for key in ("shop", "billing", "search", "legacy"):
        card = page.locator("section.project").filter(has=page.locator(f"h2#p-{key}"))
        expect(_stat(card, "Driver")).to_have_text("laravel")
        failed = site.count(key)
        shown = f"{min(failed, CAP):,}{'+' if failed > CAP else ''}"
        expect(_stat(card, "Failed jobs")).to_have_text(shown)
        expect(_stat(card, "Open actions")).to_have_text(str(open_actions.get(key, 0)))
        if key == "legacy":
            expect(_stat(card, "Agent")).to_have_text("remote · seen 3h ago")
        else:  # inline agents say they are there every few seconds
            agent = _stat(card, "Agent")
            expect(agent).to_have_text(re.compile(r"^inline · seen \d+s ago$"))
            assert int(re.sub(r"\D", "", agent.inner_text())) < 30

        hourly: dict[str, int] = {}
        for (stamp,) in site.rows(
            key,
            "SELECT failed_at FROM failed_jobs WHERE failed_at >= ? AND failed_at < ?",
            start.strftime(STAMP),
            end.strftime(STAMP),
        ):
            label = datetime.strptime(stamp, STAMP).strftime("%H:00")
            hourly[label] = hourly.get(label, 0) + 1
        assert hourly, f"{key}: nothing seeded in the last 24 h"
        titles = card.locator("svg.chart rect title").evaluate_all(
            "ts => ts.map(t => t.textContent)"
        )
        bars = {label: int(value) for label, value in (t.rsplit(": ", 1) for t in titles)}
        assert bars == hourly, key
        expect(_stat(card, "Last 24h")).to_have_text(f"{sum(hourly.values()):,} failures")


def test_hidden_columns_stay_hidden_after_a_reload(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/?project=legacy")
    toggle = page.locator(".col-toggle[data-col=connection]")
    column = page.locator("#jobs .col-connection")
    queue = page.locator("#jobs .col-queue")
    expect(column.first).to_be_visible()
    toggle.uncheck()
    assert column.evaluate_all("cs => cs.every(c => c.offsetParent === null)")
    expect(queue.first).to_be_visible()
    page.reload()
    expect(toggle).not_to_be_checked()
    expect(column.first).to_be_hidden()
    assert column.evaluate_all("cs => cs.length > 1 && cs.every(c => c.offsetParent === null)")
    expect(queue.last).to_be_visible()
    toggle.check()
    page.reload()
    expect(toggle).to_be_checked()
    expect(column.last).to_be_visible()


def test_auto_refresh_updates_the_table_in_place_unless_rows_are_selected(
    page: Page, site: Site
) -> None:
    page.clock.install()  # the page's 15 s timer runs when the test says
    page.goto(f"{site.url}/?project=legacy")
    page.evaluate("window.sameDocument = true")  # gone if the page were reloaded
    loads: list[str] = []
    page.on("request", lambda r: loads.append(r.url) if r.is_navigation_request() else None)
    auto = page.locator("#autorefresh")
    expect(auto).not_to_be_checked()
    late = _row("App\\Jobs\\LateArrival", exception=_php("arrived after the page"), minutes=0)
    _insert(site.folder / "legacy.db", [late])
    arrived = page.locator(f'#jobs tr[data-id="{late["uuid"]}"]')

    page.clock.run_for(16_000)  # off: nothing happens
    page.wait_for_timeout(300)  # time for a reload to be asked for, were one under way
    assert loads == []

    auto.check()
    page.locator(".row-check").first.check()
    page.clock.run_for(16_000)  # never from under a selection
    page.wait_for_timeout(300)
    assert loads == []
    expect(arrived).to_have_count(0)

    page.locator(".row-check").first.uncheck()
    page.locator("#search").fill("half-typed")  # a filter being typed survives the refresh
    before = page.locator("#count").inner_text()
    page.clock.run_for(16_000)
    # The new failure arrives in place (docs/dashboard.md): no navigation, same document, the
    # count follows, the typed text stays.
    expect(arrived).to_have_count(1)
    expect(page.locator("#count")).not_to_have_text(before)
    assert loads == [] and page.evaluate("window.sameDocument") is True
    expect(page.locator("#search")).to_have_value("half-typed")
    page.reload()
    expect(auto).to_be_checked()  # remembered
