# shellcheck shell=bash disable=SC2034  # (variables here are used by the scripts that source it)
# Shared configuration and helpers for scripts/{up,down,status,logs}.sh.
# Sourced, never executed. Everything here is driven by environment variables
# (listed by scripts/up.sh --help); nothing in this file starts or stops anything.

if ((BASH_VERSINFO[0] < 4)); then
    echo "error: these scripts need bash 4 or newer (this is $BASH_VERSION; on macOS: brew install bash)" >&2
    exit 1
fi

# --- locations --------------------------------------------------------------
LONGSHIP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly LONGSHIP_ROOT

# The services, in start order (order last: it calls the other two).
# `just new-service NAME` puts NAME first here and last in LONGSHIP_STOP_ORDER.
LONGSHIP_SERVICES=(inventory payment order)
# Stop order: the orchestrator first, so no new saga step starts while its
# participants shut down. Also the order in which status and the summary list them.
LONGSHIP_STOP_ORDER=(order inventory payment)
# Saga participants beyond inventory and payment: order gets them in SAGA_PEERS (name=URL).
# `just new-service NAME --saga-participant` adds NAME here.
LONGSHIP_SAGA_PEERS=()

if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then
    _c_red=$'\e[31m' _c_green=$'\e[32m' _c_yellow=$'\e[33m' _c_bold=$'\e[1m' _c_off=$'\e[0m'
else
    _c_red='' _c_green='' _c_yellow='' _c_bold='' _c_off=''
fi

say() { printf '%s\n' "$*"; }
step() { printf '%s==>%s %s\n' "$_c_bold" "$_c_off" "$*"; }
ok() { printf '%s ok%s  %s\n' "$_c_green" "$_c_off" "$*"; }
warn() { printf '%swarning:%s %s\n' "$_c_yellow" "$_c_off" "$*" >&2; }
err() { printf '%serror:%s %s\n' "$_c_red" "$_c_off" "$*" >&2; }
die() {
    err "$*"
    exit 1
}

# Make a path absolute (relative paths are taken from the caller's cwd).
abspath() {
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s/%s\n' "$PWD" "$1" ;;
    esac
}

