#!/usr/bin/env bash
# A second copy beside the first with LONGSHIP_PORT_OFFSET alone: a non-zero offset implies its own
# state directory (<repo>/.longship-N), databases (suffix _N) and NATS prefix (copyN) unless those
# are set explicitly, and up.sh prints the exact command that stops that copy.
#  1. the configuration (scripts/lib/common.sh's longship_config) for offset 0, an offset, explicit
#     overrides and explicitly empty ones: no infrastructure needed;
#  2. two copies at two offsets, started with nothing but the offset, running side by side with
#     stub services (scripts/tests/stub_service.py), then stopped one at a time with the printed
#     command. Needs Postgres (127.0.0.1:5432) and NATS (127.0.0.1:4222), which up.sh checks; fails
#     saying what to start without them. Needs no cargo.
# The scripts run from a copy of scripts/ in a temporary directory, so the copies' state
# directories (<repo>/.longship-N) are created there, never in this checkout.
# Usage: bash scripts/tests/test_up_copies.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPTS="$(dirname "$HERE")"
# shellcheck source=scripts/tests/lib.sh
source "$HERE/lib.sh"

TMP="$(mktemp -d)"
REPO="$TMP/repo"
mkdir -p "$REPO" "$TMP/bin" "$TMP/env-a" "$TMP/env-b"
cp -a "$SCRIPTS" "$REPO/scripts"
for s in order inventory payment; do ln -s "$HERE/stub_service.py" "$TMP/bin/$s"; done
PG_ADMIN="postgres://postgres@127.0.0.1:5432/postgres"
OFFSETS=()

