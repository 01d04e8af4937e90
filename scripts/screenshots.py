"""Take the README's screenshots of every page: ``python scripts/screenshots.py [OUT_DIR]``.

Runs the demo (the same seeded SQLite projects a new user sees) on a free loopback port and
drives Debian's chromium (``apt-get install -y chromium``; FAILBOARD_CHROMIUM overrides the path).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import expect, sync_playwright

from failboard.config import load_settings
from failboard.demo import seed_demo
from failboard.web import create_app

CHROMIUM = os.environ.get("FAILBOARD_CHROMIUM", "/usr/lib/chromium/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="failboard-shots-") as folder:
        settings = load_settings(seed_demo(Path(folder)))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                for scheme in ("light", "dark"):
                    page = browser.new_page(
                        viewport={"width": 1400, "height": 900}, color_scheme=scheme
                    )
                    suffix = "" if scheme == "light" else "-dark"
                    page.goto(f"{base}/")
                    expect(page.locator("#count")).not_to_have_text("counting…")
                    page.screenshot(path=out / f"failed-jobs{suffix}.png")
                    if scheme == "dark":
                        continue
                    page.locator("#jobs tbody tr td:nth-child(3) a").first.click()
                    page.screenshot(path=out / "job-detail.png")
                    page.goto(f"{base}/groups")
                    page.screenshot(path=out / "groups.png")
                    button = page.locator("li.group button[data-group-act=retry]").first
                    button.click()
                    page.locator("#confirm").wait_for()
                    page.screenshot(path=out / "confirm-retry-group.png")
                    page.locator("#confirm-ok").click()
                    page.wait_for_timeout(1500)
                    page.goto(f"{base}/actions")
                    page.screenshot(path=out / "actions.png")
                    page.goto(f"{base}/projects")
                    page.screenshot(path=out / "projects.png", full_page=True)
                browser.close()
        finally:
            server.should_exit = True
            thread.join(10)
    print(f"screenshots written to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/screenshots"))
