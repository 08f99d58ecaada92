#!/usr/bin/env bash
# The benchmark behind `just bench`: builds the services and loadgen, starts a platform of its own
# beside any running one (its own ports, databases, NATS prefix and state directory, via
# scripts/up.sh), runs loadgen against it and tears everything down again, whatever happens.
#
# Usage: tools/loadgen/bench.sh [--quick] [--release|--debug] [--census] [--keep] [loadgen options]
#   (no options)  the default profile, ~60 s of load on a release build
#   --quick       ~10 s smoke (debug build unless --release): a functional check, no timing claims
#   --census      services connect through `loadgen pg-proxy`, which counts statements and round
#                 trips per saga (pg_stat_statements needs a server restart; the proxy costs CPU,
#                 so take throughput from a run without it)
#   --keep        leave the platform's databases and streams (and logs) after the run
#   --mtls-compare run twice, GRPC_MTLS=on then off, and print CPU ms per saga side by side
#   anything else goes to loadgen (tools/loadgen/src/cli.rs, or: cargo run -p loadgen -- --help)
# Environment: LONGSHIP_BENCH_PORT_OFFSET (first port offset tried, default 700), NATS_URL,
# BENCH_RUST_LOG (the services' RUST_LOG, default info), and the platform sizing below.
#
# Platform sizing (docs/performance.md has the measurements behind each default; set any of them
# to measure another configuration, and the report records what ran):
#   TOKIO_WORKER_THREADS      worker threads per service (default: half the cores, at least 1:
#                             the services, Postgres, NATS and loadgen share the machine)
#   DATABASE_MAX_CONNECTIONS  pool size per service (default 8)
#   LONGSHIP_PG_URL           admin URL the services' URLs derive from (default
#                             postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable: TLS to
#                             a Postgres on the loopback interface protects nothing and costs CPU)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

# --mtls-compare: the same run twice, with mTLS on (as deployed) and off, each on a platform of its
# own, then CPU ms per saga side by side (tools/loadgen/compare_mtls.py, also in the second report)
for a in "$@"; do
    if [[ "$a" == --mtls-compare ]]; then
        rest=()
        for b in "$@"; do [[ "$b" == --mtls-compare ]] || rest+=("$b"); done
        reports=()
        for mode in on off; do
            before="$(ls -1d target/bench/*/ 2>/dev/null | sort | tail -1 || true)"
            GRPC_MTLS=$mode bash "${BASH_SOURCE[0]}" ${rest[@]+"${rest[@]}"}
            after="$(ls -1d target/bench/*/ 2>/dev/null | sort | tail -1 || true)"
            [[ -n "$after" && "$after" != "$before" ]] || { echo "error: no report from the mTLS $mode run" >&2; exit 1; }
            reports+=("${after}report.json")
        done
        python3 tools/loadgen/compare_mtls.py "${reports[0]}" "${reports[1]}" "$(dirname "${reports[1]}")/mtls-compare.md"
        exit 0
    fi
done

# shellcheck source=../../scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh" # pg_socket_dir, pg_url_with_socket
say() { printf '==> %s\n' "$*" >&2; }

quick=0 keep=0 census=0 profile="" args=()
for a in "$@"; do
    case "$a" in
        --quick) quick=1 args+=("$a") ;;
        --release) profile=release ;;
        --debug) profile=debug ;;
        --keep) keep=1 ;;
        --census) census=1 ;;
        *) args+=("$a") ;;
    esac
done
if [[ -z "$profile" ]]; then
    if ((quick)); then profile=debug; else profile=release; fi
fi

# --- a free set of six ports -------------------------------------------------------
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
offset=""
for ((o = ${LONGSHIP_BENCH_PORT_OFFSET:-700}; o < ${LONGSHIP_BENCH_PORT_OFFSET:-700} + 200; o += 10)); do
    free=1
    for p in 8080 8081 8082 50051 50052 50053; do
        if port_busy $((p + o)); then free=0 && break; fi
    done
    if ((free)); then offset=$o && break; fi
done
[[ -n "$offset" ]] || { echo "error: no free port offset found for the bench platform" >&2; exit 1; }

run="$(date +%Y%m%d%H%M%S)$$"
suffix="_bench_${run}"
prefix="lgbench${run}"
state="$ROOT/target/bench/.platform-$run"
pg_url="${LONGSHIP_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"
cores="$(nproc 2>/dev/null || echo 2)"
export TOKIO_WORKER_THREADS="${TOKIO_WORKER_THREADS:-$((cores / 2 > 0 ? cores / 2 : 1))}"
export DATABASE_MAX_CONNECTIONS="${DATABASE_MAX_CONNECTIONS:-8}"
mkdir -p "$state"

