#!/usr/bin/env python3
"""An in-memory imitation of the Longship HTTP contract (ARCHITECTURE.md section 5),
just enough to test scripts/demo.py without the real services. Not a reference
implementation: no persistence, no gRPC, no NATS.

Usage: fake_platform.py PORT_OFFSET   (serves 8080/8081/8082 + offset on 127.0.0.1)
FAKE_BUG (testing the demo's own checks): leak_tenants | never_decline | no_idempotency |
  never_stuck | no_dead_letter
FAKE_STATE_DIR: stand in for a platform `just up` started there: a `sleep` process plays
  payment (its pid files in FAKE_STATE_DIR/run); once it is stopped, payment's port closes and
  sagas stay stuck at AuthorizePayment. The admin API lists stuck sagas and dead letters (any
  Bearer token); POST /__fake/ledger {"sku", "closed"} on inventory (what scripts/tests/fake_bin/psql
  sends) makes the stock commit of that sku a dead letter.
"""

import itertools
import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse
import os
import subprocess

BUG = os.environ.get("FAKE_BUG", "")
LOCK = threading.Lock()
products = {}  # (tenant, sku) -> dict
accounts = {}  # (tenant, customer) -> dict
orders = {}  # id -> dict (with "tenant")
payments = {}  # id -> dict (with "tenant")
idem = {}  # (tenant, key) -> (body, order id)
seq = itertools.count()
PAYMENT_DOWN = threading.Event()
closed_ledgers = set()  # skus whose stock commit fails
dead_letters = []


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def public(o):
    return {k: v for k, v in o.items() if k != "tenant" and not k.startswith("_")}


def set_step(o, name, status):
    for s in o["saga"]["steps"]:
        if s["name"] == name:
            s["status"] = status
            return
    o["saga"]["steps"].append({"name": name, "status": status, "attempts": 1})


def cancel(o, reason):
    o["status"], o["failure_reason"], o["updated_at"] = "CANCELLED", reason, now()
    o["saga"]["status"] = "COMPENSATED"


def saga(oid):
    time.sleep(0.1)
    with LOCK:
        o = orders[oid]
        t = o["tenant"]
        lines = [(i["sku"], i["quantity"]) for i in o["items"]]
        for sku, q in lines:
            p = products.get((t, sku))
            if p is None:
                set_step(o, "ReserveStock", "FAILED")
                return cancel(o, "unknown_sku")
            if p["on_hand"] - p["reserved"] < q:
                set_step(o, "ReserveStock", "FAILED")
                return cancel(o, "insufficient_stock")
        for sku, q in lines:
            products[(t, sku)]["reserved"] += q
        for i in o["items"]:
            i["unit_price_cents"] = products[(t, i["sku"])]["price_cents"]
        o["total_cents"] = sum(i["unit_price_cents"] * i["quantity"] for i in o["items"])
        set_step(o, "ReserveStock", "SUCCEEDED")
    time.sleep(0.1)
    with LOCK:
        if PAYMENT_DOWN.is_set():
            o["saga"]["steps"].append({"name": "AuthorizePayment", "status": "RUNNING", "attempts": 5})
            o["_last_error"] = "payment: unavailable (connection refused)"
            o["_stuck"] = BUG != "never_stuck"
            return None
        a = accounts.get((t, o["customer_id"]))
        pid = str(uuid.uuid4())
        pay = {"id": pid, "order_id": oid, "customer_id": o["customer_id"], "amount_cents": o["total_cents"],
               "currency": "USD", "status": "DECLINED", "tenant": t}
        payments[pid] = pay
        if a is None or (a["balance_cents"] - a["held_cents"] < o["total_cents"] and BUG != "never_decline"):
            set_step(o, "AuthorizePayment", "FAILED")
            set_step(o, "ReserveStock", "COMPENSATED")
            for sku, q in lines:
                products[(t, sku)]["reserved"] -= q
            return cancel(o, "payment_declined")
        pay["status"] = "AUTHORIZED"
        a["held_cents"] += o["total_cents"]
        set_step(o, "AuthorizePayment", "SUCCEEDED")
        set_step(o, "ConfirmOrder", "SUCCEEDED")
        o["status"], o["updated_at"] = "CONFIRMED", now()
        o["saga"]["status"] = "COMPLETED"
    time.sleep(0.3)  # the order_confirmed event reaches inventory and payment
    with LOCK:
        closed = [sku for sku, _ in lines if sku in closed_ledgers]
        if closed and BUG != "no_dead_letter":
            dead_letters.append({"id": str(uuid.uuid4()), "consumer": "inventory-order-confirmed",
                                 "event_type": "orders.v1.order_confirmed", "tenant_id": t, "deliveries": 5,
                                 "error": f"the stock ledger of {closed[0]} is closed for stocktaking",
                                 "payload": {"type": "orders.v1.order_confirmed", "data": {"order_id": oid}}})
        for sku, q in lines:
            if closed:
                break
            products[(t, sku)]["reserved"] -= q
            products[(t, sku)]["on_hand"] -= q
        a["held_cents"] -= o["total_cents"]
        a["balance_cents"] -= o["total_cents"]
        pay["status"] = "CAPTURED"


