#!/usr/bin/env bash
# The real `just up` path without Docker: builds and starts the three real services beside any
# platform a developer runs (own ports, databases, NATS prefix and state directory), checks every
# /readyz, places one order through HTTP until it is CONFIRMED with its payment captured, runs
# `up` a second time (harmless), then tears everything down and checks nothing of ours is left.
# Needs the local Postgres (127.0.0.1:5432) and NATS (127.0.0.1:4222), and cargo.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=scripts/tests/lib.sh
source "$HERE/lib.sh"

PG_ADMIN="postgres://postgres@127.0.0.1:5432/postgres"
if ! pg_isready -q -t 2 -d "$PG_ADMIN" || ! timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222' 2>/dev/null; then
    fail "needs Postgres at 127.0.0.1:5432 and NATS at 127.0.0.1:4222: start them (see README) and rerun"
    summary
    exit 1
fi

STATE="$(mktemp -d)"
SUFFIX="_uptest$$"
OFFSET="$(pick_offset)" || {
    fail "no free LONGSHIP_PORT_OFFSET found"
    summary
    exit 1
}
export LONGSHIP_INFRA=local LONGSHIP_STATE_DIR="$STATE" LONGSHIP_PORT_OFFSET="$OFFSET"
export LONGSHIP_DB_SUFFIX="$SUFFIX" NATS_PREFIX="uptest$$" LONGSHIP_READY_TIMEOUT=120
ORDER="http://127.0.0.1:$((8080 + LONGSHIP_PORT_OFFSET))"
INVENTORY="http://127.0.0.1:$((8081 + LONGSHIP_PORT_OFFSET))"
PAYMENT="http://127.0.0.1:$((8082 + LONGSHIP_PORT_OFFSET))"

cleanup() {
    bash "$ROOT/scripts/down.sh" >/dev/null 2>&1 || true
    for db in orders inventory payments; do
        psql -q -d "$PG_ADMIN" -c "DROP DATABASE IF EXISTS \"$db$SUFFIX\" WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf "$STATE"
}
trap cleanup EXIT

RUN_TIMEOUT=900 run_cmd bash "$ROOT/scripts/up.sh"
expect_rc "up starts the real platform" 0

for url in "$ORDER" "$INVENTORY" "$PAYMENT"; do
    code="$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")"
    if [[ "$code" == 200 ]]; then pass "$url/readyz is 200"; else fail "$url/readyz is $code"; fi
done

# a Postgres on this machine that accepts us on its Unix socket is reached through it
# (LONGSHIP_PG_SOCKET_DIR=auto; scripts/tests/test_pg_socket.sh tests that choice): the services'
# backends then have no client address
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"
socket_dir="$(pg_socket_dir "$PG_ADMIN" 2>/dev/null)"
expected="tcp"
[[ -n "$socket_dir" ]] && expected="socket"
transports="$(psql -XtAq -d "$PG_ADMIN" -c "select distinct case when client_addr is null then 'socket' else 'tcp' end
    from pg_stat_activity where datname in ('orders$SUFFIX', 'inventory$SUFFIX', 'payments$SUFFIX')")"
if [[ "$transports" == "$expected" ]]; then
    pass "the services reach Postgres over $expected${socket_dir:+ ($socket_dir)}"
else
    fail "the services' Postgres connections: got '$transports', wanted '$expected'"
fi

json() { curl -sS -H 'X-Tenant-Id: acme' -H 'Content-Type: application/json' "$@"; }
json -X PUT "$INVENTORY/v1/products/SKU-UP" -d '{"name":"Up","price_cents":300,"currency":"USD","on_hand":5}' >/dev/null
json -X PUT "$PAYMENT/v1/accounts/c-up" -d '{"balance_cents":10000,"currency":"USD"}' >/dev/null
placed="$(json -X POST "$ORDER/v1/orders" -d '{"customer_id":"c-up","currency":"USD","items":[{"sku":"SKU-UP","quantity":2}]}')"
id="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("id",""))' "$placed" 2>/dev/null)"
if [[ -n "$id" ]]; then pass "POST /v1/orders accepted ($id)"; else fail "POST /v1/orders" "$placed"; fi

status=""
for _ in $(seq 1 150); do
    status="$(json "$ORDER/v1/orders/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status",""))' 2>/dev/null)"
    [[ "$status" == PENDING || -z "$status" ]] || break
    sleep 0.1
done
if [[ "$status" == CONFIRMED ]]; then pass "the order is CONFIRMED"; else fail "the order is $status, wanted CONFIRMED"; fi

captured=""
for _ in $(seq 1 150); do
    captured="$(json "$PAYMENT/v1/payments?order_id=$id" | python3 -c 'import json,sys; print(",".join(i["status"] for i in json.load(sys.stdin)["items"]))' 2>/dev/null)"
    [[ "$captured" == CAPTURED ]] && break
    sleep 0.1
done
if [[ "$captured" == CAPTURED ]]; then pass "its payment is CAPTURED"; else fail "payment status: $captured"; fi

RUN_TIMEOUT=300 run_cmd bash "$ROOT/scripts/up.sh"
expect_rc "a second up is harmless" 0
expect_out "a second up says it is already up" "already"

run_cmd bash "$ROOT/scripts/down.sh"
expect_rc "down stops it" 0
run_cmd bash "$ROOT/scripts/status.sh"
expect_out "status says nothing runs" "nothing of ours is running"
left="$(for f in "$STATE"/run/*.pid; do [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null && echo "$f"; done)"
if [[ -z "$left" ]]; then pass "no process of ours is left"; else fail "still running: $left"; fi

summary
