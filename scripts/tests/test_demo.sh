#!/usr/bin/env bash
# scripts/demo.py against an in-memory imitation of the HTTP contract
# (scripts/tests/fake_platform.py): passes on a correct platform, fails with a clear
# "expected: ..." on a broken one, exits 2 when nothing answers. Needs only python3.
# Usage: bash scripts/tests/test_demo.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPTS="$(dirname "$HERE")"
# shellcheck source=scripts/tests/lib.sh
source "$HERE/lib.sh"

unset LONGSHIP_ORDER_URL LONGSHIP_INVENTORY_URL LONGSHIP_PAYMENT_URL DEMO_WAIT_SECS DEMO_SETTLE_SECS

FAKE_PID=""
stop_fake() {
    if [[ -n "$FAKE_PID" ]]; then
        kill "$FAKE_PID" 2>/dev/null || true
        wait "$FAKE_PID" 2>/dev/null || true
        FAKE_PID=""
    fi
}
trap stop_fake EXIT

start_fake() { # start_fake OFFSET [BUG]
    FAKE_BUG="${2:-}" python3 "$HERE/fake_platform.py" "$1" >/dev/null 2>&1 &
    FAKE_PID=$!
    for _ in $(seq 1 50); do
        [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((8082 + $1))/readyz" 2>/dev/null)" == 200 ]] && return 0
        sleep 0.1
    done
    fail "fake platform did not start on offset $1"
}

offset="$(pick_offset)"
LONGSHIP_PORT_OFFSET="$offset" run_cmd python3 "$SCRIPTS/demo.py"
expect_rc "demo with no platform exits 2" 2
expect_out "demo with no platform says how to start it" "just up"

start_fake "$offset"
LONGSHIP_PORT_OFFSET="$offset" run_cmd python3 "$SCRIPTS/demo.py"
expect_rc "demo against a correct platform exits 0" 0
expect_out "shows the confirmed order's saga steps" "ReserveStock:SUCCEEDED, AuthorizePayment:SUCCEEDED, ConfirmOrder:SUCCEEDED"
expect_out "shows insufficient_stock" "insufficient_stock"
expect_out "shows payment_declined" "payment_declined"
expect_out "shows unknown_sku" "unknown_sku"
expect_out "shows the idempotent retry returned the same order" "the same order, no second one"
expect_out "shows globex gets 404 for acme's order" "as globex -> 404"
expect_out "ends with the all-clear" "All expectations held"
stop_fake

LONGSHIP_ORDER_URL="http://127.0.0.1:$((8080 + offset))" LONGSHIP_INVENTORY_URL="http://127.0.0.1:$((8081 + offset))" \
    LONGSHIP_PAYMENT_URL="http://127.0.0.1:$((8082 + offset))" run_cmd python3 "$SCRIPTS/demo.py"
expect_rc "explicit LONGSHIP_*_URL are used (nothing there now: exit 2)" 2
expect_out "the explicit order URL is named" "http://127.0.0.1:$((8080 + offset))"

check_bug() { # check_bug BUG EXPECTED-TEXT
    start_fake "$offset" "$1"
    LONGSHIP_PORT_OFFSET="$offset" DEMO_WAIT_SECS=5 DEMO_SETTLE_SECS=2 run_cmd python3 "$SCRIPTS/demo.py"
    expect_rc "demo catches $1: exits 1" 1
    expect_out "demo catches $1: says what was expected" "$2"
    stop_fake
}
check_bug leak_tenants "globex reading acme's order should get 404 (never 403); got 200"
check_bug never_decline "acme/payment declined: status should be CANCELLED; got CONFIRMED"
check_bug no_idempotency "acme/idempotent retry: the same Idempotency-Key and body should return the same order"

summary