class Handler(BaseHTTPRequestHandler):
    service = ""

    def log_message(self, *a):
        pass

    def send(self, code, body=None, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json" if code < 400 else "application/problem+json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def tenant(self):
        t = self.headers.get("X-Tenant-Id")
        if not t:
            self.send(401, {"code": "unauthenticated"})
            return None
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", t):
            self.send(400, {"code": "invalid_tenant"})
            return None
        return t

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"null")

    def admin_get(self, u):
        if not (self.headers.get("Authorization") or "").startswith("Bearer "):
            return self.send(401, {"code": "unauthenticated"})
        with LOCK:
            if self.service == "order" and u.path == "/admin/v1/sagas":
                items = [{"id": o["id"], "tenant_id": o["tenant"], "status": "RUNNING",
                          "current_step": "AuthorizePayment", "attempts": 5, "last_error": o.get("_last_error")}
                         for o in orders.values() if o.get("_stuck")]
                return self.send(200, {"items": items, "next_cursor": None})
            if self.service == "inventory" and u.path == "/admin/v1/dead-letters":
                return self.send(200, {"items": list(dead_letters), "next_cursor": None})
        return self.send(404, {"code": "not_found"})

    def do_GET(self):
        u = urlparse(self.path)
        if u.path in ("/healthz", "/readyz"):
            return self.send(200, {"status": "ok"})
        if u.path.startswith("/admin/"):
            return self.admin_get(u)
        t = self.tenant()
        if t is None:
            return
        parts = u.path.strip("/").split("/")
        with LOCK:
            if self.service == "order" and parts[:2] == ["v1", "orders"] and len(parts) == 3:
                o = orders.get(parts[2])
                if o and (o["tenant"] == t or BUG == "leak_tenants"):
                    return self.send(200, public(o))
                return self.send(404, {"code": "not_found"})
            if self.service == "inventory" and parts[:2] == ["v1", "products"] and len(parts) == 3:
                p = products.get((t, parts[2]))
                if p:
                    return self.send(200, dict(p, available=p["on_hand"] - p["reserved"]))
                return self.send(404, {"code": "not_found"})
            if self.service == "payment" and parts[:2] == ["v1", "accounts"] and len(parts) == 3:
                a = accounts.get((t, parts[2]))
                if a:
                    return self.send(200, dict(a, available_cents=a["balance_cents"] - a["held_cents"]))
                return self.send(404, {"code": "not_found"})
            if self.service == "payment" and u.path == "/v1/payments":
                oid = parse_qs(u.query).get("order_id", [""])[0]
                items = [public(p) for p in payments.values() if p["order_id"] == oid and p["tenant"] == t]
                return self.send(200, {"items": items})
        self.send(404, {"code": "not_found"})

    def do_PUT(self):
        t = self.tenant()
        if t is None:
            return
        parts = self.path.strip("/").split("/")
        b = self.body()
        with LOCK:
            if self.service == "inventory" and parts[:2] == ["v1", "products"]:
                p = products.setdefault((t, parts[2]), {"sku": parts[2], "reserved": 0})
                p.update(name=b["name"], price_cents=b["price_cents"], currency=b["currency"], on_hand=b["on_hand"])
                return self.send(200, dict(p, available=p["on_hand"] - p["reserved"]))
            if self.service == "payment" and parts[:2] == ["v1", "accounts"]:
                a = accounts.setdefault((t, parts[2]), {"customer_id": parts[2], "held_cents": 0})
                a.update(balance_cents=b["balance_cents"], currency=b["currency"])
                return self.send(200, dict(a, available_cents=a["balance_cents"] - a["held_cents"]))
        self.send(404, {"code": "not_found"})

    def do_POST(self):
        if self.service == "inventory" and self.path == "/__fake/ledger":
            b = self.body()
            with LOCK:
                if b.get("closed"):
                    closed_ledgers.add(b["sku"])
                else:
                    closed_ledgers.clear()
            return self.send(200, {})
        t = self.tenant()
        if t is None:
            return
        if self.service != "order" or self.path != "/v1/orders":
            return self.send(404, {"code": "not_found"})
        b = self.body()
        key = self.headers.get("Idempotency-Key")
        with LOCK:
            if key and BUG != "no_idempotency" and (t, key) in idem:
                prev_body, oid = idem[(t, key)]
                if prev_body != b:
                    return self.send(422, {"code": "idempotency_key_reused"})
                return self.send(202, public(orders[oid]), {"Location": f"/v1/orders/{oid}"})
            oid = f"0193{next(seq):04d}-0000-7000-8000-{uuid.uuid4().hex[:12]}"
            o = {"id": oid, "tenant": t, "customer_id": b["customer_id"], "status": "PENDING",
                 "currency": b["currency"], "total_cents": 0,
                 "items": [{"sku": i["sku"], "quantity": i["quantity"], "unit_price_cents": None} for i in b["items"]],
                 "failure_reason": None, "created_at": now(), "updated_at": now(),
                 "saga": {"status": "RUNNING", "steps": []}}
            orders[oid] = o
            if key:
                idem[(t, key)] = (b, oid)
            reply = public(json.loads(json.dumps(o)))
        threading.Thread(target=saga, args=(oid,), daemon=True).start()
        self.send(202, reply, {"Location": f"/v1/orders/{oid}"})


