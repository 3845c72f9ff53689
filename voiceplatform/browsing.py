"""Browser-test fixtures (Debian's Chromium driven by Playwright), shared by every app's tests.

Loaded by the root ``conftest.py``. A test asks for ``browser`` (a launched Chromium) and uses
``open_page`` for a page that records every JavaScript error, console error and HTTP 5xx it
sees, and ``sign_in`` to go through the real login form. Tests using ``browser`` are skipped
only when Chromium is missing (``make test`` installs it).
"""
from __future__ import annotations

import os
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
#: Extra flags for pages that open the microphone: a fake device and no permission prompt.
MEDIA_FLAGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


@dataclass
class PageProblems:
    """What went wrong on a page: JavaScript errors, console errors and 5xx answers, in order."""

    errors: list[str] = field(default_factory=list)

    def assert_none(self) -> None:
        assert self.errors == [], "\n".join(self.errors)


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


@contextmanager
def browser_with_microphone(monkeypatch: Any, wav: Path, pcm: bytes, rate: int = 48000) -> Iterator[Any]:
    """A headless Chromium whose fake microphone plays ``pcm`` (PCM16 mono, looped), written to ``wav``."""
    if not chromium_available():
        pytest.skip("Chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # as ``browser``
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=[*FLAGS, *MEDIA_FLAGS, f"--use-file-for-fake-audio-capture={wav}"])
        yield instance
        instance.close()


@pytest.fixture
def browser(monkeypatch: Any) -> Iterator[Any]:
    """A headless Chromium with a fake microphone (so web-call pages work too)."""
    if not chromium_available():
        pytest.skip("Chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread; Django's ORM,
    # used by the test's own fixtures here, is only ever called synchronously.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS + MEDIA_FLAGS, headless=True)
        yield instance
        instance.close()


def open_page(browser: Any, width: int = 1440, height: int = 900) -> tuple[Any, PageProblems]:
    """A new page at the given viewport, with its problems recorded as they happen."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.grant_permissions(["microphone"])
    page = context.new_page()
    problems = PageProblems()
    page.on("pageerror", lambda exc: problems.errors.append(f"{page.url}: JavaScript error: {exc}"))
    page.on("console", lambda msg: problems.errors.append(f"{page.url}: console: {msg.text}")
            if msg.type == "error" else None)
    page.on("response", lambda r: problems.errors.append(f"{r.url}: HTTP {r.status}") if r.status >= 500 else None)
    return page, problems


def sign_in(page: Any, base_url: str, email: str, password: str) -> None:
    """Sign in through the real login form and wait for the dashboard."""
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/dashboard/**")


def document_overflow(page: Any) -> int:
    """How many CSS pixels the document is wider than the viewport (0 when it fits)."""
    return int(page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth"))
