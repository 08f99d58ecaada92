#!/usr/bin/env python3
"""The mixed-replica rollout of docs/changing-a-saga.md ("Worked example"), with real processes.

Run by scripts/tests/test_saga_extension.sh once `scripts/up.sh` has started shipping, inventory,
payment and the OLD order build (v1 only) with mTLS, and the NEW order build (v1 and v2) is at
--new-order. It starts and stops processes it can name by pid only: the old order, payment and
shipping of that platform (restarted with their own environment, read from /proc) and the new
order replicas it starts itself.

  1. payment down: v1 sagas placed on the old replica stop at AuthorizePayment, retrying;
  2. two new replicas start with SAGA_START_VERSION=1, the old one stops, payment comes back: every
     v1 saga (and one started on a new replica meanwhile) finishes on v1, without shipping;
  3. the new replicas restart without SAGA_START_VERSION: new orders run v2 (ReserveShipping, a
     RESERVED shipping row); an order over shipping's capacity is refused by the new step (hold
     voided, stock released); with shipping down past the deadline a v2 saga compensates the
     shipping step too (its Cancel becomes a tombstone when shipping is back);
  4. every invariant of ARCHITECTURE.md section 8 holds (check-invariants, libs/testkit).

Prints `ok   ...` / `FAIL ...` lines and `N passed, M failed`; exits 1 on any failure.
Usage: saga_rollout.py --state-dir DIR --new-order BIN --check-invariants BIN --pg-url URL
       --db-suffix S --http-port SVC=PORT...     Python 3.9+, standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

TENANT = "rollout"
PASSED = FAILED = 0


def check(what: str, ok: bool, detail: object = "") -> bool:
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"ok   {what}", flush=True)
    else:
        FAILED += 1
        print(f"FAIL {what}" + (f"\n     {detail}" if detail != "" else ""), flush=True)
    return ok


def call(method: str, url: str, body: object | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"X-Tenant-Id": TENANT, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def wait_for(what: str, probe, within: float = 60.0):
    """Polls `probe` until it returns a truthy value; None after `within` seconds."""
    end = time.monotonic() + within
    while True:
        try:
            value = probe()
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            value = None
        if value or time.monotonic() > end:
            return value
        time.sleep(0.25)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A service process: started here, or adopted by pid from the platform (env read from /proc)."""

    def __init__(self, name: str, exe: str, env: dict[str, str], log: Path, pid: int | None = None):
        self.name, self.exe, self.env, self.log, self.pid = name, exe, env, log, pid
        self.popen: subprocess.Popen | None = None

    @staticmethod
    def adopt(name: str, state: Path) -> "Proc":
        pid = int((state / "run" / f"{name}.pid").read_text().split()[0])
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        env = dict(kv.decode().split("=", 1) for kv in raw if b"=" in kv)
        exe = os.readlink(f"/proc/{pid}/exe")
        return Proc(name, exe, env, state / "logs" / f"{name}.rollout.log", pid)

    def http(self) -> str:
        return "http://" + self.env["HTTP_ADDR"].replace("0.0.0.0", "127.0.0.1")

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.popen = subprocess.Popen([self.exe], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        self.pid = self.popen.pid

    def ready(self, within: float = 60.0) -> bool:
        return bool(wait_for(f"{self.name} ready", lambda: call("GET", self.http() + "/readyz")[0] == 200, within))

    def stop(self) -> bool:
        """SIGTERM and wait (the graceful shutdown releases the saga claims), SIGKILL after 30 s.
        True when the process is gone afterwards."""
        if self.pid is None:
            return True
        pid = self.pid
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            self.pid = None
            return True
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.popen is not None:
                if self.popen.poll() is not None:
                    break
            elif not Path(f"/proc/{self.pid}").exists() or _zombie(self.pid):
                break
            time.sleep(0.1)
        else:
            os.kill(self.pid, signal.SIGKILL)
            time.sleep(0.5)
        self.pid = None
        if self.popen is not None:
            return self.popen.poll() is not None
        return not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def psql(url: str, sql: str) -> list[list[str]]:
    out = subprocess.run(["psql", url, "-XAtqc", sql, "-F", "|"], capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines() if line]


class Rollout:
    def __init__(self, o: argparse.Namespace):
        self.o = o
        self.state = Path(o.state_dir)
        self.ports = dict(p.split("=", 1) for p in o.http_port)
        self.base = {svc: f"http://127.0.0.1:{port}" for svc, port in self.ports.items()}
        self.new: list[Proc] = []
        self.adopted: dict[str, Proc] = {}

    def db(self, name: str) -> str:
        root = self.o.pg_url.rsplit("/", 1)[0]
        return f"{root}/{name}{self.o.db_suffix}"

    def order(self, via: str, lines: list[tuple[str, int]], customer: str = "c-1") -> str | None:
        body = {"customer_id": customer, "currency": "USD",
                "items": [{"sku": s, "quantity": q} for s, q in lines]}
        status, order = call("POST", via + "/v1/orders", body)
        check(f"POST /v1/orders via {via} answers 202", status == 202, order)
        return order.get("id")

    def view(self, order_id: str) -> dict:
        return call("GET", f"{self.order_base()}/v1/orders/{order_id}")[1]

    def order_base(self) -> str:
        return self.new[0].http() if self.new else self.base["order"]

    def terminal(self, order_id: str, within: float = 90.0) -> dict:
        return wait_for("terminal", lambda: (v := self.view(order_id))["status"] != "PENDING" and v, within) or {}

    def payments(self, order_id: str) -> list[str]:
        return [p["status"] for p in call("GET", f"{self.base['payment']}/v1/payments?order_id={order_id}")[1]["items"]]

    def shipping_rows(self, order_id: str) -> list[str]:
        return [r[0] for r in psql(self.db("shipping"), f"SELECT status FROM reservations WHERE order_id = '{order_id}'")]

    def start_new_replicas(self, extra: dict[str, str]) -> None:
        template = self.adopted["order"]
        for i in range(2):
            env = dict(template.env)
            env.pop("SAGA_START_VERSION", None)
            env.update(extra)
            env["HTTP_ADDR"] = f"127.0.0.1:{free_port()}"
            env["GRPC_ADDR"] = f"127.0.0.1:{free_port()}"
            p = Proc(f"order-new-{i}", self.o.new_order, env, self.state / "logs" / f"order-new-{i}.log")
            p.start()
            self.new.append(p)
        for p in self.new:
            check(f"{p.name} (the new build) is ready at {p.http()} with {extra or 'no SAGA_START_VERSION'}", p.ready(),
                  _tail(p.log))

    def stop_new_replicas(self) -> None:
        for p in self.new:
            p.stop()
        self.new = []

    # --- the phases ---------------------------------------------------------------------------

    def seed(self) -> None:
        for sku in ("SKU-1", "SKU-2"):
            status, _ = call("PUT", f"{self.base['inventory']}/v1/products/{sku}",
                             {"name": sku, "price_cents": 100, "currency": "USD", "on_hand": 10000})
            check(f"seeded {sku}", status == 200)
        status, _ = call("PUT", f"{self.base['payment']}/v1/accounts/c-1", {"balance_cents": 10_000_000, "currency": "USD"})
        check("seeded customer c-1", status == 200)
        for name in ("order", "payment", "shipping"):
            self.adopted[name] = Proc.adopt(name, self.state)

    def old_sagas_in_the_middle(self) -> list[str]:
        self.adopted["payment"].stop()
        ids = [self.order(self.base["order"], [("SKU-1", 2)]) for _ in range(3)]

        def waiting() -> bool:
            for order_id in ids:
                v = self.view(order_id)
                steps = {s["name"]: s for s in v["saga"]["steps"]}
                if not (v["status"] == "PENDING" and steps["ReserveStock"]["status"] == "SUCCEEDED"
                        and steps["AuthorizePayment"]["attempts"] >= 1):
                    return False
            return True
        check("with payment down, the old replica's v1 sagas wait at AuthorizePayment (stock reserved)",
              wait_for("waiting", waiting, 60), [self.view(i) for i in ids])
        return ids

    def hand_over(self, old_ids: list[str]) -> None:
        self.start_new_replicas({"SAGA_START_VERSION": "1"})
        check("the old replica stopped", self.adopted["order"].stop(), _tail(self.adopted["order"].log))
        held = self.order(self.new[1].http(), [("SKU-2", 1)])
        self.adopted["payment"].start()
        check("payment is back", self.adopted["payment"].ready(), _tail(self.adopted["payment"].log))
        for order_id in [*old_ids, held]:
            v = self.terminal(order_id)
            names = [s["name"] for s in v.get("saga", {}).get("steps", [])]
            check(f"v1 saga {order_id} finished on v1 on the new replicas: CONFIRMED, no shipping step",
                  v.get("status") == "CONFIRMED" and v["saga"].get("version") == 1 and "ReserveShipping" not in names, v)
            check(f"  and shipping has no record of {order_id}", self.shipping_rows(order_id) == [])

    def v2(self) -> None:
        # the second roll: SAGA_START_VERSION removed; a short deadline for the timeout case below
        self.stop_new_replicas()
        self.start_new_replicas({"SAGA_DEADLINE_SECS": "6"})
        confirmed = [self.order(self.new[i % 2].http(), [("SKU-1", 3), ("SKU-2", 1)]) for i in range(2)]
        for order_id in confirmed:
            v = self.terminal(order_id)
            names = [s["name"] for s in v.get("saga", {}).get("steps", [])]
            check(f"new order {order_id} ran v2: CONFIRMED with ReserveShipping before ConfirmOrder",
                  v.get("status") == "CONFIRMED" and v["saga"].get("version") == 2
                  and names == ["ReserveStock", "AuthorizePayment", "ReserveShipping", "ConfirmOrder"], v)
            check(f"  shipping reserved it: {self.shipping_rows(order_id)}", self.shipping_rows(order_id) == ["RESERVED"])
        # over shipping's capacity (RESERVATION_MAX_UNITS, default 1000): refused by the new step
        refused = self.order(self.new[0].http(), [("SKU-1", 600), ("SKU-2", 600)])
        v = self.terminal(refused)
        steps = {s["name"]: s["status"] for s in v.get("saga", {}).get("steps", [])}
        check(f"v2 order {refused} refused by ReserveShipping: CANCELLED insufficient_stock, payment and stock compensated",
              v.get("status") == "CANCELLED" and v.get("failure_reason") == "insufficient_stock"
              and steps == {"ReserveStock": "COMPENSATED", "AuthorizePayment": "COMPENSATED",
                            "ReserveShipping": "FAILED", "ConfirmOrder": "PENDING"}, v)
        check(f"  its hold is VOIDED: {self.payments(refused)}", self.payments(refused) == ["VOIDED"])
        check("  shipping recorded nothing for it", self.shipping_rows(refused) == [])
        # shipping down past the deadline: the in-flight step is compensated too
        self.adopted["shipping"].stop()
        late = self.order(self.new[1].http(), [("SKU-2", 2)])
        check(f"v2 order {late} with shipping down: past its deadline (6 s) it compensates, its Cancel waiting for shipping",
              wait_for("deadline", lambda: self.view(late)["saga"]["status"] == "COMPENSATING", 30), self.view(late))
        self.adopted["shipping"].start()
        check("shipping is back", self.adopted["shipping"].ready(), _tail(self.adopted["shipping"].log))
        v = self.terminal(late)
        check(f"v2 order {late} with shipping down past the deadline: CANCELLED timeout",
              v.get("status") == "CANCELLED" and v.get("failure_reason") == "timeout" and v["saga"].get("version") == 2, v)
        check(f"  shipping's compensation ran (a tombstone): {self.shipping_rows(late)}",
              self.shipping_rows(late) == ["TOMBSTONE"])
        check(f"  its hold is VOIDED: {self.payments(late)}", self.payments(late) == ["VOIDED"])

    def invariants(self) -> None:
        args = [self.o.check_invariants, "--orders", self.db("orders"), "--inventory", self.db("inventory"),
                "--payments", self.db("payments"), "--tenant", TENANT, "--within", "60",
                "--stock", f"{TENANT}/SKU-1=10000", "--stock", f"{TENANT}/SKU-2=10000",
                "--balance", f"{TENANT}/c-1=10000000"]
        proc = subprocess.run(args, capture_output=True, text=True)
        check(f"every invariant of ARCHITECTURE.md section 8 holds ({proc.stdout.strip()})",
              proc.returncode == 0, proc.stdout + proc.stderr)


def _tail(path: Path) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-15:])
    except OSError:
        return ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--new-order", required=True)
    ap.add_argument("--check-invariants", required=True)
    ap.add_argument("--pg-url", required=True)
    ap.add_argument("--db-suffix", default="")
    ap.add_argument("--http-port", action="append", default=[], help="SVC=PORT of the running platform")
    r = Rollout(ap.parse_args())
    try:
        r.seed()
        old = r.old_sagas_in_the_middle()
        r.hand_over(old)
        r.v2()
        r.invariants()
    except Exception as e:  # report, then clean up what this script started
        check(f"the rollout ran to the end ({type(e).__name__}: {e})", False)
    finally:
        r.stop_new_replicas()
        for name in ("payment", "shipping"):
            p = r.adopted.get(name)
            if p is not None and p.popen is not None:
                p.stop()
    print(f"{PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
