"""The last step of `just demo` (scripts/demo.py): leaves one dead letter and one stuck saga for
the visitor to fix in the operations console, and prints the console's URL with a development
operator token and what to do.

- The dead letter: a database trigger (as a bad migration would) closes the stock ledger of one
  new product, an order for it is confirmed, and inventory's `order_confirmed` consumer cannot
  commit its stock: after 5 deliveries the event is a dead letter of `inventory-order-confirmed`.
  The fix is dropping the trigger (the command is printed); a redrive then commits the stock once.
- The stuck saga: payment is stopped (`scripts/down.sh payment`, as `just down payment`), an order
  is placed, and its saga keeps failing to reach payment until the admin API lists it with
  `stuck=true`. The fix is starting payment again (`just up` starts what is missing); a retry
  then finishes the order.

It needs a platform that `just up` started on this machine (the payment pid file in its state
directory) and `psql`; elsewhere (Kubernetes, Docker) it says so and leaves nothing.
Environment: LONGSHIP_STATE_DIR, LONGSHIP_PG_URL, LONGSHIP_DB_SUFFIX (as for `just up`),
DEMO_CONSOLE=off to leave nothing, DEMO_CONSOLE_WAIT_SECS (default 60) how long each may take.
"""

import json
import os
import shlex
import shutil
import subprocess
import time
import urllib.parse

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(SCRIPTS)
CONSUMER = "inventory-order-confirmed"
WAIT_SECS = float(os.environ.get("DEMO_CONSOLE_WAIT_SECS", "60"))
LEFT = []  # what the step left (for the demo's last line)


def _state_dir(offset):
    default = os.path.join(ROOT, ".longship-%d" % offset if offset else ".longship")
    return os.path.abspath(os.environ.get("LONGSHIP_STATE_DIR") or default)


