"""A real browser (Debian's chromium driven by Playwright) that may talk to one origin only.

Every request to another origin is aborted and recorded, so a page that would need the internet
(a CDN script, a web font, an analytics beacon) fails its test here exactly as it would render in
an air-gapped cluster. Used by the browser tests of this folder:

    with offline_browser("http://127.0.0.1:8080") as session:
        page = session.page
        page.goto(session.url("/docs"))
        ...
        session.screenshot("docs-order")      # target/browser/docs-order.png
    # leaving the block fails (AssertionError) if anything tried another origin, or the page
    # logged an uncaught error

Needs `pip install -r tests/browser/requirements.txt` and chromium (`apt-get install chromium`);
CHROMIUM (default /usr/bin/chromium) names another binary. No browser is ever downloaded.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("BROWSER_SCREENSHOTS", ROOT / "target" / "browser"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# what the machine's closed network needs: no background traffic, no sandbox as root, no GPU
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SETUP_HELP = (
    "install the browser test tools: `python3 -m pip install -r tests/browser/requirements.txt` "
    "and `apt-get install -y chromium` (CI's .ci/run does both)"
)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class Session:
    """A page of a browser confined to `origin`."""

    origin: str
    page: object
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.origin + path

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def _require_tools():
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        sys.exit(f"the Python package playwright is missing: {SETUP_HELP}")
    if not os.access(CHROMIUM, os.X_OK):
        sys.exit(f"no chromium at {CHROMIUM}: {SETUP_HELP}")


@contextlib.contextmanager
def offline_browser(origin: str, timeout_ms: int = 15000):
    """Yields a [`Session`] whose page reaches `origin` only; asserts on exit that nothing else was
    tried and that no uncaught page error happened."""
    _require_tools()
    from playwright.sync_api import sync_playwright

    origin = origin_of(origin)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(timeout_ms)
            session = Session(origin=origin, page=page)

            def route(r):
                url = r.request.url
                if url.startswith(("data:", "blob:", "about:")) or origin_of(url) == origin:
                    r.continue_()
                else:
                    session.foreign.append(url)
                    r.abort()

            context.route("**/*", route)
            page.on("pageerror", lambda e: session.errors.append(str(e)))
            yield session
            assert not session.foreign, f"the page tried other origins: {session.foreign}"
            assert not session.errors, f"uncaught errors in the page: {session.errors}"
        finally:
            browser.close()
