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

unset LONGSHIP_ORDER_URL LONGSHIP_INVENTORY_URL LONGSHIP_PAYMENT_URL DEMO_WAIT_SECS DEMO_SETTLE_SECS \
    DEMO_CONSOLE DEMO_CONSOLE_WAIT_SECS LONGSHIP_PG_URL LONGSHIP_DB_SUFFIX FAKE_STATE_DIR
SCRATCH="$(mktemp -d)"
# never the repository's own .longship*: a real platform there would be stopped by the console step
export LONGSHIP_STATE_DIR="$SCRATCH/none"

FAKE_PID=""
stop_fake() {
    if [[ -n "$FAKE_PID" ]]; then
        kill "$FAKE_PID" 2>/dev/null || true
        wait "$FAKE_PID" 2>/dev/null || true
        FAKE_PID=""
    fi
}
trap 'stop_fake; rm -rf "$SCRATCH"' EXIT

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
expect_out "without a platform \`just up\` started here, the console step says it left nothing" "Left nothing: no payment process started by \`just up\`"
stop_fake

# the console step: a dead letter and a stuck saga, on a platform "started by just up" in $state
console_run() { # console_run [BUG]; env: what else the run needs
    local state="$SCRATCH/state-$RANDOM"
    FAKE_STATE_DIR="$state" start_fake "$offset" "${1:-}"
    LONGSHIP_PORT_OFFSET="$offset" LONGSHIP_STATE_DIR="$state" PATH="$HERE/fake_bin:$PATH" \
        FAKE_INVENTORY_URL="http://127.0.0.1:$((8081 + offset))" DEMO_CONSOLE_WAIT_SECS="${WAIT:-20}" \
        run_cmd python3 "$SCRIPTS/demo.py"
    stop_fake
}
console_run
expect_rc "demo with the console step exits 0" 0
expect_out "stops payment through down.sh" "payment is down"
expect_out "lists the dead letter it left" "  dead letter  "
expect_out "names the dead letter's consumer and error" "inventory-order-confirmed (inventory)"
expect_out "lists the stuck saga it left" "  stuck saga   "
expect_out "the stuck saga's last error" "payment: unavailable (connection refused)"
expect_out "says the engine may finish it first" "at most SAGA_RETRY_MAX_MS apart (2 s by default"
expect_out "prints the console URL with a token" "http://127.0.0.1:$((8080 + offset))/console#token=ey"
expect_out "says how to fix the saga: start payment, retry" "just up\` (starts payment again), then Retry it"
expect_out "the CLI retry of that saga" "just admin saga retry "
expect_out "says how to fix the dead letter: drop the trigger" "DROP TRIGGER demo_ledger_closed_"
expect_out "the CLI redrive of that dead letter" "just admin dead-letters redrive "
expect_out "ends saying it left them" "the console step left what it says above"
WAIT=3 console_run never_stuck
expect_rc "console step catches a saga never listed as stuck: exits 1" 1
expect_out "says what it expected of the stuck saga" "should be listed by GET /admin/v1/sagas?stuck=true with its last_error within 3s"
WAIT=3 console_run no_dead_letter
expect_rc "console step catches a missing dead letter: exits 1" 1
expect_out "says what it expected of the dead letter" "a dead letter of inventory-order-confirmed for order"
FAKE_PSQL_FAIL=1 console_run
expect_rc "console step catches psql failing: exits 1" 1
expect_out "says psql should install the trigger, with psql's error" "psql should install the trigger in postgres://postgres@127.0.0.1:5432/inventory_$offset; got psql: error"

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