# --- build -----------------------------------------------------------------------------
# two commands, each with the package set it always has (up.sh builds the services alone), so
# cargo's feature unification never differs between runs and nothing is rebuilt for nothing
release=()
[[ "$profile" == release ]] && release=(--release)
say "building ($profile): the services and loadgen"
cargo build "${release[@]}" --bins -p order -p inventory -p payment
cargo build "${release[@]}" -p loadgen
[[ "${GRPC_MTLS:-on}" == off ]] || cargo build "${release[@]}" -p certs
loadgen="${CARGO_TARGET_DIR:-$ROOT/target}/$profile/loadgen"

platform_env=(
    "LONGSHIP_PORT_OFFSET=$offset"
    "LONGSHIP_DB_SUFFIX=$suffix"
    "LONGSHIP_STATE_DIR=$state"
    "NATS_PREFIX=$prefix"
    "NATS_STREAM_REPLICAS=${NATS_STREAM_REPLICAS:-1}"
    "LONGSHIP_PROFILE=$profile"
    "LONGSHIP_NO_BUILD=1"
    "RUST_LOG=${BENCH_RUST_LOG:-info}"
    "LONGSHIP_PG_URL=$pg_url"
    "GRPC_MTLS=${GRPC_MTLS:-on}"
)

proxy_pid=""
teardown() {
    local rc=$?
    trap - EXIT INT TERM
    say "tearing down the bench platform (port offset $offset, databases *$suffix, NATS prefix $prefix)"
    env "${platform_env[@]}" bash scripts/down.sh >/dev/null 2>&1 || echo "warning: down.sh failed; see $state" >&2
    if [[ -n "$proxy_pid" ]]; then kill "$proxy_pid" 2>/dev/null || true; fi
    if ((keep)); then
        say "kept: databases *$suffix, streams of prefix $prefix, logs in $state/logs"
    else
        "$loadgen" cleanup --pg-url "$pg_url" --db-suffix "$suffix" --nats-prefix "$prefix" >/dev/null 2>&1 ||
            echo "warning: cleanup failed: $loadgen cleanup --db-suffix $suffix --nats-prefix $prefix" >&2
        if ((rc == 0)); then rm -rf "$state"; else say "platform logs kept in $state/logs"; fi
    fi
    exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# loadgen (its admin queries and the commit ceiling) connects the way the services do: through
# Postgres' Unix socket when scripts/up.sh picks it (LONGSHIP_PG_SOCKET_DIR), else over TCP
pg_socket=""
((census)) || pg_socket="$(pg_socket_dir "$pg_url")"
loadgen_pg_url="$(pg_url_with_socket "$pg_url" "$pg_socket")"
loadgen_args=(--port-offset "$offset" --db-suffix "$suffix" --nats-prefix "$prefix" --state-dir "$state" --pg-url "$loadgen_pg_url")
if ((census)); then
    upstream="$(sed -E 's#^[a-z]+://([^@/]*@)?([^/?]+).*#\2#' <<<"$pg_url")"
    [[ "$upstream" == *:* ]] || upstream="$upstream:5432"
    proxy_port=$((25432 + offset))
    "$loadgen" pg-proxy --listen "127.0.0.1:$proxy_port" --upstream "$upstream" --stats-file "$state/census.json" &
    proxy_pid=$!
    platform_env+=("LONGSHIP_PG_URL=$(sed -E "s#^([a-z]+://([^@/]*@)?)[^/?]+#\1127.0.0.1:$proxy_port#" <<<"$pg_url")")
    loadgen_args+=(--census-file "$state/census.json")
    sleep 0.5
fi

say "starting the bench platform ($profile build, port offset $offset)"
env "${platform_env[@]}" bash scripts/up.sh >"$state/up.log" 2>&1 || {
    cat "$state/up.log" >&2
    exit 1
}

say "running loadgen ${args[*]}"
# loadgen itself keeps tokio's default threads; it records the platform sizing in the report
BENCH_PLATFORM_CONFIG="GRPC_MTLS=${GRPC_MTLS:-on} TOKIO_WORKER_THREADS=$TOKIO_WORKER_THREADS DATABASE_MAX_CONNECTIONS=$DATABASE_MAX_CONNECTIONS RUST_LOG=${BENCH_RUST_LOG:-info} LONGSHIP_PG_URL=$pg_url${pg_socket:+ (services through the socket in $pg_socket)}" \
    env -u TOKIO_WORKER_THREADS "$loadgen" bench "${loadgen_args[@]}" "${args[@]}"
