"""Browser tests of the static site: Debian's Chromium driven by Playwright (from PyPI).

``playwright install`` downloads its own browsers, which cannot be fetched here: the tests launch
the system Chromium (``/usr/bin/chromium``, Debian package ``chromium``) instead. Every request that
is not for a local file is aborted and recorded, so a page that would reach another host fails.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from include import db
from tests.conftest import assert_demo_run_succeeded

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser tests need Debian's chromium package. "
            "Install it with `apt-get update && apt-get install -y chromium` (.ci/run does this when it "
            "is missing), or point CHROMIUM at another Chromium binary.",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def built_site(demo_run):
    """The session's ``bw run`` on the scale-1 demo (tests/conftest.py: the whole pipeline,
    publish_site included); yields the warehouse URL and the site and docs folders."""
    assert_demo_run_succeeded(demo_run)
    work = demo_run["work"]
    return {"url": demo_run["url"], "site": work / "site", "docs": work / "docs", "env": demo_run["env"]}


@pytest.fixture(scope="module")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Visit:
    """A page opened in the browser, with what it logged and what it tried to fetch."""

    page: object
    console_errors: list[str] = field(default_factory=list)
    remote_requests: list[str] = field(default_factory=list)


@pytest.fixture
def visit(browser):
    """``visit(path)``: open a local file; console errors and non-local requests are recorded."""
    contexts = []

    def open_page(path: Path, width: int = 1280, height: int = 900) -> Visit:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        v = Visit(page)
        page.on("console", lambda m: v.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: v.console_errors.append(f"page error: {e}"))

        def route(r):
            if r.request.url.startswith(LOCAL_SCHEMES):
                r.continue_()
            else:
                v.remote_requests.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        return v

    yield open_page
    for c in contexts:
        c.close()


def rows(url: str, query: str) -> list[dict]:
    with db.connect(url) as conn, conn.cursor() as cur:
        cur.execute(query)
        names = [d.name for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def figures(page, selector: str = "[data-metric]") -> list[dict]:
    """Every figure matching ``selector``: its data-* attributes and its text."""
    return page.evaluate(
        """sel => Array.from(document.querySelectorAll(sel)).map(e =>
            Object.assign({text: e.textContent.trim()}, e.dataset))""",
        selector,
    )
