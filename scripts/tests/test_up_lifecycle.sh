#!/usr/bin/env bash
# up.sh / status.sh / logs.sh / down.sh end to end, with stub binaries instead of the real
# services (scripts/tests/stub_service.py): start, idempotent restart, partial restart,
# readiness timeout, crash, failed migration, SIGKILL escalation, pid-reuse safety.
# Needs the local Postgres (127.0.0.1:5432, user postgres) and NATS (TEST_NATS_URL, default
# nats://127.0.0.1:4222) because up.sh checks them; fails, saying what to start, when they are not there. Needs no cargo. Runs on its
# own state dir, free ports (LONGSHIP_PORT_OFFSET) and databases (LONGSHIP_DB_SUFFIX,
# dropped at the end), so it can run beside a developer's platform.
# Usage: bash scripts/tests/test_up_lifecycle.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPTS="$(dirname "$HERE")"
# shellcheck source=scripts/tests/lib.sh
source "$HERE/lib.sh"

PG_ADMIN="postgres://postgres@127.0.0.1:5432/postgres"
NATS="${TEST_NATS_URL:-nats://127.0.0.1:4222}"
NATS_HOSTPORT="${NATS#*://}"
# shellcheck disable=SC2016  # expanded by the inner shell
if ! { command -v psql >/dev/null && pg_isready -q -t 2 -d "$PG_ADMIN"; } ||
    ! timeout 2 bash -c 'exec 3<>"/dev/tcp/${0%:*}/${0##*:}"' "$NATS_HOSTPORT" 2>/dev/null; then
    fail "up/down lifecycle needs Postgres at 127.0.0.1:5432 and NATS at $NATS_HOSTPORT (TEST_NATS_URL): start them (see README) and rerun"
    summary
    exit 1
fi