def _inventory_db_url(offset):
    admin = os.environ.get("LONGSHIP_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    suffix = os.environ.get("LONGSHIP_DB_SUFFIX", "_%d" % offset if offset else "")
    parts = urllib.parse.urlsplit(admin)
    return urllib.parse.urlunsplit(parts._replace(path="/inventory" + suffix))


def _same_copy(offset, command):
    """`command` with what selects this copy of the platform, as `just up` prints it."""
    prefix = []
    if offset:
        prefix.append("LONGSHIP_PORT_OFFSET=%d" % offset)
    if os.environ.get("LONGSHIP_STATE_DIR"):
        prefix.append("LONGSHIP_STATE_DIR=" + shlex.quote(os.environ["LONGSHIP_STATE_DIR"]))
    return " ".join(prefix + [command])


def _payment_pid(state_dir):
    try:
        with open(os.path.join(state_dir, "run", "payment.pid")) as f:
            pid = int(f.read().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(") ", 1)[1].startswith("Z"):
                return None  # exited, not yet reaped
    except (OSError, IndexError):
        pass
    return pid


def _why_not(state_dir):
    if os.environ.get("DEMO_CONSOLE", "on") == "off":
        return "DEMO_CONSOLE=off"
    if _payment_pid(state_dir) is None:
        return ("no payment process started by `just up` in %s (the step stops payment and changes "
                "a database, so it runs only against a platform `just up` started here)" % state_dir)
    if shutil.which("psql") is None:
        return "psql (the Postgres client) is not installed: apt-get install postgresql-client"
    return None


def _operator_token():
    env = dict(os.environ, TOKEN_SUB="operator")
    env.setdefault("AUTH_JWT_SECRET", "longship-dev-secret-change-me")
    out = subprocess.run(["python3", os.path.join(SCRIPTS, "token.py"), "--operator"],
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _until(check):
    deadline = time.monotonic() + WAIT_SECS
    while True:
        found = check()
        if found is not None or time.monotonic() >= deadline:
            return found
        time.sleep(0.5)


def _place_and_wait(d, customer, sku, want_final):
    body = {"customer_id": customer, "currency": "USD", "items": [{"sku": sku, "quantity": 1}]}
    r = d.call("POST", f"{d.ORDER}/v1/orders", d.TENANT_A, body)
    if r.status != 202 or not isinstance(r.json, dict):
        d.expect(False, f"console step: POST /v1/orders for {sku} should answer 202", r.brief())
        return None
    order_id = r.json["id"]
    if not want_final:
        return order_id

    def final():
        o = d.call("GET", f"{d.ORDER}/v1/orders/{order_id}", d.TENANT_A).json or {}
        return o if o.get("status") in ("CONFIRMED", "CANCELLED") else None

    o = _until(final)
    d.expect(o is not None and o.get("status") == "CONFIRMED",
             f"console step: order {order_id} for {sku} should be CONFIRMED within {WAIT_SECS:.0f}s",
             (o or {}).get("status", "still PENDING"))
    return order_id


def leave_dead_letter(d, run, token, offset):
    sku, customer, name = f"LEDGER-{run}", f"carol-{run}", f"demo_ledger_closed_{run}"
    d.call("PUT", f"{d.INVENTORY}/v1/products/{sku}", d.TENANT_A,
           {"name": "Ledger (its stock ledger is closed)", "price_cents": 700, "currency": "USD", "on_hand": 5})
    d.call("PUT", f"{d.PAYMENT}/v1/accounts/{customer}", d.TENANT_A, {"balance_cents": 100_000, "currency": "USD"})
    db = _inventory_db_url(offset)
    close = (f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             f"RAISE EXCEPTION 'the stock ledger of % is closed for stocktaking', OLD.sku; END $$; "
             f"CREATE TRIGGER {name} BEFORE UPDATE OF on_hand ON products FOR EACH ROW "
             f"WHEN (OLD.sku = '{sku}') EXECUTE FUNCTION {name}()")
    fix = f"psql {shlex.quote(db)} -c {shlex.quote(f'DROP TRIGGER {name} ON products; DROP FUNCTION {name}()')}"
    done = subprocess.run(["psql", db, "-XqAt", "-v", "ON_ERROR_STOP=1", "-c", close],
                          capture_output=True, text=True)
    if not d.expect(done.returncode == 0, f"console step: psql should install the trigger in {db}",
                    (done.stderr or done.stdout).strip()[:300]):
        return None
    order_id = _place_and_wait(d, customer, sku, want_final=True)
    if order_id is None:
        return None

    def letter():
        r = d.call("GET", f"{d.INVENTORY}/admin/v1/dead-letters?consumer={CONSUMER}&limit=100", None, None,
                   {"Authorization": f"Bearer {token}"})
        items = r.json.get("items") if isinstance(r.json, dict) else None
        for item in items or []:
            if order_id in json.dumps(item.get("payload")):
                return item
        return None

    item = _until(letter)
    d.expect(item is not None, f"console step: a dead letter of {CONSUMER} for order {order_id} should be "
                               f"listed by GET /admin/v1/dead-letters within {WAIT_SECS:.0f}s", "none")
    if item is None:
        return None
    return {"id": item.get("id"), "order": order_id, "sku": sku, "error": item.get("error"),
            "deliveries": item.get("deliveries"), "fix": fix}


def leave_stuck_saga(d, run, token, offset, state_dir):
    stopped = subprocess.run(["bash", os.path.join(SCRIPTS, "down.sh"), "payment"],
                             capture_output=True, text=True)
    if not d.expect(stopped.returncode == 0 and _payment_pid(state_dir) is None,
                    "console step: scripts/down.sh payment should stop payment",
                    (stopped.stdout + stopped.stderr).strip()[:300]):
        return None
    said = [l for l in stopped.stdout.splitlines() if l.strip()]
    print(f"  stopped payment with scripts/down.sh payment: {said[-1] if said else 'done'}")
    order_id = _place_and_wait(d, f"alice-{run}", f"WIDGET-{run}", want_final=False)
    if order_id is None:
        return None

    def stuck():
        r = d.call("GET", f"{d.ORDER}/admin/v1/sagas?stuck=true&tenant={d.TENANT_A}&limit=100", None, None,
                   {"Authorization": f"Bearer {token}"})
        items = (r.json or {}).get("items") if isinstance(r.json, dict) else None
        return next((s for s in items or [] if s.get("id") == order_id and s.get("last_error")), None)

    saga = _until(stuck)
    d.expect(saga is not None, f"console step: the saga of order {order_id} should be listed by "
                               f"GET /admin/v1/sagas?stuck=true with its last_error within {WAIT_SECS:.0f}s", "not listed")
    if saga is None:
        return None
    return {"id": order_id, "status": saga.get("status"), "step": saga.get("current_step"),
            "attempts": saga.get("attempts"), "error": saga.get("last_error"),
            "next": saga.get("next_attempt_at"), "fix": _same_copy(offset, "just up")}


def leave_for_the_console(d, run):
    """Step 6: a dead letter and a stuck saga to fix in the console. `d` is the demo module."""
    offset = d._offset()
    state_dir = _state_dir(offset)
    d.heading("6. Left for you to fix in the operations console: one dead letter and one stuck saga")
    why = _why_not(state_dir)
    if why:
        print(f"  Left nothing: {why}.")
        return
    token = _operator_token()
    letter = leave_dead_letter(d, run, token, offset)
    saga = leave_stuck_saga(d, run, token, offset, state_dir)
    rows = []
    if letter:
        rows.append(["dead letter", letter["id"], f"{CONSUMER} (inventory), order {d.short(letter['order'])}, "
                     f"{letter['deliveries']} deliveries", letter["error"]])
    if saga:
        rows.append(["stuck saga", saga["id"], f"{saga['status']} at {saga['step']}, {saga['attempts']} attempts "
                     "(payment is stopped)", saga["error"]])
    if rows:
        d.table(["what", "id", "where", "last error"], [[r[0], r[1], r[2], (r[3] or "")[:200]] for r in rows])
    if not (letter and saga):
        return
    LEFT.extend(["dead letter " + str(letter["id"]), "stuck saga " + saga["id"]])
    admin = _same_copy(offset, "just admin")
    print()
    print(f"  Operations console: {d.ORDER}/console#token={token}")
    print("    (a development operator token, valid 1 h; `just token --operator` prints a new one)")
    print(f"  1. The stuck saga: open it (Sagas, stuck only) and read its timeline; fix the cause with "
          f"`{saga['fix']}` (starts payment again), then Retry it (or `{admin} saga retry {saga['id']}`): the order finishes.")
    print("     Until then the engine keeps retrying it with backoff, at most SAGA_RETRY_MAX_MS apart (2 s by default, "
          f"next at {saga['next'] or '-'}), so once payment answers it may finish before your Retry.")
    print(f"  2. The dead letter (Dead letters, inventory): fix the cause with `{letter['fix']}`, then Redrive it "
          f"(or `{admin} dead-letters redrive {letter['id']} --service inventory`): its stock is committed once.")
