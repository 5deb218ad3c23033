"""Fixtures for report tests: open a report in headless Chromium (system build, via Playwright)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def inspect_report(path: Path, screenshot: Path | None = None) -> dict[str, Any]:
    """Console errors, plot count, rendered plots, the tooltip text after hovering a token, and
    the sections or tables wider than a 1280 px window."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.resolve().as_uri())
        page.wait_for_timeout(1500)
        n_plots = page.locator("div.plotly-graph-div").count()
        rendered_plots = page.eval_on_selector_all(
            "div.plotly-graph-div", "els => els.filter(e => e.querySelector('.main-svg')).length"
        )
        tooltip = ""
        tokens = page.locator(".tv .tok")
        if tokens.count():
            tokens.first.scroll_into_view_if_needed()
            tokens.first.hover()
            page.wait_for_timeout(200)
            tooltip = page.locator(".tv-tip").first.inner_text()
        if screenshot is not None:
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(screenshot))
        scripts_injected = page.evaluate("() => window.__pwned === true")
        # Sections and tables wider than the page (a wide table once pushed it to 1729 px).
        overflowing = page.evaluate(
            "() => [...document.querySelectorAll('section, table')].filter(e => e.scrollWidth"
            " > e.clientWidth + 1 || e.getBoundingClientRect().right > innerWidth)"
            ".map(e => e.id || e.closest('section').id)"
        )
        browser.close()
    return {
        "errors": errors, "n_plots": n_plots, "rendered_plots": rendered_plots,
        "tooltip": tooltip, "scripts_injected": scripts_injected, "overflowing": overflowing,
    }  # fmt: skip


@pytest.fixture
def browser_inspect():
    """`inspect_report`, or a skip where no browser is installed."""
    if chromium_path() is None:
        pytest.skip("no chromium installed (CI installs Debian's chromium)")
    pytest.importorskip("playwright")
    return inspect_report