# --- configuration (validated once, used by every script) --------------------
longship_config() {
    PORT_OFFSET="${LONGSHIP_PORT_OFFSET:-0}"
    [[ "$PORT_OFFSET" =~ ^[0-9]+$ ]] ||
        die "LONGSHIP_PORT_OFFSET must be a non-negative integer, got '$PORT_OFFSET'"
    PORT_OFFSET=$((10#$PORT_OFFSET))
    ((50053 + PORT_OFFSET <= 65535)) ||
        die "LONGSHIP_PORT_OFFSET=$PORT_OFFSET pushes gRPC port 50053 past 65535 (max offset 15482)"

    # A non-zero offset is a second copy beside the default one: unless they are set explicitly,
    # it gets its own state directory, databases and NATS subjects too, so LONGSHIP_PORT_OFFSET
    # alone is enough (and `LONGSHIP_PORT_OFFSET=N just down` stops exactly that copy).
    local copy_state="" copy_suffix="" copy_prefix=""
    if ((PORT_OFFSET != 0)); then
        copy_state="$LONGSHIP_ROOT/.longship-$PORT_OFFSET"
        copy_suffix="_$PORT_OFFSET"
        copy_prefix="copy$PORT_OFFSET"
    fi
    STATE_DIR="$(abspath "${LONGSHIP_STATE_DIR:-${copy_state:-$LONGSHIP_ROOT/.longship}}")"
    LOG_DIR="$STATE_DIR/logs"
    RUN_DIR="$STATE_DIR/run"

    # `${VAR-default}`: an explicitly empty LONGSHIP_DB_SUFFIX or NATS_PREFIX means "none".
    DB_SUFFIX="${LONGSHIP_DB_SUFFIX-$copy_suffix}"
    [[ "$DB_SUFFIX" =~ ^[a-z0-9_]*$ ]] ||
        die "LONGSHIP_DB_SUFFIX may contain only [a-z0-9_], got '$DB_SUFFIX'"
    ((${#DB_SUFFIX} <= 40)) || die "LONGSHIP_DB_SUFFIX is too long (max 40 characters)"

    PROFILE="${LONGSHIP_PROFILE:-debug}"
    case "$PROFILE" in
        debug | release) ;;
        *) die "LONGSHIP_PROFILE must be 'debug' or 'release', got '$PROFILE'" ;;
    esac

    NATS_PREFIX_EFFECTIVE="${NATS_PREFIX-$copy_prefix}"
    [[ "$NATS_PREFIX_EFFECTIVE" =~ ^[A-Za-z0-9-]*$ ]] ||
        die "NATS_PREFIX may contain only letters, digits and dashes, got '$NATS_PREFIX_EFFECTIVE'"

    PG_ADMIN_URL="${LONGSHIP_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
    NATS_URL_EFFECTIVE="${NATS_URL:-nats://127.0.0.1:4222}"

    INFRA_MODE="${LONGSHIP_INFRA:-auto}"
    case "$INFRA_MODE" in
        auto | docker | local) ;;
        *) die "LONGSHIP_INFRA must be auto, docker or local, got '$INFRA_MODE'" ;;
    esac

    READY_TIMEOUT="${LONGSHIP_READY_TIMEOUT:-90}"
    [[ "$READY_TIMEOUT" =~ ^[0-9]+$ ]] || die "LONGSHIP_READY_TIMEOUT must be whole seconds, got '$READY_TIMEOUT'"
    STOP_TIMEOUT="${LONGSHIP_STOP_TIMEOUT:-20}"
    [[ "$STOP_TIMEOUT" =~ ^[0-9]+$ ]] || die "LONGSHIP_STOP_TIMEOUT must be whole seconds, got '$STOP_TIMEOUT'"

    COMPOSE_FILE="$LONGSHIP_ROOT/docker/compose.yaml"
    # Infra services of docker/compose.yaml that up.sh may start (never the apps profile).
    COMPOSE_INFRA=(postgres nats otel-collector jaeger)
}

# The command that runs another recipe (`just down`, `just status`, ...) on the same copy: the
# variables that select it (a port offset, an explicit state directory) followed by the command.
same_copy() {
    local vars=()
    ((PORT_OFFSET != 0)) && vars+=("LONGSHIP_PORT_OFFSET=$PORT_OFFSET")
    [[ -n "${LONGSHIP_STATE_DIR:-}" ]] && vars+=("LONGSHIP_STATE_DIR=$(printf '%q' "$STATE_DIR")")
    printf '%s\n' "${vars[*]:+${vars[*]} }$*"
}

is_service() {
    local s
    for s in "${LONGSHIP_SERVICES[@]}"; do [[ "$s" == "$1" ]] && return 0; done
    return 1
}

# Contract ports (ARCHITECTURE.md section 3) plus LONGSHIP_PORT_OFFSET.
http_port() {
    case "$1" in
        order) echo $((8080 + PORT_OFFSET)) ;;
        inventory) echo $((8081 + PORT_OFFSET)) ;;
        payment) echo $((8082 + PORT_OFFSET)) ;;
        # new-service:http-ports -- `just new-service NAME` adds NAME above this line
    esac
}
grpc_port() {
    case "$1" in
        order) echo $((50051 + PORT_OFFSET)) ;;
        inventory) echo $((50052 + PORT_OFFSET)) ;;
        payment) echo $((50053 + PORT_OFFSET)) ;;
        # new-service:grpc-ports -- `just new-service NAME` adds NAME above this line
    esac
}
db_name() {
    case "$1" in
        order) echo "orders$DB_SUFFIX" ;;
        inventory) echo "inventory$DB_SUFFIX" ;;
        payment) echo "payments$DB_SUFFIX" ;;
        # new-service:databases -- `just new-service NAME` adds NAME above this line
    esac
}
http_base() { echo "http://127.0.0.1:$(http_port "$1")"; }

# postgres://user@host:port/db?opts -> same URL with db replaced.
pg_url_with_db() {
    local url="$1" db="$2" query="" rest scheme authority
    if [[ "$url" == *\?* ]]; then
        query="?${url#*\?}"
        url="${url%%\?*}"
    fi
    scheme="${url%%://*}"
    rest="${url#*://}"
    authority="${rest%%/*}"
    printf '%s://%s/%s%s\n' "$scheme" "$authority" "$db" "$query"
}

# the postgres:// URL connecting through the Unix socket in directory $2 (libpq and sqlx both read
# `host=/dir` from the query); unchanged when $2 is empty.
pg_url_with_socket() {
    local url="$1" dir="$2"
    [[ -n "$dir" ]] || { printf '%s\n' "$url"; return; }
    if [[ "$url" == *\?* ]]; then printf '%s&host=%s\n' "$url" "$dir"; else printf '%s?host=%s\n' "$url" "$dir"; fi
}

