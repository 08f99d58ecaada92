#!/usr/bin/env bash
# docs/changing-a-saga.md's worked example end to end, in the copy test_new_service.sh made (where
# `just new-service shipping --saga-participant` ran and shipping was built and tested): builds the
# platform as the old release (order knows v1 only), applies the doc's hand edits (its code blocks,
# scripts/tests/apply_doc_edits.py), builds order again as the new release (v1 and v2), starts the
# old platform with scripts/up.sh (mTLS on) and runs the mixed-replica rollout
# (scripts/tests/saga_rollout.py): v1 sagas stopped mid-way finish on v1 on new replicas, new ones run
# v2 with the shipping step, a refused and a timed-out v2 saga compensate, every invariant holds.
#
# Called by test_new_service.sh (section 6b) with its variables in the environment:
#   COPY TMP CARGO_TARGET_DIR PG_ADMIN NATS_URL NATS_TEST_PREFIX SUFFIX PORT_OFFSET
# Prints ok/FAIL lines and writes "PASSED FAILED" to $TMP/saga.counts.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/tests/lib.sh
source "$HERE/lib.sh"

: "${COPY:?}" "${TMP:?}" "${CARGO_TARGET_DIR:?}" "${PG_ADMIN:?}" "${NATS_URL:?}" "${NATS_TEST_PREFIX:?}" "${SUFFIX:?}" "${PORT_OFFSET:?}"
# shellcheck disable=SC2016  # expanded by the inner shell
IN_COPY=(bash -c 'cd "$1" && shift && exec "$@"' in-copy "$COPY")
BIN="$TMP/rollout-bin"
STATE="$TMP/rollout-state"
DB_SUFFIX="${SUFFIX}_r"
PREFIX="${NATS_TEST_PREFIX}r"
export LONGSHIP_STATE_DIR="$STATE" LONGSHIP_INFRA=local LONGSHIP_NO_BUILD=1 LONGSHIP_BIN_DIR="$BIN"
export LONGSHIP_PORT_OFFSET="$PORT_OFFSET" LONGSHIP_DB_SUFFIX="$DB_SUFFIX" LONGSHIP_PG_URL="$PG_ADMIN"
export LONGSHIP_READY_TIMEOUT=90 NATS_PREFIX="$PREFIX" SAGA_DEADLINE_SECS=120
unset RUST_LOG LOG_FORMAT AUTH_JWT_SECRET AUTH_JWT_ALGORITHM OTEL_EXPORTER_OTLP_ENDPOINT GRPC_MTLS SAGA_START_VERSION

finish() {
    LONGSHIP_STOP_TIMEOUT=10 bash "$COPY/scripts/down.sh" >/dev/null 2>&1 || true
    for db in orders inventory payments shipping; do
        psql "$PG_ADMIN" -Xqc "drop database if exists \"$db$DB_SUFFIX\" with (force)" >/dev/null 2>&1 || true
    done
    printf '%s %s\n' "$PASSED" "$FAILED" >"$TMP/saga.counts"
}
trap finish EXIT

# --- the old release: everything built before the doc's edits ------------------------------------
RUN_TIMEOUT=2400 run_cmd "${IN_COPY[@]}" cargo build -p order -p inventory -p payment -p shipping -p certs
expect_rc "the old release builds (order with v1 only, inventory, payment, shipping, certs)" 0
RUN_TIMEOUT=1200 run_cmd "${IN_COPY[@]}" cargo build -p longship-testkit --bin check-invariants
expect_rc "check-invariants (libs/testkit) builds" 0
mkdir -p "$BIN"
cp "$CARGO_TARGET_DIR/debug/order" "$BIN/order"
for b in inventory payment shipping certs; do ln -sf "$CARGO_TARGET_DIR/debug/$b" "$BIN/$b"; done

# --- the doc's hand edits, then the new release --------------------------------------------------
RUN_TIMEOUT=60 run_cmd python3 "$HERE/apply_doc_edits.py" "$COPY/docs/changing-a-saga.md" "$COPY"
expect_rc "the hand edits of docs/changing-a-saga.md apply to the copy" 0
expect_out "the doc shows 2 hand edits of code (the third is the SAGA_PEERS setting, which just up makes)" "2 hand edits of code applied"
printf '%s\n' "$OUT" | sed 's/^/      | /'
RUN_TIMEOUT=300 run_cmd "${IN_COPY[@]}" cargo fmt --check -p order
expect_rc "the edited order service is formatted as cargo fmt wants (the doc's code as is)" 0
RUN_TIMEOUT=2400 run_cmd "${IN_COPY[@]}" cargo build -p order
expect_rc "the new release builds (order with v1 and v2)" 0
cp "$CARGO_TARGET_DIR/debug/order" "$TMP/order-new"
if cmp -s "$BIN/order" "$TMP/order-new"; then fail "the new order binary differs from the old one"; else pass "the new order binary differs from the old one"; fi

# --- the old platform, then the rollout ----------------------------------------------------------
RUN_TIMEOUT=300 run_cmd bash "$COPY/scripts/up.sh"
expect_rc "scripts/up.sh starts shipping, inventory, payment and the old order (mTLS)" 0
if [[ "$RC" != 0 ]]; then
    printf '%s\n' "$OUT" | tail -n 30 | sed 's/^/      | /'
    exit 0
fi
ports=()
for svc in order inventory payment shipping; do
    ports+=(--http-port "$svc=$(cd "$COPY" && bash -c 'source scripts/lib/common.sh; longship_config; http_port "$1"' x "$svc")")
done
RUN_TIMEOUT=600 run_cmd python3 "$HERE/saga_rollout.py" --state-dir "$STATE" --new-order "$TMP/order-new" \
    --check-invariants "$CARGO_TARGET_DIR/debug/check-invariants" --pg-url "$PG_ADMIN" --db-suffix "$DB_SUFFIX" "${ports[@]}"
printf '%s\n' "$OUT" | sed 's/^/      | /'
expect_rc "the mixed-replica rollout of docs/changing-a-saga.md ($(tail -n1 <<<"$OUT"))" 0
