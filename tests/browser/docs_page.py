"""A service's API docs page renders in a browser cut off from every other origin, and lists the
service's operations.

    python3 tests/browser/docs_page.py ORIGIN NAME "GET /v1/things/{id}" "PUT /v1/things/{id}" ...

Opens ORIGIN/docs (Swagger UI served by the service itself), waits until the operations of
/openapi.json are rendered, checks that every expected "METHOD /path" is listed, expands the
first one (its responses and examples render too), and saves target/browser/docs-NAME.png.
Prints the operations it found, one per line. Driven by the Rust test that starts the services
(services/order/tests/it/docs_page.rs).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from offline import offline_browser  # noqa: E402


def rendered_operations(page) -> list[str]:
    """ "METHOD /path" of every operation block Swagger UI rendered."""
    found = []
    for block in page.query_selector_all(".opblock"):
        method = block.query_selector(".opblock-summary-method")
        path = block.query_selector(".opblock-summary-path")
        if method and path:
            route = path.get_attribute("data-path") or path.inner_text()
            found.append(f"{method.inner_text().strip().upper()} {route.strip()}")
    return found


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__)
        return 2
    origin, name, expected = argv[0], argv[1], argv[2:]
    with offline_browser(origin) as session:
        page = session.page
        response = page.goto(session.url("/docs"))
        assert response is not None and response.ok, f"/docs answered {response and response.status}"
        # the title comes from the document's info: the page fetched and parsed /openapi.json
        page.wait_for_selector(".information-container .title", state="visible")
        page.wait_for_selector(".opblock", state="visible")
        found = rendered_operations(page)
        missing = [op for op in expected if op not in found]
        assert not missing, f"operations not listed: {missing}; found: {found}"
        # open the first operation: its parameters, responses and examples render without errors
        page.click(".opblock .opblock-summary")
        page.wait_for_selector(".opblock.is-open .responses-table", state="visible")
        assert page.query_selector(".opblock.is-open .response-col_status"), "no responses shown"
        errors = page.query_selector_all(".errors-wrapper .error-wrapper")
        assert not errors, f"Swagger UI reports errors: {[e.inner_text() for e in errors]}"
        shot = session.screenshot(f"docs-{name}")
        for op in found:
            print(op)
        print(f"screenshot: {shot}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