# pg_socket_dir URL: the Unix-socket directory through which the Postgres of URL accepts us, or
# nothing (then connect over TCP). Only for a server on this machine, and only when a connection
# through the socket works (pg_hba may say `peer` for local connections where it says `trust` for
# TCP). LONGSHIP_PG_SOCKET_DIR: auto (default) | a directory | none.
pg_socket_dir() {
    local url="$1" want="${LONGSHIP_PG_SOCKET_DIR:-auto}" host port dir candidates=()
    [[ "$want" == none ]] && return 0
    command -v psql >/dev/null 2>&1 || return 0
    host="$(url_host "$url")"
    port="$(url_port "$url" 5432)"
    if [[ "$want" == auto ]]; then
        case "$host" in 127.0.0.1 | localhost | ::1) ;; *) return 0 ;; esac
        candidates=(/var/run/postgresql /run/postgresql /tmp)
    else
        candidates=("$want")
    fi
    for dir in "${candidates[@]}"; do
        [[ -S "$dir/.s.PGSQL.$port" ]] || continue
        if PGCONNECT_TIMEOUT=5 psql "$(pg_url_with_socket "$url" "$dir")" -XtAq -c 'select 1' >/dev/null 2>&1; then
            echo "$dir"
            return 0
        fi
    done
    [[ "$want" == auto ]] || warn "LONGSHIP_PG_SOCKET_DIR=$want: no usable Postgres socket there; using TCP"
}

# host and port of a postgres:// or nats:// URL (first server of a list).
url_host() {
    local rest="${1#*://}"
    rest="${rest%%[/?,]*}"
    rest="${rest##*@}"
    if [[ "$rest" == \[* ]]; then
        rest="${rest#\[}"
        echo "${rest%%]*}"
    else
        echo "${rest%%:*}"
    fi
}
url_port() {
    local rest="${1#*://}" default="$2"
    rest="${rest%%[/?,]*}"
    rest="${rest##*@}"
    rest="${rest##*]}"
    if [[ "$rest" == *:* && -n "${rest##*:}" ]]; then echo "${rest##*:}"; else echo "$default"; fi
}

# tmo SECONDS CMD...: run CMD with a time limit where coreutils' timeout exists (as
# gtimeout on macOS with coreutils); without one, run it unbounded.
tmo() {
    if command -v timeout >/dev/null 2>&1; then
        timeout "$@"
    elif command -v gtimeout >/dev/null 2>&1; then
        gtimeout "$@"
    else
        shift
        "$@"
    fi
}

# --- processes ----------------------------------------------------------------
pid_file() { echo "$RUN_DIR/$1.pid"; }
log_file() { echo "$LOG_DIR/$1.log"; }

# An identity for a process's start, recorded at launch so that a pid reused by an
# unrelated process is never mistaken for ours: on Linux its start time in clock ticks
# since boot (/proc/PID/stat field 22, immune to clock changes), elsewhere what `ps`
# prints as its start. Empty when the process is gone.
proc_start() {
    local stat fields
    if [[ -r "/proc/$1/stat" ]]; then
        stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
        read -r -a fields <<<"${stat##*) }" # after "(comm) ": field 3 onwards
        echo "ticks:${fields[19]:-}"
        return 0
    fi
    { TZ=UTC LC_ALL=C ps -o lstart= -p "$1" 2>/dev/null || true; } | sed 's/^ *//;s/ *$//'
}

# True while <pid> runs (a zombie waiting to be reaped counts as gone).
pid_alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    stat="$(ps -o stat= -p "$1" 2>/dev/null || true)"
    [[ -n "$stat" && "$stat" != Z* ]]
}

# Prints the pid of <svc> if its pid file names a live process that is still
# the one we started; returns 1 otherwise.
service_pid() {
    local svc="$1" pf pid started
    pf="$(pid_file "$svc")"
    [[ -f "$pf" ]] || return 1
    pid="$(head -n1 "$pf" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    started="$(cat "$RUN_DIR/$svc.started" 2>/dev/null || true)"
    if [[ -n "$started" && "$(proc_start "$pid")" != "$started" ]]; then
        return 1
    fi
    echo "$pid"
}

forget_service() { rm -f "$(pid_file "$1")" "$RUN_DIR/$1.started" "$RUN_DIR/$1.http"; }

# The HTTP base recorded by the up.sh that started <svc>, else from the current config.
recorded_http_base() {
    local f="$RUN_DIR/$1.http"
    if [[ -s "$f" ]]; then head -n1 "$f"; else http_base "$1"; fi
}

# HTTP status of GET <url> ("000" when nothing answers).
http_code() {
    curl -s -o /dev/null -m "${2:-2}" -w '%{http_code}' "$1" 2>/dev/null || true
}

# SIGTERM, wait up to STOP_TIMEOUT seconds, then SIGKILL. Returns when gone.
stop_pid() {
    local svc="$1" pid="$2" waited=0
    kill -TERM "$pid" 2>/dev/null || return 0
    while pid_alive "$pid"; do
        if ((waited >= STOP_TIMEOUT * 10)); then
            warn "$svc (pid $pid) did not stop within ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

# --- docker -------------------------------------------------------------------
docker_engine_up() {
    command -v docker >/dev/null 2>&1 && tmo 15 docker info >/dev/null 2>&1
}
compose() { docker compose -f "$COMPOSE_FILE" "$@"; }
