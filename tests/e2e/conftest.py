"""Browser tests: Playwright for Python driving Debian's Chromium (/usr/bin/chromium) against a live server.

Skipped with a reason where Chromium or Playwright is missing (CI installs both). Screenshots of every step go to
test-output/e2e/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "e2e"


@pytest.fixture(scope="module")
def browser():
    # Module, not session: Playwright's event loop stays in the main thread while it runs, and the rest of the suite
    # runs async code there (asyncio.run, Django's async views under the test client).
    playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (CI installs Debian's chromium)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    # Playwright's sync API keeps an event loop in this thread; Django's database calls in the test code are still
    # synchronous and single-threaded here, which is what its async-safety check cannot see (the documented setup
    # for Playwright with Django).
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser):
    contexts = []

    def make(locale: str = "zh-CN"):
        context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


class Shots:
    def __init__(self, name: str):
        self.name, self.count = name, 0

    def __call__(self, page, step: str) -> None:
        self.count += 1
        page.screenshot(path=str(SHOTS / f"{self.name}-{self.count:02d}-{step}.png"), full_page=True)


@pytest.fixture
def shots(request):
    return Shots(request.node.name)


@pytest.fixture
def live_sandbox(live_server, settings):
    """The live server is also the upstream: its /sandbox/ plays WeChat Pay and UMF over real HTTP."""
    from payments import channels

    settings.WECHATPAY_API_BASE = f"{live_server.url}/sandbox/wechatpay"
    settings.WECHATPAY_FACE_API_BASE = f"{live_server.url}/sandbox/wechatpay-face"
    settings.UMPAY_API_BASE = f"{live_server.url}/sandbox/umpay"
    settings.PUBLIC_BASE_URL = live_server.url
    settings.PAYMENT_WAIT_SECONDS = 0
    settings.SANDBOX_REFUND_SECONDS = 0
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    assert channels.upstream_client is None
    return live_server


# --- screenshots for the docs --------------------------------------------------------------------------------------
# `UPDATE_DOCS_SCREENSHOTS=1 .venv/bin/python -m pytest tests/e2e/test_roles.py` also saves the curated, named
# screenshots of docs/screenshots/ (shown in the README) from the role tests; without the variable nothing is written.

DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


class DocsShots:
    """`docs_shots(page, "payments")` saves docs/screenshots/payments-1440.png (the viewport, from the top of the
    page); `size=PHONE` makes payments-390.png; `scroll_to` (a selector) starts the viewport at that element instead
    (a list below its filters on a phone); `max_height` takes the page up to that height (for a page whose point is
    below the fold, like a payment's timeline). The page's own viewport is restored afterwards."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(
        self, page, name: str, *, size: dict = DESKTOP, scroll_to: str | None = None, max_height: int | None = None
    ) -> None:
        if not self.enabled:
            return
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        previous = page.viewport_size
        page.set_viewport_size(size)
        page.evaluate(
            "(s) => window.scrollTo(0, s ? document.querySelector(s).getBoundingClientRect().top + scrollY - 8 : 0)",
            scroll_to,
        )
        page.mouse.move(0, 0)  # no hover highlight
        path = DOCS_SCREENSHOTS / f"{name}-{size['width']}.png"
        options = {"path": str(path), "animations": "disabled", "caret": "hide"}
        if max_height:
            height = min(page.evaluate("() => document.documentElement.scrollHeight"), max_height)
            options.update(full_page=True, clip={"x": 0, "y": 0, "width": size["width"], "height": height})
        page.screenshot(**options)
        if previous:
            page.set_viewport_size(previous)


@pytest.fixture
def docs_shots():
    return DocsShots(os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1")
