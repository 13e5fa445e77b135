"""What the browser tests share besides fixtures: the watched page and screenshots."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page


@dataclass
class BrowserPage:
    """A page and what went wrong in it: console errors and uncaught exceptions."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location})")

    def on_error(self, error: Exception) -> None:
        self.errors.append(f"uncaught: {error}")


def screenshot(page: Page, artifacts: Path, name: str) -> Path:
    """Save a full-page screenshot as ``artifacts/NAME.png``."""
    path = artifacts / (re.sub(r"[^a-z0-9_-]+", "-", name.lower()) + ".png")
    page.screenshot(path=str(path), full_page=True)
    return path
