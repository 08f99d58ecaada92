"""The operations console (`/console` on the order service) in a real browser cut off from every
other origin. Screenshots go to target/console/. Driven by the Rust tests of
services/order/tests/it/console.rs, which start the services and set the scene:

    python3 tests/browser/console_page.py signin ORIGIN TOKEN
        without a token the page asks for one (a labelled form, keyboard only); a refused token
        brings the form back with the reason; `#token=...` is taken into session storage and out
        of the URL; the page's own files load and nothing else is requested.

    python3 tests/browser/console_page.py cancel ORIGIN TOKEN SAGA_ID
        cancels SAGA_ID with a reason (confirmed in the dialog); it compensates, the reason is in
        its timeline.

    python3 tests/browser/console_page.py operate ORIGIN TOKEN STUCK_ID CANCELLED_ID DL_SERVICE DL_ID
        (the cause fixed) finds STUCK_ID with `Stuck only`, highlighted with its last error, opens
        its timeline with the failed attempts, retries it and sees it finish with the operator's
        retry in its timeline; sees CANCELLED_ID compensated (operator_cancelled); opens the
        payload of dead letter DL_ID of DL_SERVICE, redrives it and sees it gone; the outbox view
        shows every service, the audit logs the retry, the cancel and the redrive.

Fails (exit 1) on any request to another origin, any uncaught page error and any console error
other than the answers the script provokes on purpose. Prints what it checked, one line each.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("BROWSER_SCREENSHOTS", str(HERE.parents[1] / "target" / "console"))
from offline import offline_browser  # noqa: E402

FINISHED = ("COMPLETED", "COMPENSATED")


def watch_console(page, allowed: list[re.Pattern]) -> list[str]:
    """Console errors of the page, except those matching `allowed` (answers provoked on purpose)."""
    errors: list[str] = []

    def on_message(message):
        if message.type == "error" and not any(p.search(message.text) for p in allowed):
            errors.append(message.text)

    page.on("console", on_message)
    return errors


def check(label: str) -> None:
    print(f"ok: {label}")


def signin(origin: str, token: str) -> None:
    with offline_browser(origin) as session:
        page = session.page
        # the refused token below answers 401: the browser logs that one failed request
        errors = watch_console(page, [re.compile(r"status of 401")])
        response = page.goto(session.url("/console"))
        assert response is not None and response.ok, f"/console answered {response and response.status}"
        csp = response.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp, f"no strict policy: {csp!r}"
        page.wait_for_selector("#signin:not([hidden])")
        field = page.get_by_label("Admin token (JWT)")
        assert field.is_visible(), "the token field has no label"
        # the stylesheet applied: the header has its colour (nothing came from elsewhere)
        color = page.eval_on_selector("header.top", "e => getComputedStyle(e).backgroundColor")
        assert color == "rgb(31, 42, 68)", f"the stylesheet did not apply: {color}"
        check("without a token the page asks for one, styled by its own stylesheet")
        session.screenshot("console-signin")

        # keyboard only: type a refused token and submit with Enter on the button
        field.focus()
        page.keyboard.type("not-a-token")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_selector("#token-error:not([hidden])")
        message = page.inner_text("#token-error")
        assert "refused" in message, f"the refusal is not explained: {message!r}"
        assert page.evaluate("sessionStorage.getItem('longship.console.token')") is None
        check(f"a refused token brings the form back: {message}")

        # a token in the fragment is kept in session storage and leaves the URL
        page.goto(session.url(f"/console#token={token}"))
        page.wait_for_selector("#view:not([hidden]) h1")
        assert page.evaluate("location.hash") == "#/sagas", page.evaluate("location.href")
        assert page.evaluate("sessionStorage.getItem('longship.console.token')") == token
        assert page.evaluate("localStorage.length") == 0, "something was kept in local storage"
        check("#token= is taken into session storage and out of the URL")
        page.click("#forget")
        page.wait_for_selector("#signin:not([hidden])")
        assert page.evaluate("sessionStorage.getItem('longship.console.token')") is None
        check("Forget token clears it")
        assert not errors, f"console errors: {errors}"


def wait_status(page, wanted: tuple[str, ...], timeout_ms: int = 30000) -> str:
    page.wait_for_function(
        """wanted => {
            const pill = document.querySelector('dl.facts .pill');
            return pill && wanted.includes(pill.textContent);
        }""",
        arg=list(wanted),
        timeout=timeout_ms,
    )
    return page.inner_text("dl.facts .pill")


def confirm(page, reason: str | None = None) -> None:
    page.wait_for_selector("dialog#confirm[open]")
    if reason is not None:
        page.get_by_label(re.compile("^Reason")).fill(reason)
    page.click("#confirm-yes")
    page.wait_for_selector("dialog#confirm:not([open])", state="attached")


def open_console(session, token: str) -> None:
    session.page.goto(session.url(f"/console#token={token}"))
    session.page.wait_for_selector("table caption")


def cancel(origin: str, token: str, saga: str) -> None:
    with offline_browser(origin, timeout_ms=30000) as session:
        page = session.page
        errors = watch_console(page, [])
        open_console(session, token)
        page.goto(session.url(f"/console#/sagas/{saga}"))
        page.wait_for_selector(f'h1:has-text("{saga}")')
        page.click("#cancel")
        confirm(page, reason="customer asked on the phone")
        page.wait_for_selector(".notice.ok")
        status = wait_status(page, ("COMPENSATING", "COMPENSATED"))
        page.wait_for_selector('#timeline li.operator:has-text("customer asked on the phone")')
        assert page.is_disabled("#cancel"), "cancel stays enabled on a compensating saga"
        check(f"cancelled with a reason: the saga is {status}, the reason in its timeline")
        session.screenshot("console-saga-cancelled")
        assert not errors, f"console errors: {errors}"


def operate(origin: str, token: str, stuck: str, cancelled: str, dl_service: str, dl_id: str) -> None:
    with offline_browser(origin, timeout_ms=30000) as session:
        page = session.page
        errors = watch_console(page, [])
        open_console(session, token)

        # the stuck saga: listed with Stuck only, highlighted, with its last error
        page.check("#f-stuck")
        page.click("form[role=search] button[type=submit]")
        # locators, not element handles: the list refreshes itself while the script reads it
        row = page.locator(f'tr.stuck[data-saga="{stuck}"]')
        row.wait_for()
        last_error = row.locator("td.err").inner_text().strip()
        assert last_error, "the stuck saga shows no last error"
        check(f"stuck saga listed and highlighted, last error: {last_error[:100]}")
        session.screenshot("console-sagas-stuck")

        # its timeline, with the failed attempts
        row.locator("a").click()
        page.wait_for_selector("#timeline li")
        failed = page.query_selector_all("#timeline li.failed")
        assert failed, "the timeline shows no failed attempt"
        entries = len(page.query_selector_all("#timeline li"))
        check(f"timeline opened: {entries} entries, {len(failed)} with errors")
        session.screenshot("console-saga-timeline")

        # retry (the cause is fixed): confirmed, accepted, and it finishes; the operator's retry
        # is in the timeline
        page.click("#retry")
        confirm(page)
        page.wait_for_selector(".notice.ok")
        status = wait_status(page, FINISHED)
        page.wait_for_selector("#timeline li.operator")
        assert page.is_disabled("#retry"), "retry stays enabled on a finished saga"
        check(f"retried: the saga finished {status}, the operator's retry is in the timeline")
        session.screenshot("console-saga-retried")

        # the saga cancelled earlier has been compensated
        page.goto(session.url(f"/console#/sagas/{cancelled}"))
        page.wait_for_selector(f'h1:has-text("{cancelled}")')
        status = wait_status(page, ("COMPENSATED",))
        reason = page.inner_text("dl.facts")
        assert "operator_cancelled" in reason, reason
        check(f"the cancelled saga ended {status} (operator_cancelled)")

        # the dead letter: payload shown, redriven, gone
        page.goto(session.url("/console#/dead-letters"))
        letter = f'section[data-service="{dl_service}"] tr[data-dead-letter="{dl_id}"]'
        page.wait_for_selector(letter)
        page.click(f"{letter} button[aria-expanded]")
        payload = page.inner_text(f'section[data-service="{dl_service}"] tr.payload-row pre')
        assert payload.strip() not in ("", "(no payload)"), "the payload is empty"
        session.screenshot("console-dead-letters")
        page.click(f"{letter} button.redrive")
        confirm(page)
        page.wait_for_selector(".notice.ok")
        page.wait_for_selector(letter, state="detached")
        check(f"dead letter {dl_id} of {dl_service} redriven and gone")

        # outbox and consumers of every service, and the audit log with the actions
        page.goto(session.url("/console#/outbox"))
        for service in ("order", "inventory", "payment"):
            page.wait_for_selector(f'section[data-service="{service}"] table')
        check("outbox and consumers shown for order, inventory and payment")
        session.screenshot("console-outbox")
        page.goto(session.url("/console#/audit"))
        page.wait_for_selector("table tbody tr td code")
        actions = page.inner_text("table tbody")
        assert "saga.retry" in actions and "saga.cancel" in actions, f"audit log lacks the actions: {actions}"
        check("audit log shows the retry and the cancel")
        session.screenshot("console-audit")
        # the redrive is in the audit log of the service that holds the dead letter
        page.select_option("#a-service", dl_service)
        page.wait_for_selector('table tbody td code:has-text("dead_letter.redrive")')
        check(f"audit log of {dl_service} shows the redrive")
        assert not errors, f"console errors: {errors}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["signin"] and len(argv) == 3:
        signin(argv[1], argv[2])
    elif argv[:1] == ["cancel"] and len(argv) == 4:
        cancel(*argv[1:])
    elif argv[:1] == ["operate"] and len(argv) == 7:
        operate(*argv[1:])
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