def play_payment_process(state_dir, server):
    """A `sleep` stands in for payment's process, recorded as `just up` records it; when it is
    stopped, payment's port closes and its calls fail."""
    child = subprocess.Popen(["sleep", "600"])
    run = os.path.join(state_dir, "run")
    os.makedirs(run, exist_ok=True)
    with open(f"/proc/{child.pid}/stat") as f:
        ticks = f.read().rsplit(") ", 1)[1].split()[19]
    for name, text in (("payment.pid", child.pid), ("payment.started", f"ticks:{ticks}"),
                       ("payment.http", f"http://127.0.0.1:{server.server_address[1]}")):
        with open(os.path.join(run, name), "w") as f:
            f.write(f"{text}\n")

    def watch():
        child.wait()
        PAYMENT_DOWN.set()
        server.shutdown()
        server.server_close()

    threading.Thread(target=watch, daemon=True).start()


def main():
    offset = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    servers = {}
    for service, port in (("order", 8080), ("inventory", 8081), ("payment", 8082)):
        handler = type(f"{service}Handler", (Handler,), {"service": service})
        servers[service] = ThreadingHTTPServer(("127.0.0.1", port + offset), handler)
        threading.Thread(target=servers[service].serve_forever, daemon=True).start()
    if os.environ.get("FAKE_STATE_DIR"):
        play_payment_process(os.environ["FAKE_STATE_DIR"], servers["payment"])
    print("fake platform ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