TMP="$(mktemp -d)"
SUFFIX="_uptest_$$"
FOREIGN=""
cleanup() {
    # Stop whatever the scripts under test may have left (by the pids in our own state dir).
    LONGSHIP_STOP_TIMEOUT=1 bash "$SCRIPTS/down.sh" >/dev/null 2>&1 || true
    [[ -n "$FOREIGN" ]] && kill "$FOREIGN" 2>/dev/null
    for db in orders inventory payments; do
        psql "$PG_ADMIN" -Xqc "drop database if exists \"$db$SUFFIX\"" >/dev/null 2>&1 || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

mkdir -p "$TMP/bin" "$TMP/env"
for s in order inventory payment; do ln -s "$HERE/stub_service.py" "$TMP/bin/$s"; done

OFFSET="$(pick_offset)" || {
    fail "no free LONGSHIP_PORT_OFFSET found"
    summary
    exit 1
}
export LONGSHIP_STATE_DIR="$TMP/state" LONGSHIP_INFRA=local LONGSHIP_NO_BUILD=1 LONGSHIP_BIN_DIR="$TMP/bin"
export LONGSHIP_PORT_OFFSET="$OFFSET" LONGSHIP_DB_SUFFIX="$SUFFIX" LONGSHIP_PG_URL="$PG_ADMIN" STUB_ENV_DIR="$TMP/env"
export LONGSHIP_READY_TIMEOUT=20 LONGSHIP_STOP_TIMEOUT=5 NATS_URL="$NATS" NATS_PREFIX=uptest
# the stub services speak no gRPC: no development PKI here (test_up_real.sh runs up.sh with mTLS on)
export GRPC_MTLS=off
unset RUST_LOG LOG_FORMAT NO_COLOR AUTH_JWT_SECRET AUTH_JWT_ALGORITHM OTEL_EXPORTER_OTLP_ENDPOINT CARGO_TARGET_DIR LONGSHIP_PROFILE

RUN="$LONGSHIP_STATE_DIR/run"
o_http=$((8080 + OFFSET))
i_http=$((8081 + OFFSET))
p_http=$((8082 + OFFSET))
pid_of() { cat "$RUN/$1.pid" 2>/dev/null || echo none; }
# Running, not a zombie (an exited service waits for init to reap it, which may lag).
alive() {
    local st
    st="$(ps -o stat= -p "$1" 2>/dev/null || true)"
    [[ -n "$st" && "$st" != Z* ]]
}
started_pids() { grep -o 'started [a-z]* (pid [0-9]*' <<<"$OUT" | grep -o '[0-9]*$' || true; }
none_alive() { # none_alive NAME PID...
    local name="$1" p left=()
    shift
    sleep 0.3
    for p in "$@"; do alive "$p" && left+=("$p"); done
    if ((${#left[@]} == 0)); then pass "$name"; else fail "$name (still alive: ${left[*]})"; fi
}

# --- a clean start -------------------------------------------------------------------
STUB_PAYMENT_MODE=slow STUB_READY_AFTER=2 run_cmd bash "$SCRIPTS/up.sh"
expect_rc "up starts the three services" 0
expect_out "up reports success" "Longship is up."
expect_out "up says the services run as local processes" "run as local processes"
expect_out "up prints the order API docs URL (with the offset)" "http://127.0.0.1:$o_http/docs"
expect_out "up prints the inventory metrics URL" "http://127.0.0.1:$i_http/metrics"
expect_out "up prints the payment API docs URL" "http://127.0.0.1:$p_http/docs"
expect_out "up prints the product seeding curl" "-X PUT http://127.0.0.1:$i_http/v1/products/SKU-1 -H 'X-Tenant-Id: acme'"
expect_out "up prints the account seeding curl" "-X PUT http://127.0.0.1:$p_http/v1/accounts/c-1 -H 'X-Tenant-Id: acme'"
expect_out "up prints the place-and-read-back curl" "-X POST http://127.0.0.1:$o_http/v1/orders -H 'X-Tenant-Id: acme'"
expect_no_out "no Jaeger link without Docker infra" "16686"
expect_out "up waited for the slow service" "payment is ready"
first_order="$(pid_of order)"
first_inventory="$(pid_of inventory)"
first_payment="$(pid_of payment)"
if alive "$first_order" && alive "$first_inventory" && alive "$first_payment"; then
    pass "pid files name live processes"
else
    fail "pid files name live processes" "$(ls -l "$RUN")"
fi
if [[ "$(ps -o args= -p "$first_order")" == *"$TMP/bin/order"* ]]; then
    pass "the pid in order.pid is the service itself (not a wrapper)"
else
    fail "the pid in order.pid is the service itself" "$(ps -o pid,args= -p "$first_order")"
fi
if [[ "$(ps -o sid= -p "$first_order" | tr -d ' ')" == "$first_order" ]] || ! command -v setsid >/dev/null; then
    pass "services run in their own session (survive the terminal)"
else
    fail "services run in their own session" "$(ps -o pid,pgid,sid,args -p "$first_order")"
fi

# What the services were given (the contract's environment). The database URL names the local
# server's Unix socket when up.sh can use it (scripts/tests/test_pg_socket.sh tests that choice).
# shellcheck source=scripts/lib/common.sh
source "$HERE/../lib/common.sh"
socket="$(pg_socket_dir "postgres://postgres@127.0.0.1:5432/postgres" 2>/dev/null)"
envf="$TMP/env/order.env"
for want in "HTTP_ADDR=127.0.0.1:$o_http" "GRPC_ADDR=127.0.0.1:$((50051 + OFFSET))" \
    "DATABASE_URL=$(pg_url_with_socket "postgres://postgres@127.0.0.1:5432/orders$SUFFIX" "$socket")" "NATS_URL=$NATS" \
    "NATS_STREAM_REPLICAS=1" "NATS_PREFIX=uptest" "AUTH_ALLOW_TENANT_HEADER=true" "AUTH_JWT_ALGORITHM=HS256" "AUTH_JWT_SECRET=longship-dev-secret-change-me" \
    "INVENTORY_GRPC_URL=http://127.0.0.1:$((50052 + OFFSET))" "PAYMENT_GRPC_URL=http://127.0.0.1:$((50053 + OFFSET))" \
    "CONSOLE_PEERS=inventory=http://127.0.0.1:$i_http,payment=http://127.0.0.1:$p_http" \
    "OTEL_SERVICE_NAME=order" "RUST_LOG=info" "LOG_FORMAT=pretty" "NO_COLOR=1"; do
    if grep -qxF "$want" "$envf" 2>/dev/null; then pass "order got $want"; else fail "order got $want" "$(cat "$envf" 2>/dev/null)"; fi
done
if grep -qxF "DATABASE_URL=$(pg_url_with_socket "postgres://postgres@127.0.0.1:5432/payments$SUFFIX" "$socket")" "$TMP/env/payment.env" &&
    grep -qxF "HTTP_ADDR=127.0.0.1:$i_http" "$TMP/env/inventory.env"; then
    pass "payment and inventory got their own database and port"
else
    fail "payment and inventory got their own database and port"
fi
if grep -q '^INVENTORY_GRPC_URL=' "$TMP/env/payment.env"; then fail "payment got order-only variables"; else pass "order-only variables go to order only"; fi
dbs="$(psql "$PG_ADMIN" -XtAc "select string_agg(datname, ',' order by datname) from pg_database where datname like '%$SUFFIX'")"
if [[ "$dbs" == "inventory$SUFFIX,orders$SUFFIX,payments$SUFFIX" ]]; then pass "up created the three databases with the suffix"; else fail "databases created: $dbs"; fi

run_cmd bash "$SCRIPTS/status.sh"
expect_rc "status exits 0 when all are ready" 0
expect_out "status shows order running and ready" "$first_order"
expect_out "status shows readyz 200" "200 ready"

LONGSHIP_LOGS_FOLLOW=0 run_cmd bash "$SCRIPTS/logs.sh" order
expect_rc "logs order prints the log" 0
expect_out "the order log has the service output" "order: listening on 127.0.0.1:$o_http"
expect_out "the order log records the migrate run" "order migrate"

# --- idempotent ------------------------------------------------------------------------
run_cmd bash "$SCRIPTS/up.sh"
expect_rc "up twice is harmless" 0
expect_out "up twice says already up" "already up"
if [[ "$(pid_of order)" == "$first_order" && "$(pid_of payment)" == "$first_payment" ]]; then
    pass "up twice starts nothing new"
else
    fail "up twice starts nothing new"
fi

# --- one service died: status notices, up restarts only it ------------------------------
kill "$first_payment"
sleep 0.5
run_cmd bash "$SCRIPTS/status.sh"
expect_rc "status exits 1 when a service died" 1
expect_out "status says payment died" "died"
run_cmd bash "$SCRIPTS/up.sh"
expect_rc "up after a crash restarts what is missing" 0
expect_out "up names what it restarts" "starting the missing: payment"
if [[ "$(pid_of order)" == "$first_order" && "$(pid_of payment)" != "$first_payment" ]] && alive "$(pid_of payment)"; then
    pass "only payment was restarted"
else
    fail "only payment was restarted" "order $(pid_of order) (was $first_order), payment $(pid_of payment)"
fi
if [[ -e "$LONGSHIP_STATE_DIR/logs/payment.log.1" ]]; then pass "the previous payment log was kept as payment.log.1"; else fail "payment.log.1 kept"; fi

# --- down SERVICE: only that one; up starts it again ---------------------------------------
before_order="$(pid_of order)" before_payment="$(pid_of payment)"
run_cmd bash "$SCRIPTS/down.sh" payment
expect_rc "down payment exits 0" 0
expect_out "down payment says how to start it again" "payment is down;"
none_alive "down payment stopped payment" "$before_payment"
if alive "$before_order" && alive "$(pid_of inventory)"; then pass "down payment left order and inventory running"; else fail "down payment left order and inventory running"; fi
run_cmd bash "$SCRIPTS/down.sh" payment
expect_out "down payment again: not running" "payment is not running"
run_cmd bash "$SCRIPTS/down.sh" nosuch
expect_rc "down with an unknown service fails" nonzero
expect_out "down names the services it knows" "unknown service 'nosuch'"
run_cmd bash "$SCRIPTS/up.sh"
expect_rc "up after down payment exits 0" 0
expect_out "up starts only payment again" "starting the missing: payment"
if [[ "$(pid_of order)" == "$before_order" ]] && alive "$(pid_of payment)"; then pass "payment is back, order untouched"; else fail "payment is back, order untouched"; fi

# --- down -----------------------------------------------------------------------------------
pids=("$(pid_of order)" "$(pid_of inventory)" "$(pid_of payment)")
run_cmd bash "$SCRIPTS/down.sh"
expect_rc "down exits 0" 0
expect_out "down stops order" "stopping order"
none_alive "down stopped all three" "${pids[@]}"
if compgen -G "$RUN/*.pid" >/dev/null; then fail "down removed the pid files"; else pass "down removed the pid files"; fi
run_cmd bash "$SCRIPTS/status.sh"
expect_out "status after down: nothing of ours is running" "nothing of ours is running"
run_cmd bash "$SCRIPTS/down.sh"
expect_out "down twice is harmless" "nothing of ours is running"

# --- failures stop everything that run started ---------------------------------------------
LONGSHIP_READY_TIMEOUT=3 STUB_PAYMENT_MODE=never_ready run_cmd bash "$SCRIPTS/up.sh"
expect_rc "a service that never gets ready: up fails" nonzero
expect_out "names the service that is not ready" "payment not ready after 3s"
expect_out "prints the failing service's log tail" "payment: listening on"
expect_out "says it stops what it started" "stopping what this run started"
mapfile -t sp < <(started_pids)
if ((${#sp[@]} == 3)); then pass "all three had been started"; else fail "all three had been started" "$OUT"; fi
none_alive "readiness timeout: nothing left running" "${sp[@]}"
if compgen -G "$RUN/*.pid" >/dev/null; then fail "readiness timeout: pid files removed"; else pass "readiness timeout: pid files removed"; fi

SECONDS=0
LONGSHIP_READY_TIMEOUT=30 STUB_INVENTORY_MODE=crash run_cmd bash "$SCRIPTS/up.sh"
expect_rc "a service that crashes: up fails" nonzero
if ((SECONDS < 20)); then pass "a crash is noticed without waiting for the timeout (${SECONDS}s)"; else fail "crash noticed late (${SECONDS}s)"; fi
expect_out "names the crashed service" "inventory exited during start-up"
expect_out "prints the crashed service's log tail" "cannot connect to the database"
mapfile -t sp < <(started_pids)
none_alive "crash: nothing left running" "${sp[@]}"

STUB_ORDER_MODE=migrate_fail run_cmd bash "$SCRIPTS/up.sh"
expect_rc "a failed migration: up fails" nonzero
expect_out "names the failed migration" "\`order migrate\` failed"
expect_out "prints the migration error" "relation already exists"
mapfile -t sp < <(started_pids)
if ((${#sp[@]} == 2)); then pass "inventory and payment had started before order's migration"; else fail "two started before the failed migration" "$OUT"; fi
none_alive "failed migration: nothing left running" "${sp[@]}"

# --- SIGKILL escalation ------------------------------------------------------------------------
STUB_INVENTORY_MODE=ignore_term run_cmd bash "$SCRIPTS/up.sh"
expect_rc "up with a service that ignores SIGTERM" 0
stubborn="$(pid_of inventory)"
LONGSHIP_STOP_TIMEOUT=1 run_cmd bash "$SCRIPTS/down.sh"
expect_rc "down escalates and exits 0" 0
expect_out "down says it sends SIGKILL" "sending SIGKILL"
none_alive "the stubborn service is gone" "$stubborn"

# --- a pid file whose pid now belongs to someone else is never killed -------------------------
mkdir -p "$RUN"
sleep 60 &
FOREIGN=$!
echo "$FOREIGN" >"$RUN/order.pid"
echo "Thu Jan  1 00:00:00 1970" >"$RUN/order.started"
run_cmd bash "$SCRIPTS/down.sh"
expect_rc "down with a reused pid exits 0" 0
if alive "$FOREIGN"; then pass "down does not kill a process that is not ours"; else fail "down killed a foreign process"; fi
expect_out "down reports the stale pid file" "stale pid file removed"

# --- the Docker path, with a fake `docker` CLI (the real Postgres/NATS stand in for the
# containers): compose is asked for the infra only, down removes only what up started ---------
kill "$FOREIGN" 2>/dev/null
FOREIGN=""
rm -rf "$RUN"
mkdir -p "$TMP/fakedocker"
cat >"$TMP/fakedocker/docker" <<'EOF'
#!/usr/bin/env bash
echo "$*" >>"$FAKE_DOCKER_LOG"
case "$1" in
    info) exit 0 ;;
    compose)
        shift
        [[ "$1" == -f ]] && shift 2
        case "$1" in
            version) echo "Docker Compose version v2.30.0" ;;
            ps) cat "$FAKE_DOCKER_RUNNING" 2>/dev/null || true ;;
            up) exit "${FAKE_COMPOSE_UP_RC:-0}" ;;
            rm | logs) ;;
            *) exit 1 ;;
        esac
        exit 0
        ;;
esac
exit 1
EOF
chmod +x "$TMP/fakedocker/docker"
export FAKE_DOCKER_LOG="$TMP/docker.log" FAKE_DOCKER_RUNNING="$TMP/docker-running"
COMPOSE_FILE="$(cd "$SCRIPTS/.." && pwd)/docker/compose.yaml"
with_docker() { PATH="$TMP/fakedocker:$PATH" LONGSHIP_INFRA=auto "$@"; }

: >"$FAKE_DOCKER_LOG"
with_docker run_cmd bash "$SCRIPTS/up.sh"
expect_rc "docker: up with a Docker engine" 0
expect_out "docker: says the infra runs in Docker and the services locally" "the services will run as local processes"
expect_out "docker: prints the Jaeger UI" "Traces (Jaeger UI): http://localhost:16686"
if grep -qxF -- "compose -f $COMPOSE_FILE up -d --wait --wait-timeout 120 postgres nats otel-collector jaeger" "$FAKE_DOCKER_LOG"; then
    pass "docker: compose starts exactly the infrastructure services"
else
    fail "docker: compose starts exactly the infrastructure services" "$(cat "$FAKE_DOCKER_LOG")"
fi
if grep -q -- '--profile' "$FAKE_DOCKER_LOG"; then fail "docker: the apps profile is never started"; else pass "docker: the apps profile is never started"; fi
if grep -qxF "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317" "$TMP/env/order.env"; then
    pass "docker: services export traces to the collector"
else
    fail "docker: services export traces to the collector" "$(grep OTEL "$TMP/env/order.env")"
fi
run_cmd bash "$SCRIPTS/status.sh"
expect_out "docker: status names the compose infra" "started by up.sh"
: >"$FAKE_DOCKER_LOG"
with_docker run_cmd bash "$SCRIPTS/down.sh"
expect_rc "docker: down" 0
if grep -qxF -- "compose -f $COMPOSE_FILE rm --stop --force jaeger nats otel-collector postgres" "$FAKE_DOCKER_LOG"; then
    pass "docker: down removes the infra containers up started (volumes kept)"
else
    fail "docker: down removes the infra containers up started" "$(cat "$FAKE_DOCKER_LOG")"
fi

printf '%s\n' postgres nats otel-collector jaeger >"$FAKE_DOCKER_RUNNING"
with_docker run_cmd bash "$SCRIPTS/up.sh"
expect_rc "docker: up with the infra already running" 0
: >"$FAKE_DOCKER_LOG"
with_docker run_cmd bash "$SCRIPTS/down.sh"
if grep -q ' rm ' "$FAKE_DOCKER_LOG"; then
    fail "docker: down leaves alone infra it did not start" "$(cat "$FAKE_DOCKER_LOG")"
else
    pass "docker: down leaves alone infra it did not start"
fi
rm -f "$FAKE_DOCKER_RUNNING"

printf '%s\n' postgres >"$FAKE_DOCKER_RUNNING"
: >"$FAKE_DOCKER_LOG"
FAKE_COMPOSE_UP_RC=1 with_docker run_cmd bash "$SCRIPTS/up.sh"
expect_rc "docker: infra that does not get healthy fails up" nonzero
expect_out "docker: says the infra did not become healthy" "did not become healthy"
if grep -qxF -- "compose -f $COMPOSE_FILE rm --stop --force nats otel-collector jaeger" "$FAKE_DOCKER_LOG"; then
    pass "docker: a failed up removes the infra it started, not the postgres that ran before"
else
    fail "docker: a failed up removes the infra it started" "$(cat "$FAKE_DOCKER_LOG")"
fi
if compgen -G "$RUN/*.pid" >/dev/null || [[ -e "$RUN/compose-started" ]]; then
    fail "docker: a failed up leaves no state" "$(ls "$RUN")"
else
    pass "docker: a failed up leaves no state"
fi
rm -f "$FAKE_DOCKER_RUNNING"

summary
