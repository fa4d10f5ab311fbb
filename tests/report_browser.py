"""Open the Snakemake HTML report in headless Chromium and read each table as a person would.

For every result listed under a category: click its eye button (the report shows an HTML result
in a frame, any other file only as a download), wait for a visible table in the frame, read its
caption and rows; click its info button and read the report's own caption ("Description").

The browser is Debian's chromium (``make browser`` installs it; CI runs that) driven by
playwright (pinned in requirements/lock.txt, no browser download: ``executable_path``). Where
either is missing, :func:`browser_or_skip` skips with the reason.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# What the machine's closed network and a root user need (see /usr/share/doc/chromium).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000


@dataclass
class TableView:
    """One table result as the report shows it."""

    category: str
    label: str
    caption: str  # the table's own caption (its title), inside the frame
    body_rows: int
    width: float
    height: float
    description: str  # the report's caption of the result (workflow/report/*.rst)


def browser_or_skip() -> str:
    """Path of the chromium executable, or skip naming what is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -c requirements/lock.txt -e .[dev])")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium on PATH: `make browser` installs Debian's (CI runs it)")
    return chromium


def _open(page: Any, report: Path, category: str) -> Any:
    """A fresh load of the report showing ``category``'s list; returns its rows."""
    page.goto(report.resolve().as_uri())
    page.get_by_text(category, exact=True).first.click()
    return page.locator("tbody tr")


def _view(page: Any, category: str, row: Any) -> TableView | None:
    """Click ``row``'s eye button; the table it shows, or None for a figure."""
    label = row.inner_text().strip()
    eye, info = row.locator("a[type=button]").nth(0), row.locator("a[type=button]").nth(1)
    eye.click()
    page.locator("iframe, img[src^='data:']").first.wait_for(state="attached")
    if page.locator("iframe").count() == 0:
        return None
    frame = page.frame_locator("iframe")
    table = frame.locator("table").first
    table.wait_for(state="visible")
    box = table.bounding_box() or {"width": 0.0, "height": 0.0}
    caption = frame.locator("caption").first.inner_text().strip()
    body_rows = frame.locator("tbody tr").count()
    info.click()
    description = page.locator("li.prose").first
    description.wait_for(state="visible")
    return TableView(
        category,
        label,
        caption,
        body_rows,
        box["width"],
        box["height"],
        description.inner_text().strip(),
    )


def table_views(report: Path, chromium: str, categories: list[str]) -> list[TableView]:
    """Every result of ``categories`` (menu names) that the report shows as a table."""
    from playwright.sync_api import sync_playwright

    views = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            for category in categories:
                for i in range(_open(page, report, category).count()):
                    view = _view(page, category, _open(page, report, category).nth(i))
                    if view is not None:
                        views.append(view)
        finally:
            browser.close()
    return views
