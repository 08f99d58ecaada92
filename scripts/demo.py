#!/usr/bin/env python3
"""A guided walk through a running Longship platform (`just up`, then `just demo`).

Seeds two tenants (acme, globex) with products and accounts whose names are unique to
this run, places orders that are confirmed, run out of stock, are declined, name an
unknown sku and are retried with the same Idempotency-Key, waits until each order
leaves PENDING, prints one line per order with its saga steps, shows that one tenant
cannot see another's order, and checks that stock and money settled (section 8 of
ARCHITECTURE.md). Then, on a platform `just up` started on this machine, it leaves one
dead letter and one stuck saga to fix in the operations console and prints the console's
URL and what to do (scripts/demo_console.py; DEMO_CONSOLE=off leaves nothing). Exits 1 when an expectation fails (saying what was expected), 2
when the platform cannot be reached.

Python 3 standard library only. Configuration (environment):
  LONGSHIP_ORDER_URL / LONGSHIP_INVENTORY_URL / LONGSHIP_PAYMENT_URL
      default http://127.0.0.1:8080 / :8081 / :8082, plus LONGSHIP_PORT_OFFSET
  DEMO_WAIT_SECS    how long orders may stay PENDING (default 30)
  DEMO_SETTLE_SECS  how long stock/funds may take to settle after that (default 15)
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

import demo_console

TENANT_A, TENANT_B = "acme", "globex"
STEPS = ("ReserveStock", "AuthorizePayment", "ConfirmOrder")


def _offset():
    raw = os.environ.get("LONGSHIP_PORT_OFFSET", "0") or "0"
    if not raw.isdigit():
        sys.exit(f"error: LONGSHIP_PORT_OFFSET must be a non-negative integer, got {raw!r}")
    return int(raw)


def _base(var, port):
    return os.environ.get(var, f"http://127.0.0.1:{port + _offset()}").rstrip("/")


ORDER = _base("LONGSHIP_ORDER_URL", 8080)
INVENTORY = _base("LONGSHIP_INVENTORY_URL", 8081)
PAYMENT = _base("LONGSHIP_PAYMENT_URL", 8082)
WAIT_SECS = float(os.environ.get("DEMO_WAIT_SECS", "30"))
SETTLE_SECS = float(os.environ.get("DEMO_SETTLE_SECS", "15"))

# Talk to the platform directly, never through an http(s)_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Unreachable(Exception):
    pass


class Response:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw.decode("utf-8", "replace")
        try:
            self.json = json.loads(self.raw) if self.raw else None
        except ValueError:
            self.json = None

    def brief(self):
        text = self.raw if len(self.raw) <= 300 else self.raw[:300] + "..."
        return f"HTTP {self.status}: {text}"


def call(method, url, tenant=None, body=None, headers=None, timeout=10.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if tenant:
        req.add_header("X-Tenant-Id", tenant)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with _OPENER.open(req, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise Unreachable(f"{method} {url}: {reason}") from None


# --- expectations -----------------------------------------------------------------
FAILURES = []


def expect(ok, what, got=None):
    if not ok:
        FAILURES.append(what if got is None else f"{what}; got {got}")
    return ok


# --- output -----------------------------------------------------------------------
def table(headers, rows, indent="  "):
    rows = [[("-" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells):
        return indent + "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    print(line(headers))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))


def heading(text):
    print()
    print(text)


def short(order_id):
    # UUIDv7 ids share their leading (time) digits within a run; the tail tells them apart.
    return "…" + order_id[-8:] if order_id and len(order_id) > 8 else (order_id or "-")


def steps_text(order):
    saga = (order or {}).get("saga") or {}
    parts = []
    for s in saga.get("steps") or []:
        text = f"{s.get('name')}:{s.get('status')}"
        if (s.get("attempts") or 1) > 1:
            text += f"(x{s.get('attempts')})"
        parts.append(text)
    return ", ".join(parts) or "-"


# --- the walk-through ---------------------------------------------------------------
class Scenario:
    def __init__(self, tenant, name, customer, items, status, reason=None, total=None, key=None):
        self.tenant, self.name, self.customer, self.items = tenant, name, customer, items
        self.want_status, self.want_reason, self.want_total, self.key = status, reason, total, key
        self.order_id = None
        self.order = None
        self.post_problem = None

    def body(self):
        return {
            "customer_id": self.customer,
            "currency": "USD",
            "items": [{"sku": sku, "quantity": q} for sku, q in self.items],
        }

    def label(self):
        return f"{self.tenant}/{self.name}"


def check_platform():
    for name, base in (("order", ORDER), ("inventory", INVENTORY), ("payment", PAYMENT)):
        try:
            r = call("GET", base + "/readyz", timeout=3)
        except Unreachable as e:
            print(f"error: the {name} service does not answer at {base} ({e}).", file=sys.stderr)
            print("       Start the platform with `just up` (or set LONGSHIP_PORT_OFFSET / LONGSHIP_*_URL).", file=sys.stderr)
            sys.exit(2)
        if r.status != 200:
            print(f"error: the {name} service at {base} is not ready (GET /readyz -> {r.status}); see `just status` and `just logs {name}`.", file=sys.stderr)
            sys.exit(2)


def seed(run):
    widget, gadget = f"WIDGET-{run}", f"GADGET-{run}"
    alice, bob = f"alice-{run}", f"bob-{run}"
    products = [
        # tenant, sku, name, price, on_hand
        (TENANT_A, widget, "Widget", 1250, 100),
        (TENANT_A, gadget, "Gadget (only one left)", 4999, 1),
        (TENANT_B, widget, "Widget (globex's own, other price)", 900, 50),
    ]
    accounts = [
        (TENANT_A, alice, 1_000_000),
        (TENANT_A, bob, 1_000),  # less than one widget: every order of bob's is declined
        (TENANT_B, alice, 500_000),  # same customer id as acme's alice: a different account
    ]
    heading(f"1. Seeding (run {run}): the same sku and customer ids in both tenants are separate records")
    rows = []
    for tenant, sku, name, price, on_hand in products:
        r = call("PUT", f"{INVENTORY}/v1/products/{sku}", tenant,
                 {"name": name, "price_cents": price, "currency": "USD", "on_hand": on_hand})
        if not 200 <= r.status < 300:
            sys.exit(f"error: PUT /v1/products/{sku} as {tenant} failed, expected 200: {r.brief()}")
        expect(r.status == 200, f"PUT /v1/products/{sku} ({tenant}) should answer 200", r.status)
        rows.append([tenant, "product", sku, f"{price / 100:.2f} USD", f"on_hand {on_hand}"])
    for tenant, customer, balance in accounts:
        r = call("PUT", f"{PAYMENT}/v1/accounts/{customer}", tenant, {"balance_cents": balance, "currency": "USD"})
        if not 200 <= r.status < 300:
            sys.exit(f"error: PUT /v1/accounts/{customer} as {tenant} failed, expected 200: {r.brief()}")
        expect(r.status == 200, f"PUT /v1/accounts/{customer} ({tenant}) should answer 200", r.status)
        rows.append([tenant, "account", customer, f"{balance / 100:.2f} USD", ""])
    table(["tenant", "kind", "id", "price/balance", "stock"], rows)

    scenarios = [
        Scenario(TENANT_A, "happy path", alice, [(widget, 2), (gadget, 1)], "CONFIRMED", total=2 * 1250 + 4999),
        Scenario(TENANT_A, "out of stock", alice, [(widget, 1), (gadget, 5)], "CANCELLED", "insufficient_stock"),
        Scenario(TENANT_A, "payment declined", bob, [(widget, 1)], "CANCELLED", "payment_declined"),
        Scenario(TENANT_A, "unknown sku", alice, [(f"NOSUCH-{run}", 1)], "CANCELLED", "unknown_sku"),
        Scenario(TENANT_A, "idempotent retry", alice, [(widget, 1)], "CONFIRMED", total=1250, key=f"demo-{run}"),
        Scenario(TENANT_B, "happy path", alice, [(widget, 3)], "CONFIRMED", total=3 * 900),
        Scenario(TENANT_B, "acme's sku", alice, [(gadget, 1)], "CANCELLED", "unknown_sku"),
    ]
    expected_stock = {
        (TENANT_A, widget): 100 - 2 - 1,
        (TENANT_A, gadget): 1 - 1,
        (TENANT_B, widget): 50 - 3,
    }
    expected_balance = {
        (TENANT_A, alice): 1_000_000 - (2 * 1250 + 4999) - 1250,
        (TENANT_A, bob): 1_000,
        (TENANT_B, alice): 500_000 - 3 * 900,
    }
    return scenarios, expected_stock, expected_balance


def place(sc):
    headers = {"Idempotency-Key": sc.key} if sc.key else None
    r = call("POST", f"{ORDER}/v1/orders", sc.tenant, sc.body(), headers)
    if r.status != 202 or not isinstance(r.json, dict) or not r.json.get("id"):
        sc.post_problem = f"POST /v1/orders should answer 202 with the order; {r.brief()}"
        expect(False, f"{sc.label()}: {sc.post_problem}")
        return None
    sc.order_id = r.json["id"]
    sc.order = r.json
    loc = r.headers.get("Location")
    expect(loc == f"/v1/orders/{sc.order_id}",
           f"{sc.label()}: POST /v1/orders should set Location: /v1/orders/{sc.order_id}", loc)
    expect(r.json.get("status") == "PENDING",
           f"{sc.label()}: POST /v1/orders should return the order as PENDING", r.json.get("status"))
    return r


def wait_for_outcomes(scenarios):
    pending = [s for s in scenarios if s.order_id]
    deadline = time.monotonic() + WAIT_SECS
    while pending and time.monotonic() < deadline:
        still = []
        for sc in pending:
            r = call("GET", f"{ORDER}/v1/orders/{sc.order_id}", sc.tenant)
            if r.status != 200 or not isinstance(r.json, dict):
                expect(False, f"{sc.label()}: GET /v1/orders/{sc.order_id} should answer 200 for its own tenant", r.brief())
                continue
            sc.order = r.json
            if r.json.get("status") == "PENDING":
                still.append(sc)
        pending = still
        if pending:
            time.sleep(0.3)
    for sc in pending:
        expect(False, f"{sc.label()}: order {sc.order_id} should leave PENDING within {WAIT_SECS:.0f}s",
               f"still PENDING ({steps_text(sc.order)})")
    return pending


def judge(sc, prices):
    o = sc.order or {}
    label = sc.label()
    expect(o.get("status") == sc.want_status, f"{label}: status should be {sc.want_status}", o.get("status"))
    expect(o.get("failure_reason") == sc.want_reason,
           f"{label}: failure_reason should be {json.dumps(sc.want_reason)}", json.dumps(o.get("failure_reason")))
    if sc.want_status == "CONFIRMED":
        if sc.want_total is not None:
            expect(o.get("total_cents") == sc.want_total, f"{label}: total_cents should be {sc.want_total}", o.get("total_cents"))
        for item in o.get("items") or []:
            want = prices.get((sc.tenant, item.get("sku")))
            expect(item.get("unit_price_cents") == want,
                   f"{label}: {item.get('sku')} unit_price_cents should be {sc.tenant}'s price {want}", item.get("unit_price_cents"))
        names = [s.get("name") for s in ((o.get("saga") or {}).get("steps") or [])]
        expect(all(n in names for n in STEPS), f"{label}: saga steps should include {', '.join(STEPS)}", names)


def settle(scenarios, expected_stock, expected_balance):
    """After the orders: stock committed/released and funds captured/voided. The events
    (order_confirmed -> commit, capture) are asynchronous, so poll until it all holds."""
    deadline = time.monotonic() + SETTLE_SECS
    while True:
        pay_rows, bad = payments_state(scenarios)
        stock_rows, money_rows = [], []
        for (tenant, sku), on_hand in expected_stock.items():
            p = call("GET", f"{INVENTORY}/v1/products/{sku}", tenant).json or {}
            stock_rows.append([tenant, sku, p.get("on_hand"), p.get("reserved"), p.get("available"), on_hand])
            if p.get("on_hand") != on_hand or p.get("reserved") != 0:
                bad.append(f"{tenant}/{sku}: on_hand should be {on_hand} and reserved 0; got on_hand {p.get('on_hand')}, reserved {p.get('reserved')}")
        for (tenant, customer), balance in expected_balance.items():
            a = call("GET", f"{PAYMENT}/v1/accounts/{customer}", tenant).json or {}
            money_rows.append([tenant, customer, a.get("balance_cents"), a.get("held_cents"), a.get("available_cents"), balance])
            if a.get("balance_cents") != balance or a.get("held_cents") != 0:
                bad.append(f"{tenant}/{customer}: balance_cents should be {balance} and held_cents 0; got {a.get('balance_cents')}, held {a.get('held_cents')}")
        if not bad or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    table(["tenant", "scenario", "order", "payments (status amount)"], pay_rows)
    print()
    table(["tenant", "sku", "on_hand", "reserved", "available", "expected on_hand"], stock_rows)
    print()
    table(["tenant", "customer", "balance", "held", "available", "expected balance"], money_rows)
    for b in bad:
        expect(False, f"after {SETTLE_SECS:.0f}s: {b}")


def payments_state(scenarios):
    rows, bad = [], []
    for sc in scenarios:
        if not sc.order_id or not sc.order or sc.order.get("status") == "PENDING":
            continue
        r = call("GET", f"{PAYMENT}/v1/payments?order_id={sc.order_id}", sc.tenant)
        items = (r.json or {}).get("items") if isinstance(r.json, dict) else None
        if r.status != 200 or items is None:
            bad.append(f"{sc.label()}: GET /v1/payments?order_id={sc.order_id} should answer 200 with items; got {r.brief()}")
            continue
        statuses = [p.get("status") for p in items]
        rows.append([sc.tenant, sc.name, short(sc.order_id), ", ".join(f"{p.get('status')} {p.get('amount_cents')}" for p in items) or "(none)"])
        if sc.order.get("status") == "CONFIRMED":
            captured = [p for p in items if p.get("status") == "CAPTURED"]
            if not (len(items) == 1 and len(captured) == 1 and captured[0].get("amount_cents") == sc.order.get("total_cents")):
                bad.append(f"{sc.label()}: a CONFIRMED order should have exactly one CAPTURED payment of "
                           f"total_cents {sc.order.get('total_cents')}; got {statuses}")
        elif "CAPTURED" in statuses or "AUTHORIZED" in statuses:
            bad.append(f"{sc.label()}: a CANCELLED order should have no CAPTURED or AUTHORIZED payment (holds VOIDED); got {statuses}")
    return rows, bad


def main():
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__)
        return 0
    check_platform()
    run = uuid.uuid4().hex[:8]
    print(f"Longship demo against order {ORDER}, inventory {INVENTORY}, payment {PAYMENT}")
    scenarios, expected_stock, expected_balance = seed(run)
    prices = {(TENANT_A, f"WIDGET-{run}"): 1250, (TENANT_A, f"GADGET-{run}"): 4999, (TENANT_B, f"WIDGET-{run}"): 900}

    heading("2. Placing orders (POST /v1/orders -> 202, the saga runs in the background)")
    retry_note = None
    for sc in scenarios:
        first = place(sc)
        if first is None:
            print(f"  {sc.label():<28} POST failed: {sc.post_problem}")
            continue
        print(f"  {sc.label():<28} 202 {sc.order_id}" + (f"  (Idempotency-Key: {sc.key})" if sc.key else ""))
        if sc.key:
            again = call("POST", f"{ORDER}/v1/orders", sc.tenant, sc.body(), {"Idempotency-Key": sc.key})
            again_id = (again.json or {}).get("id") if isinstance(again.json, dict) else None
            same = again.status == first.status and again_id == sc.order_id
            expect(same, f"{sc.label()}: the same Idempotency-Key and body should return the same order and status code "
                         f"(202 {sc.order_id})", f"{again.status} {again_id}")
            retry_note = (f"  {sc.label():<28} {again.status} {again_id}  (sent again with the same key: "
                          + ("the same order, no second one)" if same else "NOT the same order!)"))
            print(retry_note)

    heading(f"3. Waiting (up to {WAIT_SECS:.0f}s) until every order leaves PENDING")
    started = time.monotonic()
    left = wait_for_outcomes(scenarios)
    print(f"  done in {time.monotonic() - started:.1f}s" + (f"; {len(left)} still PENDING" if left else ""))
    for sc in scenarios:
        if sc.order_id:
            judge(sc, prices)
    rows = []
    for sc in scenarios:
        o = sc.order or {}
        rows.append([sc.tenant, sc.name, short(sc.order_id), o.get("status", "POST failed"),
                     o.get("failure_reason"), o.get("total_cents"), steps_text(o)])
    print()
    table(["tenant", "scenario", "order", "status", "failure_reason", "total", "saga steps"], rows)

    heading("4. Tenant isolation")
    happy = scenarios[0]
    if happy.order_id:
        mine = call("GET", f"{ORDER}/v1/orders/{happy.order_id}", TENANT_A)
        theirs = call("GET", f"{ORDER}/v1/orders/{happy.order_id}", TENANT_B)
        print(f"  GET /v1/orders/{happy.order_id} as {TENANT_A}  -> {mine.status}")
        print(f"  GET /v1/orders/{happy.order_id} as {TENANT_B} -> {theirs.status}"
              + ("  (another tenant's order does not exist for globex)" if theirs.status == 404 else ""))
        expect(mine.status == 200, f"{TENANT_A} should read its own order (200)", mine.status)
        expect(theirs.status == 404, f"{TENANT_B} reading {TENANT_A}'s order should get 404 (never 403)", theirs.status)
    gadget = f"GADGET-{run}"
    other = call("GET", f"{INVENTORY}/v1/products/{gadget}", TENANT_B)
    print(f"  GET /v1/products/{gadget} as {TENANT_B} -> {other.status}  ({TENANT_A}'s product)")
    expect(other.status == 404, f"{TENANT_B} reading {TENANT_A}'s product should get 404", other.status)

    heading(f"5. Money and stock after the events settled (order_confirmed -> commit stock, capture payment; up to {SETTLE_SECS:.0f}s)")
    settle(scenarios, expected_stock, expected_balance)

    if not FAILURES:
        demo_console.leave_for_the_console(sys.modules[__name__], run)

    print()
    if FAILURES:
        print(f"{len(FAILURES)} expectation(s) failed:", file=sys.stderr)
        for f in FAILURES:
            print(f"  - expected: {f}", file=sys.stderr)
        return 1
    print("All expectations held: confirmed orders were charged once and their stock committed; "
          "cancelled ones released their stock and holds; tenants are isolated"
          + ("; the console step left what it says above." if demo_console.LEFT else "."))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Unreachable as e:
        print(f"error: lost the platform mid-demo: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
