"""Admin pages in Debian's headless chromium (Playwright), checked as a person sees them.

`AdminBrowser` logs in through the login form, and on every page it visits asserts what the
eye sees rather than what the HTML says: the admin stylesheet is applied (the header's computed
background colour), and no stylesheet, script, image or font answered 4xx/5xx or failed. It
saves a full-page screenshot of each page under ARTIFACTS_DIR (printed at the end of the run).
Playwright's sync API runs an event loop in its thread, where Django refuses database calls:
tests drive it from a thread of their own (`in_browser_thread`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from playwright.sync_api import Page, Response, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = Path(os.environ.get("MESH_TEST_ARTIFACTS", REPO_ROOT / "tmp" / "artifacts")) / "screenshots"
# Django admin's --header-bg (#417690): only there when admin/css/base.css loaded and applied.
ADMIN_HEADER_BACKGROUND = "rgb(65, 118, 144)"
ASSET_TYPES = {"stylesheet", "script", "image", "font"}

T = TypeVar("T")


def in_browser_thread(work: Callable[[], T], *, timeout: float = 240.0) -> T:
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(work).result(timeout=timeout)


class AdminBrowser:
    """One logged-in browser session; `visit`/`check` assert the page looks like the admin."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.broken_assets: list[str] = []
        page.on("response", self._on_response)
        page.on("requestfailed", lambda request: self._on_failed(request.url, request.resource_type))

    def _on_response(self, response: Response) -> None:
        if response.request.resource_type in ASSET_TYPES and response.status >= 400:
            self.broken_assets.append(f"{response.status} {response.url}")

    def _on_failed(self, url: str, resource_type: str) -> None:
        if resource_type in ASSET_TYPES:
            self.broken_assets.append(f"failed {url}")

    def login(self, username: str, password: str, *, next_path: str = "/admin/") -> None:
        self.page.goto(f"{self.base_url}/admin/login/?next={next_path}")
        self.check("login")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.click("input[type=submit]")
        self.page.wait_for_load_state("load")

    def visit(self, path: str, name: str) -> Page:
        self.page.goto(f"{self.base_url}{path}")
        self.check(name)
        return self.page

    def check(self, name: str) -> None:
        """The page as a person sees it: styled, no broken asset; saved as a screenshot."""
        page = self.page
        page.wait_for_load_state("load")  # every stylesheet, script and image answered
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(
            path=str(ARTIFACTS_DIR / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"), full_page=True
        )
        background = page.evaluate(
            "() => { const h = document.querySelector('#header');"
            " return h ? getComputedStyle(h).backgroundColor : null; }"
        )
        assert background == ADMIN_HEADER_BACKGROUND, f"{name}: admin stylesheet not applied ({background})"
        assert not self.broken_assets, f"{name}: broken assets {self.broken_assets}"


@contextmanager
def admin_browser(base_url: str, **context_options: Any) -> Iterator[AdminBrowser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(
                accept_downloads=True, viewport={"width": 1280, "height": 900}, **context_options
            )
            context.set_default_timeout(60_000)  # a loaded CI machine, not a slow page
            yield AdminBrowser(context.new_page(), base_url)
        finally:
            browser.close()
