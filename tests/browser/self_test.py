"""Checks the harness itself: a local page that asks another origin is caught, one that does not
passes. Run: python3 tests/browser/self_test.py (exit 0 when the harness works)."""

from __future__ import annotations

import http.server
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from offline import offline_browser  # noqa: E402

PAGES = {
    "/clean": b"<html><body><h1 id=t>clean</h1></body></html>",
    "/leaky": b"<html><head><script src='https://unpkg.com/x.js'></script></head><body>leaky</body></html>",
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = PAGES.get(self.path, b"")
        self.send_response(200 if body else 404)
        self.send_header("content-type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main() -> int:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    with offline_browser(origin) as s:
        s.page.goto(s.url("/clean"))
        assert s.page.inner_text("#t") == "clean"
    try:
        with offline_browser(origin) as s:
            s.page.goto(s.url("/leaky"))
    except AssertionError as e:
        assert "unpkg.com" in str(e), e
    else:
        print("FAIL: a page loading from another origin was not caught")
        return 1
    print("ok: the harness confines pages to their origin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
