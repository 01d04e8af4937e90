"""The API docs (``/docs``) in a real browser: Swagger UI served by failboard itself.

Nothing of the page may come from another origin, and it runs under the same strict
Content-Security-Policy as every other page: no request leaves the server, no violation is
reported, and "Try it out" works with the browser's session (CSRF token included).
"""

from __future__ import annotations

import re

from playwright.sync_api import ConsoleMessage, Page, expect

from failboard.web.security import CSP

# Reported to the page by the browser, whatever the console says (added before any page
# script runs, through the DevTools protocol: the page's CSP does not apply to it).
WATCH_CSP = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


def _is_csp(message: ConsoleMessage) -> bool:
    return "Content Security Policy" in message.text or "Refused" in message.text


def test_the_api_docs_render_from_this_server_alone(page: Page, live_server: str) -> None:
    requests: list[str] = []
    refusals: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: refusals.append(m.text) if _is_csp(m) else None)
    page.add_init_script(WATCH_CSP)

    response = page.goto("/docs")
    assert response is not None and response.status == 200
    assert response.headers["content-security-policy"] == CSP
    jobs = page.locator(".opblock-summary-path", has_text=re.compile(r"^/api/v1/jobs$"))
    expect(jobs).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/actions").first).to_be_visible()
    page.wait_for_load_state("networkidle")

    # data: URLs (the stylesheet's icons) are part of the stylesheet, not a request out.
    foreign = [u for u in requests if not u.startswith((f"{live_server}/", "data:"))]
    assert foreign == []
    assert f"{live_server}/openapi.json" in requests
    assert f"{live_server}/static/apidocs/swagger-ui-bundle.js" in requests
    assert refusals == []
    assert page.evaluate("window.__violations") == []


def test_try_it_out_reads_and_writes_with_the_session(page: Page) -> None:
    page.goto("/docs")
    # Swagger UI's ids: operations-<tag>-<FastAPI's operation id>.
    projects = page.locator("#operations-projects-list_projects_api_v1_projects_get")
    projects.locator(".opblock-summary").click()
    projects.get_by_role("button", name="Try it out").click()
    projects.get_by_role("button", name="Execute").click()
    status = ".live-responses-table tbody .response-col_status"
    expect(projects.locator(status)).to_have_text("200")

    # A write: without the session's CSRF token it would be 403; with it the action is unknown.
    cancel = page.locator(
        "#operations-actions-cancel_action_api_v1_actions__action_id__cancel_post"
    )
    cancel.locator(".opblock-summary").click()
    cancel.get_by_role("button", name="Try it out").click()
    cancel.locator("input[placeholder='action_id']").fill("999999999")
    cancel.get_by_role("button", name="Execute").click()
    expect(cancel.locator(status)).to_have_text("404")