cleanup() {
    local o db
    for o in "${OFFSETS[@]+"${OFFSETS[@]}"}"; do
        LONGSHIP_PORT_OFFSET="$o" LONGSHIP_STOP_TIMEOUT=1 bash "$REPO/scripts/down.sh" >/dev/null 2>&1 || true
        for db in orders inventory payments; do
            psql "$PG_ADMIN" -Xqc "drop database if exists \"${db}_$o\"" >/dev/null 2>&1 || true
        done
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

unset LONGSHIP_STATE_DIR LONGSHIP_DB_SUFFIX NATS_PREFIX LONGSHIP_PORT_OFFSET CARGO_TARGET_DIR LONGSHIP_PROFILE
unset RUST_LOG LOG_FORMAT NO_COLOR AUTH_JWT_SECRET AUTH_JWT_ALGORITHM OTEL_EXPORTER_OTLP_ENDPOINT

# --- 1. configuration ------------------------------------------------------------------------
# config VAR=VALUE...: prints STATE_DIR|DB_SUFFIX|NATS_PREFIX|stop command for that environment.
config() {
    # shellcheck disable=SC2016  # expanded by the inner shell
    env "$@" bash -c 'source "$0/scripts/lib/common.sh"; longship_config
        printf "%s|%s|%s|%s\n" "$STATE_DIR" "$DB_SUFFIX" "$NATS_PREFIX_EFFECTIVE" "$(same_copy just down)"' "$REPO"
}
expect_config() { # expect_config NAME WANT VAR=VALUE...
    local name="$1" want="$2" got
    shift 2
    got="$(config "$@" 2>&1)" || true
    if [[ "$got" == "$want" ]]; then pass "$name"; else fail "$name" "got:  $got"$'\n'"want: $want"; fi
}

expect_config "offset 0: the default state dir, no suffix, no prefix" \
    "$REPO/.longship|||just down"
expect_config "an offset alone implies its own state dir, database suffix and NATS prefix" \
    "$REPO/.longship-1100|_1100|copy1100|LONGSHIP_PORT_OFFSET=1100 just down" LONGSHIP_PORT_OFFSET=1100
expect_config "explicit settings win over what the offset implies" \
    "$TMP/mine|_mine|mine|LONGSHIP_PORT_OFFSET=1100 LONGSHIP_STATE_DIR=$TMP/mine just down" \
    LONGSHIP_PORT_OFFSET=1100 LONGSHIP_STATE_DIR="$TMP/mine" LONGSHIP_DB_SUFFIX=_mine NATS_PREFIX=mine
expect_config "an explicitly empty suffix and prefix mean none, even with an offset" \
    "$REPO/.longship-1100|||LONGSHIP_PORT_OFFSET=1100 just down" \
    LONGSHIP_PORT_OFFSET=1100 LONGSHIP_DB_SUFFIX= NATS_PREFIX=
expect_config "an explicit state dir without an offset is named in the stop command" \
    "$TMP/st|||LONGSHIP_STATE_DIR=$TMP/st just down" LONGSHIP_STATE_DIR="$TMP/st"
expect_config "a NATS prefix the services would refuse stops up.sh early" \
    "$(printf 'error: NATS_PREFIX may contain only letters, digits and dashes, got %s' "'a.b'")" NATS_PREFIX=a.b

# --- 2. two copies side by side ------------------------------------------------------------------
if ! { command -v psql >/dev/null && pg_isready -q -t 2 -d "$PG_ADMIN"; } ||
    ! timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222' 2>/dev/null; then
    fail "two copies side by side need Postgres at 127.0.0.1:5432 and NATS at 127.0.0.1:4222: start them (see README) and rerun"
    summary
    exit 1
fi
A="$(pick_offset)" || A=""
B="$(pick_offset)" || B=""
if [[ -z "$A" || -z "$B" || "$A" == "$B" ]]; then
    fail "no two free LONGSHIP_PORT_OFFSETs found"
    summary
    exit 1
fi
OFFSETS=("$A" "$B")
export LONGSHIP_INFRA=local LONGSHIP_NO_BUILD=1 LONGSHIP_BIN_DIR="$TMP/bin" LONGSHIP_READY_TIMEOUT=20 LONGSHIP_STOP_TIMEOUT=5
# the stub services speak no gRPC: no development PKI here (test_up_real.sh runs up.sh with mTLS on)
export GRPC_MTLS=off
pid_of() { cat "$REPO/.longship-$1/run/$2.pid" 2>/dev/null || echo none; }
alive() { [[ "$1" =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null && [[ "$(ps -o stat= -p "$1")" != Z* ]]; }

STUB_ENV_DIR="$TMP/env-a" LONGSHIP_PORT_OFFSET="$A" run_cmd bash "$REPO/scripts/up.sh"
expect_rc "copy A starts with LONGSHIP_PORT_OFFSET=$A alone" 0
expect_out "copy A prints its exact stop command" "Stop:  LONGSHIP_PORT_OFFSET=$A just down"
expect_out "copy A names its databases and NATS prefix" "databases orders_$A inventory_$A payments_$A, NATS prefix copy$A"
STUB_ENV_DIR="$TMP/env-b" LONGSHIP_PORT_OFFSET="$B" run_cmd bash "$REPO/scripts/up.sh"
expect_rc "copy B starts beside A with LONGSHIP_PORT_OFFSET=$B alone" 0
expect_out "copy B prints its exact stop command" "Stop:  LONGSHIP_PORT_OFFSET=$B just down"

for o in "$A" "$B"; do
    envf="$TMP/env-$([[ "$o" == "$A" ]] && echo a || echo b)/order.env"
    if grep -qx "NATS_PREFIX=copy$o" "$envf" && grep -q "^DATABASE_URL=.*/orders_$o\(?.*\)\?$" "$envf" &&
        grep -qx "HTTP_ADDR=127.0.0.1:$((8080 + o))" "$envf"; then
        pass "copy at offset $o: order got its own port, database and NATS prefix"
    else
        fail "copy at offset $o: order's environment" "$(cat "$envf" 2>/dev/null)"
    fi
done
dbs="$(psql "$PG_ADMIN" -XtAc "select string_agg(datname, ',' order by datname) from pg_database where datname like '%\\_$A' or datname like '%\\_$B'")"
want="$(printf '%s\n' "inventory_$A" "inventory_$B" "orders_$A" "orders_$B" "payments_$A" "payments_$B" | LC_ALL=C sort | paste -sd,)"
if [[ "$(tr ',' '\n' <<<"$dbs" | LC_ALL=C sort | paste -sd,)" == "$want" ]]; then pass "each copy created its own three databases"; else fail "databases: $dbs"; fi
if [[ -d "$REPO/.longship-$A/run" && -d "$REPO/.longship-$B/run" && ! -e "$REPO/.longship" ]]; then
    pass "each copy keeps its state in <repo>/.longship-N; the default copy's is untouched"
else
    fail "state directories" "$(ls -a "$REPO")"
fi

a_pids=("$(pid_of "$A" order)" "$(pid_of "$A" inventory)" "$(pid_of "$A" payment)")
b_pids=("$(pid_of "$B" order)" "$(pid_of "$B" inventory)" "$(pid_of "$B" payment)")
LONGSHIP_PORT_OFFSET="$A" run_cmd bash "$REPO/scripts/status.sh"
expect_rc "status of copy A (offset alone) sees it ready" 0
expect_out "status of copy A shows its order pid" "${a_pids[0]}"
run_cmd bash "$REPO/scripts/status.sh"
expect_out "status without an offset looks at the default copy only" "nothing of ours is running"

LONGSHIP_PORT_OFFSET="$A" run_cmd bash "$REPO/scripts/down.sh"
expect_rc "the printed stop command stops copy A" 0
sleep 0.3
left=()
for p in "${a_pids[@]}"; do alive "$p" && left+=("$p"); done
if ((${#left[@]} == 0)); then pass "copy A's processes are gone"; else fail "copy A's processes still alive: ${left[*]}"; fi
running=0
for p in "${b_pids[@]}"; do alive "$p" && running=$((running + 1)); done
if ((running == 3)); then pass "copy B runs on after copy A stopped"; else fail "copy B lost processes ($running of 3 alive)"; fi
LONGSHIP_PORT_OFFSET="$B" run_cmd bash "$REPO/scripts/down.sh"
expect_out "copy B stops with its own command" "Longship is down."

summary
