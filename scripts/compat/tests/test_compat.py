#!/usr/bin/env python3
"""Fixture tests of scripts/compat: every kind of break each check reports (named in its message),
and compatible changes it lets through. Prints `ok`/`FAIL` lines and `N passed, M failed`.

Usage: test_compat.py [--buf PATH] [--squawk PATH]   (without them, the proto and squawk cases
use target/buf and the squawk on PATH, and fail saying so when those are missing)
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(HERE.parent))

import events  # noqa: E402
import migrations  # noqa: E402
import openapi  # noqa: E402

RESULTS = {"passed": 0, "failed": 0}


def expect(name: str, breaks: list[str], *wanted: str) -> None:
    """`breaks` has one entry containing each of `wanted` (none wanted: `breaks` is empty)."""
    missing = [w for w in wanted if not any(w in b for b in breaks)]
    ok = not missing if wanted else not breaks
    RESULTS["passed" if ok else "failed"] += 1
    print(f"{'ok   ' if ok else 'FAIL '} {name}")
    if not ok:
        print(f"      | wanted: {missing or 'no breaks'}\n      | got: {breaks}")


# ---- events -------------------------------------------------------------------------------------

EVENT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "OrderConfirmed",
    "type": "object",
    "x-event-type": "orders.v1.order_confirmed",
    "x-schema-version": 1,
    "properties": {
        "order_id": {"type": "string", "format": "uuid"},
        "customer_id": {"type": "string"},
        "total_cents": {"type": "integer", "format": "int64"},
        "confirmed_at": {"type": "string", "format": "date-time"},
        "note": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["confirmed", "held"]},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Line"}},
    },
    "required": ["order_id", "customer_id", "total_cents", "confirmed_at", "status", "items"],
    "$defs": {
        "Line": {
            "type": "object",
            "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer", "format": "int64"}},
            "required": ["sku", "quantity"],
        }
    },
}


def event_breaks(change, *, old=None) -> list[str]:
    old = copy.deepcopy(old or EVENT)
    new = copy.deepcopy(old)
    change(new)
    with tempfile.TemporaryDirectory() as tmp:
        base, cur = Path(tmp, "base"), Path(tmp, "cur")
        for d, schema in ((base, old), (cur, new)):
            if schema is not None:
                (d / "order").mkdir(parents=True)
                (d / "order" / "orders.v1.order_confirmed.json").write_text(json.dumps(schema))
        if new.get("_gone"):
            shutil.rmtree(cur / "order")
            cur.mkdir(exist_ok=True)
        return events.check(base, cur)


def test_events() -> None:
    props = lambda s: s["properties"]  # noqa: E731
    expect("event: unchanged schema is compatible", event_breaks(lambda s: None))
    expect("event: field removed", event_breaks(lambda s: (props(s).pop("note"))), "note: field removed")

    def rename(s):
        props(s)["client_id"] = props(s).pop("customer_id")
        s["required"] = [("client_id" if r == "customer_id" else r) for r in s["required"]]
    expect("event: field renamed", event_breaks(rename), "customer_id: field removed (renamed to client_id?)")
    expect("event: field retyped", event_breaks(lambda s: props(s)["total_cents"].update(type="string")),
           "total_cents: retyped from integer (int64) to string")
    expect("event: format changed", event_breaks(lambda s: props(s)["confirmed_at"].update(format="date")),
           "confirmed_at: format changed from date-time to date")
    expect("event: format removed", event_breaks(lambda s: props(s)["order_id"].pop("format")),
           "order_id: format uuid removed")
    expect("event: made nullable", event_breaks(lambda s: props(s)["customer_id"].update(type=["string", "null"])),
           "customer_id: made nullable")
    expect("event: optional made required", event_breaks(lambda s: s["required"].append("note")),
           "note: made required")
    expect("event: required made optional", event_breaks(lambda s: s["required"].remove("customer_id")),
           "customer_id: no longer always present")
    expect("event: enum value removed", event_breaks(lambda s: props(s)["status"].update(enum=["confirmed"])),
           'status: enum value "held" removed')
    expect("event: nested field retyped (in $defs)",
           event_breaks(lambda s: s["$defs"]["Line"]["properties"]["quantity"].update(type="number", format="double")),
           "items[].quantity: retyped")

    def new_required(s):
        props(s)["channel"] = {"type": "string"}
        s["required"].append("channel")
    expect("event: new required field without a higher version", event_breaks(new_required),
           "channel: new required field (x-schema-version still 1")

    def new_required_v2(s):
        new_required(s)
        s["x-schema-version"] = 2
    expect("event: new required field with a higher version is compatible", event_breaks(new_required_v2))
    expect("event: version lowered", event_breaks(lambda s: s.update({"x-schema-version": 0})),
           "x-schema-version lowered from 1 to 0")
    expect("event: type removed", event_breaks(lambda s: s.update(_gone=True)), "event type removed")
    expect("event: new optional field is compatible",
           event_breaks(lambda s: props(s).update(gift_note={"type": ["string", "null"]})))
    expect("event: description changes are compatible",
           event_breaks(lambda s: props(s)["customer_id"].update(description="who pays")))
    everything = event_breaks(lambda s: (props(s).pop("note"), props(s)["total_cents"].update(type="string"),
                                         props(s)["status"].update(enum=["held"])))
    expect("event: every break of one schema reported in one run", everything,
           "note: field removed", "total_cents: retyped", 'enum value "confirmed" removed')


# ---- OpenAPI ------------------------------------------------------------------------------------

DOC = {
    "openapi": "3.1.0",
    "paths": {
        "/v1/orders": {
            "post": {
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PlaceOrder"}}}},
                "responses": {
                    "201": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}},
                    "400": {"content": {"application/problem+json": {"schema": {"type": "object"}}}},
                },
            }
        },
        "/v1/orders/{id}": {
            "get": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}],
                "responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}}},
            },
            "delete": {"responses": {"204": {"description": "gone"}}},
        },
    },
    "components": {
        "schemas": {
            "PlaceOrder": {
                "type": "object",
                "properties": {"customer_id": {"type": "string"}, "currency": {"type": "string"},
                               "quantity": {"type": "integer", "format": "int32"}},
                "required": ["customer_id", "quantity"],
            },
            "Order": {
                "type": "object",
                "properties": {"id": {"type": "string", "format": "uuid"},
                               "status": {"type": "string", "enum": ["PENDING", "CONFIRMED", "CANCELLED"]},
                               "total_cents": {"type": ["integer", "null"], "format": "int64"}},
                "required": ["id", "status"],
            },
        }
    },
}


def api_breaks(change) -> list[str]:
    new = copy.deepcopy(DOC)
    change(new)
    return openapi.check_document(copy.deepcopy(DOC), new, "order")


def test_openapi() -> None:
    schemas = lambda d: d["components"]["schemas"]  # noqa: E731
    post = lambda d: d["paths"]["/v1/orders"]["post"]  # noqa: E731
    expect("openapi: unchanged document is compatible", api_breaks(lambda d: None))
    expect("openapi: path removed", api_breaks(lambda d: d["paths"].pop("/v1/orders")), "path /v1/orders removed")
    expect("openapi: operation removed", api_breaks(lambda d: d["paths"]["/v1/orders/{id}"].pop("delete")),
           "DELETE /v1/orders/{id}: operation removed")
    expect("openapi: response field removed", api_breaks(lambda d: schemas(d)["Order"]["properties"].pop("total_cents")),
           "GET /v1/orders/{id}: response 200.total_cents: field removed")
    expect("openapi: response field retyped", api_breaks(lambda d: schemas(d)["Order"]["properties"]["id"].update(type="integer")),
           "response 200.id: retyped from string (uuid) to integer")
    expect("openapi: request field removed", api_breaks(lambda d: schemas(d)["PlaceOrder"]["properties"].pop("currency")),
           "request.currency: field removed")
    expect("openapi: request field retyped", api_breaks(lambda d: schemas(d)["PlaceOrder"]["properties"]["quantity"].update(type="string", format=None)),
           "request.quantity: retyped")
    expect("openapi: enum value removed", api_breaks(lambda d: schemas(d)["Order"]["properties"]["status"].update(enum=["PENDING", "CONFIRMED"])),
           'status: enum value "CANCELLED" removed')
    expect("openapi: new required parameter",
           api_breaks(lambda d: post(d)["parameters"].append({"name": "region", "in": "query", "required": True, "schema": {"type": "string"}})),
           "POST /v1/orders: new required query parameter region")
    expect("openapi: optional parameter made required", api_breaks(lambda d: post(d)["parameters"][0].update(required=True)),
           "header parameter Idempotency-Key made required")

    def new_required_field(d):
        schemas(d)["PlaceOrder"]["properties"]["channel"] = {"type": "string"}
        schemas(d)["PlaceOrder"]["required"].append("channel")
    expect("openapi: new required request field", api_breaks(new_required_field), "request.channel: new required field")
    expect("openapi: optional request field made required", api_breaks(lambda d: schemas(d)["PlaceOrder"]["required"].append("currency")),
           "request.currency: made required")
    expect("openapi: success response removed", api_breaks(lambda d: post(d)["responses"].pop("201")), "success response 201 removed")
    expect("openapi: success media type removed",
           api_breaks(lambda d: post(d)["responses"]["201"].update(content={"application/xml": {"schema": {"type": "object"}}})),
           "response 201 media type application/json removed")
    expect("openapi: response value made nullable", api_breaks(lambda d: schemas(d)["Order"]["properties"]["status"].update(type=["string", "null"])),
           "status: made nullable")

    def compatible(d):
        post(d)["parameters"].append({"name": "dry_run", "in": "query", "required": False, "schema": {"type": "boolean"}})
        schemas(d)["Order"]["properties"]["created_at"] = {"type": "string", "format": "date-time"}
        schemas(d)["Order"]["required"].append("created_at")
        schemas(d)["PlaceOrder"]["properties"]["note"] = {"type": ["string", "null"]}
        d["paths"]["/v1/products"] = {"get": {"responses": {"200": {"description": "ok"}}}}
        post(d)["responses"]["409"] = {"description": "conflict"}
        post(d)["responses"].pop("400")
    expect("openapi: new optional input, new output field, new path, error responses changed: compatible", api_breaks(compatible))


# ---- migrations ---------------------------------------------------------------------------------

def migration_breaks(change) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "migrations" / "order").mkdir(parents=True)
        (root / "libs" / "messaging" / "migrations").mkdir(parents=True)
        (root / "migrations" / "order" / "0001_init.sql").write_text("CREATE TABLE orders (id uuid PRIMARY KEY);\n")
        (root / "migrations" / "order" / "0002_status.sql").write_text("ALTER TABLE orders ADD COLUMN status text;\n")
        (root / "libs" / "messaging" / "migrations" / "0001_outbox.sql").write_text("CREATE TABLE outbox (id uuid);\n")
        baseline = root / "migrations.json"
        baseline.write_text(json.dumps(migrations.checksums(root)))
        change(root)
        return migrations.check(baseline, root)


def test_migrations() -> None:
    order = lambda r: r / "migrations" / "order"  # noqa: E731
    expect("migration: unchanged is compatible", migration_breaks(lambda r: None))
    expect("migration: released migration edited",
           migration_breaks(lambda r: (order(r) / "0002_status.sql").write_text("ALTER TABLE orders ADD COLUMN state text;\n")),
           "migrations/order/0002_status.sql: released migration edited")
    expect("migration: released migration removed", migration_breaks(lambda r: (order(r) / "0002_status.sql").unlink()),
           "migrations/order/0002_status.sql: released migration removed")
    expect("migration: new one numbered below a released one",
           migration_breaks(lambda r: (order(r) / "0001_extra.sql").write_text("SELECT 1;\n")),
           "0001_extra.sql: new migration numbered 1, at or below the released 2")
    expect("migration: new one numbered at the released one (and sharing its version)",
           migration_breaks(lambda r: (order(r) / "0002_other.sql").write_text("SELECT 1;\n")),
           "new migration numbered 2, at or below the released 2", "version 2 shared by 0002_other.sql, 0002_status.sql")

    def two_new(r):
        (order(r) / "0003_a.sql").write_text("SELECT 1;\n")
        (order(r) / "0003_b.sql").write_text("SELECT 2;\n")
    expect("migration: two new ones sharing a version", migration_breaks(two_new), "migrations/order: version 3 shared by 0003_a.sql, 0003_b.sql")
    expect("migration: a library's released migration edited",
           migration_breaks(lambda r: (r / "libs/messaging/migrations/0001_outbox.sql").write_text("CREATE TABLE outbox (id bigint);\n")),
           "libs/messaging/migrations/0001_outbox.sql: released migration edited")

    def compatible(r):
        (order(r) / "0003_index.sql").write_text("SELECT 1;\n")
        (r / "libs/messaging/migrations/0002_more.sql").write_text("SELECT 1;\n")
        (r / "migrations" / "shipping").mkdir()
        (r / "migrations" / "shipping" / "0001_init.sql").write_text("SELECT 1;\n")
    expect("migration: new migrations above the released ones, a new directory: compatible", migration_breaks(compatible))


# ---- the whole check, buf and squawk ------------------------------------------------------------

def run(cmd: list[str], cwd: Path | None = None) -> tuple[int, str]:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=300)
    return done.returncode, done.stdout + done.stderr


def test_whole_check(buf: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "schemas/events/order").mkdir(parents=True)
        (root / "schemas/events/order/orders.v1.order_confirmed.json").write_text(json.dumps(EVENT))
        (root / "openapi").mkdir()
        (root / "openapi/order.json").write_text(json.dumps(DOC))
        (root / "proto/order/v1").mkdir(parents=True)
        proto = 'syntax = "proto3";\npackage longship.order.v1;\nmessage Order {\n  string id = 1;\n  int64 total_cents = 2;\n}\n'
        (root / "proto/order/v1/order.proto").write_text(proto)
        shutil.copy(ROOT / "buf.yaml", root / "buf.yaml")
        (root / "migrations/order").mkdir(parents=True)
        (root / "migrations/order/0001_init.sql").write_text("CREATE TABLE orders (id uuid PRIMARY KEY);\n")
        check = [sys.executable, str(HERE.parent / "check.py"), "--root", str(root), "--buf", buf]
        rc, out = run([sys.executable, str(HERE.parent / "baseline.py"), "--root", str(root)])
        expect("release-baseline records the tree" if rc == 0 else f"release-baseline failed: {out}",
               [] if rc == 0 else [out])
        rc, out = run(check)
        expect("check-compat: the tree against its own baseline is compatible", [] if rc == 0 else [out])
        broken = copy.deepcopy(EVENT)
        broken["properties"]["total_cents"]["type"] = "string"
        (root / "schemas/events/order/orders.v1.order_confirmed.json").write_text(json.dumps(broken))
        doc = copy.deepcopy(DOC)
        doc["components"]["schemas"]["Order"]["properties"].pop("status")
        (root / "openapi/order.json").write_text(json.dumps(doc))
        (root / "proto/order/v1/order.proto").write_text(proto.replace("  int64 total_cents = 2;\n", ""))
        (root / "migrations/order/0001_init.sql").write_text("CREATE TABLE orders (id bigint PRIMARY KEY);\n")
        rc, out = run(check)
        lines = [line for line in out.splitlines() if line.startswith("BREAK ")]
        expect("check-compat: exit status 1 on breaks", [] if rc == 1 else [f"exit {rc}: {out}"])
        expect("check-compat: every kind of break reported in one run", lines,
               "event orders.v1.order_confirmed: total_cents: retyped from integer (int64) to string",
               "openapi order: GET /v1/orders/{id}: response 200.status: field removed",
               'proto proto/order/v1/order.proto', 'field "2" with name "total_cents" on message "Order" was deleted',
               "migration migrations/order/0001_init.sql: released migration edited")
        rc, out = run([sys.executable, str(HERE.parent / "check.py"), "--root", str(root), "--baseline", str(root / "nothing")])
        expect("check-compat: a missing baseline is an error, not a pass", [] if rc == 2 and "release-baseline" in out else [f"exit {rc}: {out}"])


def test_squawk(squawk: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copy(ROOT / ".squawk.toml", root / ".squawk.toml")
        d = root / "migrations/order"
        d.mkdir(parents=True)
        (d / "0001_init.sql").write_text("CREATE TABLE orders (id uuid PRIMARY KEY, customer text, attempts int);\n"
                                         "ALTER TABLE orders ADD COLUMN note text;\n")
        (root / "release-baseline").mkdir()
        (root / "release-baseline/migrations.json").write_text(json.dumps(migrations.checksums(root)))
        lint = [sys.executable, str(HERE.parent / "lint_migrations.py"), "--root", str(root), "--squawk", squawk]
        rc, out = run(lint)
        expect("lint-migrations: a released migration is exempt from the timeout rules (and .squawk.toml still applies)", [] if rc == 0 else [out])
        (d / "0002_note.sql").write_text("ALTER TABLE orders ADD COLUMN status text;\n")
        rc, out = run(lint)
        expect("lint-migrations: a new migration without timeouts fails naming the rule", [out] if rc == 1 else [],
               "0002_note.sql", "require-lock-timeout", "require-statement-timeout")
        safe = "SET LOCAL lock_timeout = '2s';\nSET LOCAL statement_timeout = '60s';\n"
        (d / "0002_note.sql").write_text(safe + "ALTER TABLE orders ADD COLUMN status text;\n")
        rc, out = run(lint)
        expect("lint-migrations: a new migration with its timeouts passes", [] if rc == 0 else [out])
        (d / "0003_index.sql").write_text(safe + "CREATE INDEX orders_customer ON orders (customer);\n")
        rc, out = run(lint)
        expect("lint-migrations: a locking CREATE INDEX fails naming it", [out] if rc == 1 else [],
               "0003_index.sql", "require-concurrent-index-creation")
        (d / "0003_index.sql").write_text("-- no-transaction\nSET lock_timeout = '2s';\nSET statement_timeout = 0;\n"
                                          "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer ON orders (customer);\n")
        rc, out = run(lint)
        expect("lint-migrations: CREATE INDEX CONCURRENTLY in a no-transaction migration passes", [] if rc == 0 else [out])
        (d / "0004_drop.sql").write_text(safe + "ALTER TABLE orders DROP COLUMN note;\n")
        rc, out = run(lint)
        expect("lint-migrations: dropping a column fails naming it", [out] if rc == 1 else [], "0004_drop.sql", "ban-drop-column")
        (d / "0004_drop.sql").write_text(safe + "ALTER TABLE orders RENAME COLUMN note TO remark;\n")
        rc, out = run(lint)
        expect("lint-migrations: renaming a column fails naming it", [out] if rc == 1 else [], "0004_drop.sql", "renaming-column")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--buf", default=str(ROOT / "target/buf/node_modules/.bin/buf"))
    parser.add_argument("--squawk", default=shutil.which("squawk"))
    args = parser.parse_args()
    test_events()
    test_openapi()
    test_migrations()
    if Path(args.buf).exists():
        test_whole_check(args.buf)
    else:
        expect(f"buf is installed at {args.buf} (bash scripts/buf/run.sh --version installs it)", ["missing"])
    if args.squawk:
        test_squawk(args.squawk)
    else:
        expect("squawk is installed (python3 -m pip install -r scripts/squawk/requirements.txt)", ["missing"])
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
