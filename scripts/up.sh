#!/usr/bin/env bash
# Start the Longship platform on this machine: infrastructure (Docker compose when an
# engine is reachable, else the Postgres and NATS already running here), then order,
# inventory and payment as local background processes. Running it twice is harmless.
# Usage: scripts/up.sh            (configured by environment variables: scripts/up.sh --help)
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<'EOF'
Usage: scripts/up.sh   (or: just up)

Starts Postgres/NATS checks (or Docker compose infra), builds and runs order,
inventory and payment as local processes, waits until every /readyz is 200.

Environment (all optional):
  LONGSHIP_INFRA          auto (default: Docker compose if `docker info` works, else local) | docker | local
  LONGSHIP_PG_URL         admin URL used to check Postgres and create databases
                          (default postgres://postgres@127.0.0.1:5432/postgres); the services
                          get the same server/user with their own database
  LONGSHIP_PG_SOCKET_DIR  auto (default): when that Postgres is on this machine and accepts us on
                          its Unix socket (/var/run/postgresql, /run/postgresql or /tmp), the
                          services connect through the socket (far cheaper per round trip than
                          loopback TCP, see docs/performance.md) | a directory | none (TCP)
  NATS_URL                NATS with JetStream (default nats://127.0.0.1:4222)
  NATS_STREAM_REPLICAS    stream replicas (default 1: a single NATS server holds one; set 3
                          when NATS_URL points at a three-node cluster)
  LONGSHIP_PORT_OFFSET    added to all six ports 8080-8082 / 50051-50053 (default 0). A non-zero
                          offset runs a second copy beside the default one: it also implies the
                          three settings below (each unless set explicitly), so the offset alone
                          is enough, and `LONGSHIP_PORT_OFFSET=N just down` stops that copy
  NATS_PREFIX             subject/stream prefix passed to the services (default empty;
                          with an offset N: copyN)
  LONGSHIP_DB_SUFFIX      appended to the database names orders/inventory/payments ([a-z0-9_];
                          default empty; with an offset N: _N)
  LONGSHIP_STATE_DIR      logs and pid files (default <repo>/.longship; with an offset N:
                          <repo>/.longship-N)
  LONGSHIP_PROFILE        debug (default) | release
  LONGSHIP_READY_TIMEOUT  seconds to wait for every /readyz (default 90)
  LONGSHIP_NO_BUILD=1     skip `cargo build` and use the binaries already built
  LONGSHIP_BIN_DIR        where the binaries are (default ${CARGO_TARGET_DIR:-target}/<profile>)
  GRPC_MTLS               on (default): a development CA and per-service certificates in
                          <state dir>/certs (the certs tool, `just certs`), every gRPC connection
                          mutual TLS as in production | off: plaintext gRPC, no caller identity
  passed through when set: RUST_LOG (default info), LOG_FORMAT (default pretty),
  AUTH_JWT_SECRET, DATABASE_MAX_CONNECTIONS, DATABASE_WORKER_MAX_CONNECTIONS, DATABASE_APP_ROLE,
  DATABASE_WORKER_ROLE, DATABASE_PLAN_CACHE_MODE, LISTEN_BACKLOG, HTTP_MAX_CONNECTIONS,
  HTTP_HEADER_READ_TIMEOUT_SECS, HTTP_IDLE_TIMEOUT_SECS, GRPC_MAX_CONNECTIONS,
  GRPC_CONCURRENCY_PER_CONNECTION, GRPC_HANDSHAKE_TIMEOUT_SECS, GRPC_KEEPALIVE_INTERVAL_SECS,
  GRPC_KEEPALIVE_TIMEOUT_SECS, GRPC_TCP_KEEPALIVE_SECS, GRPC_MAX_CONNECTION_AGE_SECS, GRPC_CALL_TIMEOUT_SECS,
  SHUTDOWN_TIMEOUT_SECS, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER(_ARG), NATS_STREAM_STORAGE,
  NATS_STREAM_MAX_AGE_SECS, NATS_STREAM_MAX_BYTES, NATS_STREAM_DUPLICATE_WINDOW_SECS,
  NATS_CONSUMER_ACK_WAIT_SECS, NATS_CONSUMER_MAX_DELIVER, NATS_CONSUMER_MAX_ACK_PENDING, SAGA_DEADLINE_SECS,
  SAGA_RETRY_MAX_MS and SAGA_START_VERSION (order),
  RESERVATION_TTL_SECS (inventory)
EOF
}

if (($# > 0)); then
    case "$1" in
        -h | --help)
            usage
            exit 0
            ;;
        *) die "up.sh takes no arguments (got '$1'); it is configured by environment variables, see: scripts/up.sh --help" ;;
    esac
fi

longship_config
command -v curl >/dev/null 2>&1 || die "curl is needed to probe /readyz; install it (apt-get install curl)"

mkdir -p "$LOG_DIR" "$RUN_DIR"
exec 9>"$STATE_DIR/lock"
if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
    die "another up.sh or down.sh is working on $STATE_DIR; wait for it to finish"
fi

# --- cleanup: never leave half-started processes ---------------------------------
RUNNING=()          # services already running when this run began (never stopped by it)
STARTED=()          # services this run started
COMPOSE_STARTED=()  # compose infra services this run started
SUCCESS=0
cleanup() {
    local rc=$? svc pid
    ((SUCCESS)) && return 0
    if ((${#STARTED[@]} > 0)); then
        err "start-up failed; stopping what this run started: ${STARTED[*]}"
        for svc in "${LONGSHIP_STOP_ORDER[@]}"; do
            [[ " ${STARTED[*]} " == *" $svc "* ]] || continue
            if pid="$(service_pid "$svc")"; then stop_pid "$svc" "$pid"; fi
            forget_service "$svc"
        done
    fi
    if ((${#RUNNING[@]} > 0)); then
        err "left as they were (already running before this run): ${RUNNING[*]}; \`$(same_copy just down)\` stops them"
    fi
    if ((${#COMPOSE_STARTED[@]} > 0)); then
        err "stopping the compose infrastructure this run started: ${COMPOSE_STARTED[*]}"
        compose rm --stop --force "${COMPOSE_STARTED[@]}" >/dev/null 2>&1 || true
        rm -f "$RUN_DIR/compose-started" "$RUN_DIR/infra"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log_tail() {
    local f
    f="$(log_file "$1")"
    if [[ -s "$f" ]]; then
        err "last ${LONGSHIP_LOG_TAIL:-40} lines of $f:"
        tail -n "${LONGSHIP_LOG_TAIL:-40}" "$f" | sed 's/^/    | /' >&2
    else
        err "$f is empty"
    fi
}

redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

# --- summary ---------------------------------------------------------------------
print_summary() {
    local svc infra o i p
    infra="$(cat "$RUN_DIR/infra" 2>/dev/null || echo local)"
    o="$(recorded_http_base order)"
    i="$(recorded_http_base inventory)"
    p="$(recorded_http_base payment)"
    say ""
    if [[ "$infra" == docker ]]; then
        say "The three services run as local processes; Postgres, NATS, the OpenTelemetry collector and Jaeger run in Docker (docker/compose.yaml)."
    else
        say "The three services run as local processes against Postgres at $(url_host "$PG_ADMIN_URL"):$(url_port "$PG_ADMIN_URL" 5432) and NATS at $(url_host "$NATS_URL_EFFECTIVE"):$(url_port "$NATS_URL_EFFECTIVE" 4222)."
    fi
    say ""
    printf '  %-10s %-7s %-34s %s\n' service pid "API docs" metrics
    for svc in "${LONGSHIP_STOP_ORDER[@]}"; do
        printf '  %-10s %-7s %-34s %s\n' "$svc" "$(service_pid "$svc" || echo '-')" \
            "$(recorded_http_base "$svc")/docs" "$(recorded_http_base "$svc")/metrics"
    done
    say ""
    if [[ "$infra" == docker ]]; then
        say "  Traces (Jaeger UI): http://localhost:16686"
    fi
    # the console takes the token from the URL fragment (never sent to a server) into the tab's
    # session storage; a development operator token, signed with the services' secret
    local console_token
    console_token="$(AUTH_JWT_SECRET="${AUTH_JWT_SECRET:-longship-dev-secret-change-me}" TOKEN_SUB=operator \
        python3 "$LONGSHIP_ROOT/scripts/token.py" --operator 2>/dev/null || true)"
    say "  Operations console: $o/console#token=$console_token"
    say "    (a development operator token, valid 1 h; \`just token --operator\` prints a new one)"
    if ((PORT_OFFSET != 0)); then
        local dbs=()
        for svc in "${LONGSHIP_STOP_ORDER[@]}"; do dbs+=("$(db_name "$svc")"); done
        say "  This copy (LONGSHIP_PORT_OFFSET=$PORT_OFFSET): databases ${dbs[*]}, NATS prefix ${NATS_PREFIX_EFFECTIVE:-(none)}, state in $STATE_DIR"
    fi
    say "  Logs:  $LOG_DIR/<service>.log   ($(same_copy just logs '[service]'))"
    say "  Stop:  $(same_copy just down)        Status: $(same_copy just status)        Walk-through: $(same_copy just demo)"
    say ""
    say "Try it (tenant 'acme' via X-Tenant-Id, accepted because AUTH_ALLOW_TENANT_HEADER=true):"
    say ""
    say "  curl -sS -X PUT $i/v1/products/SKU-1 -H 'X-Tenant-Id: acme' -H 'Content-Type: application/json' -d '{\"name\":\"Widget\",\"price_cents\":1250,\"currency\":\"USD\",\"on_hand\":100}'"
    say ""
    say "  curl -sS -X PUT $p/v1/accounts/c-1 -H 'X-Tenant-Id: acme' -H 'Content-Type: application/json' -d '{\"balance_cents\":100000,\"currency\":\"USD\"}'"
    say ""
    say "  loc=\$(curl -sS -o /dev/null -w '%header{location}' -X POST $o/v1/orders -H 'X-Tenant-Id: acme' -H 'Content-Type: application/json' -d '{\"customer_id\":\"c-1\",\"currency\":\"USD\",\"items\":[{\"sku\":\"SKU-1\",\"quantity\":2}]}') && echo \"placed \$loc\" && sleep 1 && curl -sS \"$o\$loc\" -H 'X-Tenant-Id: acme'; echo"
    say ""
}

# --- 1. already up? --------------------------------------------------------------
MISSING=()
for svc in "${LONGSHIP_SERVICES[@]}"; do
    if service_pid "$svc" >/dev/null; then
        RUNNING+=("$svc")
    else
        [[ -e "$(pid_file "$svc")" ]] && warn "removing stale pid file of $svc (process gone)"
        forget_service "$svc"
        MISSING+=("$svc")
    fi
done

if ((${#MISSING[@]} == 0)); then
    not_ready=()
    for svc in "${RUNNING[@]}"; do
        [[ "$(http_code "$(recorded_http_base "$svc")/readyz")" == 200 ]] || not_ready+=("$svc")
    done
    if ((${#not_ready[@]} == 0)); then
        SUCCESS=1
        step "Longship is already up (pid files in $RUN_DIR); nothing to do."
        print_summary
        exit 0
    fi
    warn "already running but not ready yet: ${not_ready[*]}; waiting up to ${READY_TIMEOUT}s"
elif ((${#RUNNING[@]} > 0)); then
    step "already running: ${RUNNING[*]}; starting the missing: ${MISSING[*]}"
fi

# --- 2. infrastructure -----------------------------------------------------------
use_docker=0
INFRA_KIND="$(cat "$RUN_DIR/infra" 2>/dev/null || echo local)"
case "$INFRA_MODE" in
    docker)
        docker_engine_up || die "LONGSHIP_INFRA=docker, but no Docker engine is reachable (\`docker info\` fails)"
        use_docker=1
        ;;
    auto) if docker_engine_up; then use_docker=1; fi ;;
    local) ;;
esac

if ((${#MISSING[@]} > 0 && use_docker)); then
    docker compose version >/dev/null 2>&1 ||
        die "a Docker engine is reachable but the compose plugin is missing (\`docker compose version\` fails); install it, or run with LONGSHIP_INFRA=local"
    step "Docker engine found: starting infrastructure from docker/compose.yaml (${COMPOSE_INFRA[*]}); the services will run as local processes"
    running_infra="$(compose ps --services --status running 2>/dev/null || true)"
    for s in "${COMPOSE_INFRA[@]}"; do
        grep -qx "$s" <<<"$running_infra" || COMPOSE_STARTED+=("$s")
    done
    # Recorded before starting, so a later down.sh knows even if this run is interrupted.
    if ((${#COMPOSE_STARTED[@]} > 0)); then
        {
            cat "$RUN_DIR/compose-started" 2>/dev/null || true
            printf '%s\n' "${COMPOSE_STARTED[@]}"
        } | sort -u >"$RUN_DIR/compose-started.tmp"
        mv "$RUN_DIR/compose-started.tmp" "$RUN_DIR/compose-started"
    fi
    INFRA_KIND=docker
    echo docker >"$RUN_DIR/infra"
    if ! compose up -d --wait --wait-timeout 120 "${COMPOSE_INFRA[@]}"; then
        err "the compose infrastructure did not become healthy; recent container logs:"
        compose logs --tail 30 "${COMPOSE_INFRA[@]}" >&2 || true
        err "(if Postgres or NATS already run on this machine on 5432/4222, use them instead: LONGSHIP_INFRA=local just up)"
        exit 1
    fi
    export OTEL_EXPORTER_OTLP_ENDPOINT="${OTEL_EXPORTER_OTLP_ENDPOINT:-http://127.0.0.1:4317}"
elif ((${#MISSING[@]} > 0)); then
    INFRA_KIND=local
    if [[ "$INFRA_MODE" == auto ]]; then
        step "no Docker engine reachable: using the Postgres and NATS already running on this machine"
    else
        step "LONGSHIP_INFRA=local: using the Postgres and NATS already running on this machine"
    fi
fi

# --- 3. preflight: Postgres and NATS reachable (report every problem, start nothing) ---
pg_start_hint() {
    if [[ "$INFRA_KIND" == docker ]]; then
        echo "docker compose -f docker/compose.yaml up -d --wait postgres"
    else
        local v
        v="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n1)"
        echo "pg_ctlcluster --skip-systemctl-redirect ${v:-<version>} main start"
    fi
}
nats_start_hint() {
    if [[ "$INFRA_KIND" == docker ]]; then
        echo "docker compose -f docker/compose.yaml up -d --wait nats"
    else
        echo "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a $1 -p $2 -js -sd /var/lib/nats-server -l /var/log/nats-server.log"
    fi
}

# SQL as the admin user: the local psql client, or (Docker infra, no psql here) the one
# inside the postgres container.
psql_admin() {
    if command -v psql >/dev/null 2>&1; then
        PGCONNECT_TIMEOUT=5 psql "$PG_ADMIN_URL" -XtAq -v ON_ERROR_STOP=1 "$@"
    else
        compose exec -T postgres psql -U postgres -d postgres -XtAq -v ON_ERROR_STOP=1 "$@"
    fi
}

PROBLEMS=()
check_postgres() {
    local host port shown out rc=0
    host="$(url_host "$PG_ADMIN_URL")"
    port="$(url_port "$PG_ADMIN_URL" 5432)"
    shown="$(redact "$PG_ADMIN_URL")"
    if ! command -v psql >/dev/null 2>&1 && [[ "$INFRA_KIND" != docker ]]; then
        PROBLEMS+=("psql (the Postgres client) is not installed; it is needed to check Postgres and create the databases: apt-get install postgresql-client")
        return
    fi
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -t 3 -d "$PG_ADMIN_URL" >/dev/null 2>&1 || rc=$?
        if ((rc == 2 || rc == 1)); then
            PROBLEMS+=("Postgres is not reachable at $host:$port (looked at LONGSHIP_PG_URL=$shown)
       start it:  $(pg_start_hint)
       or point LONGSHIP_PG_URL at a running server")
            return
        fi
    fi
    if ! out="$(psql_admin \
        -c "select (rolsuper or rolcreaterole)::text || ',' || (rolsuper or rolcreatedb)::text from pg_roles where rolname = current_user" 2>&1)"; then
        PROBLEMS+=("Postgres at $host:$port does not accept us (LONGSHIP_PG_URL=$shown): $(head -n1 <<<"$out")
       start it if it is down:  $(pg_start_hint)")
        return
    fi
    if [[ "$out" != "true,true" ]]; then
        PROBLEMS+=("the Postgres user in LONGSHIP_PG_URL=$shown cannot create roles and databases (the migrations create the NOLOGIN role \$DATABASE_APP_ROLE); use a superuser such as postgres")
    fi
}

check_nats() {
    local host port line
    host="$(url_host "$NATS_URL_EFFECTIVE")"
    port="$(url_port "$NATS_URL_EFFECTIVE" 4222)"
    # A NATS server greets every connection with one `INFO {...}` line.
    # shellcheck disable=SC2016  # expanded by the inner shell
    line="$(tmo 5 bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 1; printf "connected "; IFS= read -r -t 4 l <&3 || true; printf "%s" "$l"' "$host" "$port" 2>/dev/null || true)"
    if [[ "$line" != connected* ]]; then
        PROBLEMS+=("NATS is not reachable at $host:$port (looked at NATS_URL=$(redact "$NATS_URL_EFFECTIVE"))
       start it:  $(nats_start_hint "$host" "$port")
       or point NATS_URL at a running server")
    elif line="${line#connected }" && [[ "$line" != INFO* ]]; then
        PROBLEMS+=("something listens at $host:$port (NATS_URL=$(redact "$NATS_URL_EFFECTIVE")) but it does not greet like a NATS server (no INFO line)")
    elif [[ "$line" != *'"jetstream":true'* ]]; then
        PROBLEMS+=("NATS at $host:$port runs without JetStream; restart it with -js (and a store dir, -sd DIR)")
    fi
}

if ((${#MISSING[@]} > 0)); then
    check_postgres
    check_nats
    if ((${#PROBLEMS[@]} > 0)); then
        for p in "${PROBLEMS[@]}"; do err "$p"; done
        err "nothing was started."
        exit 1
    fi
    ok "Postgres at $(url_host "$PG_ADMIN_URL"):$(url_port "$PG_ADMIN_URL" 5432) and NATS (JetStream) at $(url_host "$NATS_URL_EFFECTIVE"):$(url_port "$NATS_URL_EFFECTIVE" 4222) are reachable"
fi

# --- 4. ports free (checked before anything is created) -------------------------
# shellcheck disable=SC2016  # expanded by the inner shell
port_open() { tmo 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null; }
busy=()
for svc in "${MISSING[@]}"; do
    for port in "$(http_port "$svc")" "$(grpc_port "$svc")"; do
        if port_open "$port"; then
            who=""
            if command -v ss >/dev/null 2>&1; then
                who="$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'users:(([^)]*' | head -n1 | sed 's/users:((//' || true)"
            fi
            busy+=("port $port (for $svc) is already in use${who:+ by $who}")
        fi
    done
done
if ((${#busy[@]} > 0)); then
    for b in "${busy[@]}"; do err "$b"; done
    err "stop whatever holds it, or run beside it with LONGSHIP_PORT_OFFSET=<n> (added to all six ports). Nothing was started."
    exit 1
fi

# --- 5. databases --------------------------------------------------------------
for svc in "${MISSING[@]}"; do
    db="$(db_name "$svc")"
    if [[ -z "$(psql_admin -c "select 1 from pg_database where datname = '$db'")" ]]; then
        if psql_admin -c "create database \"$db\"" >/dev/null 2>&1; then
            ok "created database $db"
        elif [[ -z "$(psql_admin -c "select 1 from pg_database where datname = '$db'")" ]]; then
            die "could not create database $db (LONGSHIP_PG_URL=$(redact "$PG_ADMIN_URL"))"
        fi
    fi
done

# --- 6. build --------------------------------------------------------------------
target_dir="${CARGO_TARGET_DIR:-target}"
[[ "$target_dir" == /* ]] || target_dir="$LONGSHIP_ROOT/$target_dir"
BIN_DIR="$(abspath "${LONGSHIP_BIN_DIR:-$target_dir/$PROFILE}")"
if ((${#MISSING[@]} > 0)) && [[ "${LONGSHIP_NO_BUILD:-0}" != 1 ]]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust (rustup) or set LONGSHIP_NO_BUILD=1 with built binaries"
    build=(cargo build --bins)
    for svc in "${LONGSHIP_SERVICES[@]}"; do build+=(-p "$svc"); done
    [[ "$PROFILE" == release ]] && build+=(--release)
    step "building: ${build[*]}"
    (cd "$LONGSHIP_ROOT" && "${build[@]}" 9>&-) || die "the build failed (cargo output above); nothing was started"
    # the development PKI tool, built on its own (with the services its features would change theirs)
    if [[ "${GRPC_MTLS:-on}" != off ]]; then
        certs_build=(cargo build -p certs)
        [[ "$PROFILE" == release ]] && certs_build+=(--release)
        (cd "$LONGSHIP_ROOT" && "${certs_build[@]}" 9>&-) || die "building the certs tool failed; nothing was started"
    fi
fi
for svc in "${MISSING[@]}"; do
    [[ -x "$BIN_DIR/$svc" ]] || die "binary not found: $BIN_DIR/$svc (build it, or set LONGSHIP_BIN_DIR)"
done

# --- 7. migrate and start --------------------------------------------------------
PG_SOCKET_DIR=""
[[ "$INFRA_KIND" == docker ]] || PG_SOCKET_DIR="$(pg_socket_dir "$PG_ADMIN_URL")"
if [[ -n "$PG_SOCKET_DIR" ]]; then
    ok "the services reach Postgres through its Unix socket in $PG_SOCKET_DIR (LONGSHIP_PG_SOCKET_DIR=none for TCP)"
fi

# --- service identity: a development CA and a certificate per service (mTLS on, as in production)
CERT_DIR="$STATE_DIR/certs"
GRPC_SCHEME=https
if [[ "${GRPC_MTLS:-on}" == off ]]; then
    GRPC_SCHEME=http
    warn "GRPC_MTLS=off: the gRPC plane runs without TLS and without caller identity (anyone on the port can act for any tenant)"
elif ((${#MISSING[@]} > 0)); then
    certs_bin="$(abspath "${LONGSHIP_CERTS_BIN:-$BIN_DIR/certs}")"
    [[ -x "$certs_bin" ]] || die "certs tool not found: $certs_bin (cargo build -p certs, or GRPC_MTLS=off)"
    "$certs_bin" --dir "$CERT_DIR" --namespace dev "${LONGSHIP_SERVICES[@]}" 9>&- ||
        die "creating the development certificates in $CERT_DIR failed"
    ok "service identities: CA and certificates in $CERT_DIR (spiffe://longship/dev/<service>)"
fi

ENV_ARGS=()
service_env() {
    local svc="$1"
    ENV_ARGS=(
        "HTTP_ADDR=127.0.0.1:$(http_port "$svc")"
        "GRPC_ADDR=127.0.0.1:$(grpc_port "$svc")"
        "DATABASE_URL=$(pg_url_with_socket "$(pg_url_with_db "$PG_ADMIN_URL" "$(db_name "$svc")")" "$PG_SOCKET_DIR")"
        "NATS_URL=$NATS_URL_EFFECTIVE"
        # one local NATS server holds one replica (production's default is 3, on a cluster)
        "NATS_STREAM_REPLICAS=${NATS_STREAM_REPLICAS:-1}"
        "AUTH_ALLOW_TENANT_HEADER=true"
        "AUTH_JWT_ALGORITHM=${AUTH_JWT_ALGORITHM:-HS256}"
        "AUTH_JWT_SECRET=${AUTH_JWT_SECRET:-longship-dev-secret-change-me}"
        "OTEL_SERVICE_NAME=$svc"
        "RUST_LOG=${RUST_LOG:-info}"
        "LOG_FORMAT=${LOG_FORMAT:-pretty}"
        # The logs go to files: no ANSI colour codes in them (tracing-subscriber honours NO_COLOR).
        "NO_COLOR=${NO_COLOR:-1}"
    )
    if [[ "$GRPC_SCHEME" == https ]]; then
        ENV_ARGS+=("GRPC_MTLS=on" "TLS_CA_FILE=$CERT_DIR/ca.pem"
            "TLS_CERT_FILE=$CERT_DIR/$svc.pem" "TLS_KEY_FILE=$CERT_DIR/$svc.key")
    else
        ENV_ARGS+=("GRPC_MTLS=off")
    fi
    local v
    [[ -n "$NATS_PREFIX_EFFECTIVE" ]] && ENV_ARGS+=("NATS_PREFIX=$NATS_PREFIX_EFFECTIVE")
    for v in DATABASE_MAX_CONNECTIONS DATABASE_WORKER_MAX_CONNECTIONS DATABASE_APP_ROLE DATABASE_WORKER_ROLE DATABASE_PLAN_CACHE_MODE \
        LISTEN_BACKLOG HTTP_MAX_CONNECTIONS HTTP_HEADER_READ_TIMEOUT_SECS HTTP_IDLE_TIMEOUT_SECS GRPC_MAX_CONNECTIONS \
        GRPC_CONCURRENCY_PER_CONNECTION GRPC_HANDSHAKE_TIMEOUT_SECS GRPC_KEEPALIVE_INTERVAL_SECS \
        GRPC_KEEPALIVE_TIMEOUT_SECS GRPC_TCP_KEEPALIVE_SECS GRPC_MAX_CONNECTION_AGE_SECS GRPC_CALL_TIMEOUT_SECS \
        SHUTDOWN_TIMEOUT_SECS OTEL_EXPORTER_OTLP_ENDPOINT OTEL_TRACES_SAMPLER OTEL_TRACES_SAMPLER_ARG \
        NATS_STREAM_STORAGE NATS_STREAM_MAX_AGE_SECS NATS_STREAM_MAX_BYTES NATS_STREAM_DUPLICATE_WINDOW_SECS \
        NATS_CONSUMER_ACK_WAIT_SECS NATS_CONSUMER_MAX_DELIVER NATS_CONSUMER_MAX_ACK_PENDING; do
        [[ -n "${!v:-}" ]] && ENV_ARGS+=("$v=${!v}")
    done
    case "$svc" in
        order)
            ENV_ARGS+=("INVENTORY_GRPC_URL=$GRPC_SCHEME://127.0.0.1:$(grpc_port inventory)"
                "PAYMENT_GRPC_URL=$GRPC_SCHEME://127.0.0.1:$(grpc_port payment)"
                "CONSOLE_PEERS=inventory=http://127.0.0.1:$(http_port inventory),payment=http://127.0.0.1:$(http_port payment)")
            local peer peers=""
            for peer in "${LONGSHIP_SAGA_PEERS[@]}"; do
                peers+="${peers:+,}$peer=$GRPC_SCHEME://127.0.0.1:$(grpc_port "$peer")"
            done
            [[ -n "$peers" ]] && ENV_ARGS+=("SAGA_PEERS=$peers")
            [[ -n "${SAGA_DEADLINE_SECS:-}" ]] && ENV_ARGS+=("SAGA_DEADLINE_SECS=$SAGA_DEADLINE_SECS")
            [[ -n "${SAGA_RETRY_MAX_MS:-}" ]] && ENV_ARGS+=("SAGA_RETRY_MAX_MS=$SAGA_RETRY_MAX_MS")
            [[ -n "${SAGA_START_VERSION:-}" ]] && ENV_ARGS+=("SAGA_START_VERSION=$SAGA_START_VERSION")
            ;;
        inventory)
            [[ -n "${RESERVATION_TTL_SECS:-}" ]] && ENV_ARGS+=("RESERVATION_TTL_SECS=$RESERVATION_TTL_SECS")
            ;;
    esac
    return 0
}

if command -v setsid >/dev/null 2>&1; then detach=(setsid); else detach=(nohup); fi
((${#MISSING[@]} > 0)) && echo "$INFRA_KIND" >"$RUN_DIR/infra"
for svc in "${MISSING[@]}"; do
    log="$(log_file "$svc")"
    pf="$(pid_file "$svc")"
    [[ -s "$log" ]] && mv -f "$log" "$log.1"
    service_env "$svc"
    printf '=== %s: %s migrate\n' "$(date '+%F %T')" "$svc" >>"$log"
    if ! tmo 120 env "${ENV_ARGS[@]}" "$BIN_DIR/$svc" migrate >>"$log" 2>&1 </dev/null 9>&-; then
        err "\`$svc migrate\` failed or took over 120s (database $(db_name "$svc"))"
        log_tail "$svc"
        exit 1
    fi
    printf '=== %s: %s serving on %s (HTTP) %s (gRPC)\n' "$(date '+%F %T')" "$svc" "$(http_port "$svc")" "$(grpc_port "$svc")" >>"$log"
    rm -f "$pf"
    # The process writes its own pid, then execs the service (same pid), in a new session
    # so that it outlives this shell and its terminal.
    # shellcheck disable=SC2016  # expanded by the inner shell
    "${detach[@]}" bash -c 'echo "$$" >"$0"; exec "$@"' "$pf" \
        env "${ENV_ARGS[@]}" "$BIN_DIR/$svc" >>"$log" 2>&1 </dev/null 9>&- &
    for _ in $(seq 1 50); do
        [[ -s "$pf" ]] && break
        sleep 0.1
    done
    pid="$(head -n1 "$pf" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || die "$svc did not start (no pid written to $pf)"
    STARTED+=("$svc")
    proc_start "$pid" >"$RUN_DIR/$svc.started"
    http_base "$svc" >"$RUN_DIR/$svc.http"
    ok "started $svc (pid $pid, http :$(http_port "$svc"), grpc :$(grpc_port "$svc"), log $log)"
done

# --- 8. wait for readiness -------------------------------------------------------
step "waiting up to ${READY_TIMEOUT}s for /readyz of: ${LONGSHIP_SERVICES[*]}"
pending=("${LONGSHIP_SERVICES[@]}")
declare -A last_code=()
start_s=$SECONDS
next_note=$((SECONDS + 10))
while ((${#pending[@]} > 0)); do
    still=()
    for svc in "${pending[@]}"; do
        if ! service_pid "$svc" >/dev/null; then
            err "$svc exited during start-up"
            log_tail "$svc"
            exit 1
        fi
        code="$(http_code "$(recorded_http_base "$svc")/readyz")"
        last_code[$svc]="$code"
        if [[ "$code" == 200 ]]; then
            ok "$svc is ready ($((SECONDS - start_s))s)"
        else
            still+=("$svc")
        fi
    done
    pending=("${still[@]+"${still[@]}"}")
    ((${#pending[@]} == 0)) && break
    if ((SECONDS - start_s >= READY_TIMEOUT)); then
        for svc in "${pending[@]}"; do
            err "$svc not ready after ${READY_TIMEOUT}s (last GET $(recorded_http_base "$svc")/readyz -> ${last_code[$svc]/#000/no answer})"
            log_tail "$svc"
        done
        exit 1
    fi
    if ((SECONDS >= next_note)); then
        note=""
        for svc in "${pending[@]}"; do note+=" $svc(${last_code[$svc]/#000/no answer})"; done
        say "   still waiting:$note"
        next_note=$((SECONDS + 10))
    fi
    sleep 0.5
done

SUCCESS=1
step "Longship is up."
print_summary
