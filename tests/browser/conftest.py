"""A real browser for the web pages' tests: Playwright for Python driving Debian's chromium.

Why Debian's chromium: Playwright's own browser download is not reachable from where the
project builds and tests, so the browser comes from the system (``apt-get install chromium``;
``.ci/run`` installs it) and Playwright launches it by path.  Outside CI a machine without it
skips these tests with that reason; under ``CI=true`` a missing browser is a failure, so the
tests can never silently stop running where they matter.

The fixtures here are meant for every page's tests (the operator page now, the household page
later): ``browser`` (one per test module), ``browser_page`` (a fresh context and
page that records console errors and uncaught exceptions) and ``artifacts`` (where screenshots
go: ``$GRIDCHAIN_TEST_ARTIFACTS`` or ``test-artifacts/browser`` in the checkout, git-ignored).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.support import BrowserPage
from tests.procs import REPO

if TYPE_CHECKING:
    from playwright.sync_api import Browser

#: Where the system's chromium is (Debian's package); override with $GRIDCHAIN_CHROMIUM.
CHROMIUM = Path(os.environ.get("GRIDCHAIN_CHROMIUM", "/usr/bin/chromium"))
VIEWPORT = {"width": 1280, "height": 900}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"true", "1", "yes"}


def _unavailable(reason: str) -> None:
    """Fail under CI (the tests must run there), skip with ``reason`` elsewhere."""
    if in_ci():
        pytest.fail(f"browser tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One browser per test module.  Not per session: Playwright's sync API keeps an event loop
    running in this thread while it is open, and every asyncio test the same worker ran after
    the browser tests failed with "cannot be called from a running event loop"."""
    if not CHROMIUM.exists():
        _unavailable(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (make install)")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def browser_page(browser: Browser) -> Iterator[BrowserPage]:
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = context.new_page()
    watched = BrowserPage(page)
    page.on("console", watched.on_console)
    page.on("pageerror", watched.on_error)
    try:
        yield watched
    finally:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The folder screenshots are saved in (kept after the run for CI to collect)."""
    root = Path(os.environ.get("GRIDCHAIN_TEST_ARTIFACTS", REPO / "test-artifacts"))
    folder = root / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
