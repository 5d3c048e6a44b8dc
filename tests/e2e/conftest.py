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
