#!/usr/bin/env bash
# Argument, configuration and precondition handling of scripts/up.sh (and the
# nothing-running paths of down/status/logs). Needs no cargo, no Docker and no running
# platform: a fake `cargo` proves up.sh fails before building. Uses its own state dir,
# ports nothing listens on, and LONGSHIP_INFRA=local (never starts Docker).
# Usage: bash scripts/tests/test_up_preflight.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPTS="$(dirname "$HERE")"
# shellcheck source=scripts/tests/lib.sh
source "$HERE/lib.sh"

TMP="$(mktemp -d)"
HELPERS=()
cleanup() {
    local p
    for p in "${HELPERS[@]+"${HELPERS[@]}"}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

mkdir -p "$TMP/fakebin"
cat >"$TMP/fakebin/cargo" <<EOF
#!/bin/sh
touch "$TMP/cargo-called"
echo "fake cargo: must not be reached" >&2
exit 97
EOF
chmod +x "$TMP/fakebin/cargo"

export PATH="$TMP/fakebin:$PATH"
export LONGSHIP_STATE_DIR="$TMP/state"
export LONGSHIP_INFRA=local
unset LONGSHIP_PG_URL NATS_URL LONGSHIP_PORT_OFFSET LONGSHIP_PROFILE LONGSHIP_DB_SUFFIX LONGSHIP_NO_BUILD LONGSHIP_BIN_DIR

no_side_effects() { # no_side_effects NAME
    if [[ -e "$TMP/cargo-called" ]]; then
        fail "$1: cargo was run"
        rm -f "$TMP/cargo-called"
    elif compgen -G "$LONGSHIP_STATE_DIR/run/*.pid" >/dev/null; then
        fail "$1: pid files were written" "$(ls "$LONGSHIP_STATE_DIR/run")"
    else
        pass "$1: nothing built or started"
    fi
}

# A local TCP server for fake "NATS" greetings; sets SERVED_PORT. Not to be called in $(...):
# the helper must be a child of this shell (so cleanup can stop it) and must not hold a pipe.
SERVED_PORT=""
serve_line() { # serve_line LINE   (empty LINE: accept and say nothing)
    local portfile="$TMP/port.$RANDOM"
    python3 - "$1" "$portfile" >/dev/null 2>&1 <<'EOF' &
import socket, sys, threading, time
line, portfile = sys.argv[1], sys.argv[2]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(16)
open(portfile, "w").write(str(s.getsockname()[1]))
deadline = time.time() + 120
s.settimeout(1)
while time.time() < deadline:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    if line:
        c.sendall((line + "\r\n").encode())
    threading.Timer(6, c.close).start()
EOF
    HELPERS+=("$!")
    for _ in $(seq 1 50); do [[ -s "$portfile" ]] && break; sleep 0.1; done
    SERVED_PORT="$(cat "$portfile")"
}

pg_up=0
if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -t 2 -d postgres://postgres@127.0.0.1:5432/postgres; then pg_up=1; fi
nats_up=0
if timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222' 2>/dev/null; then nats_up=1; fi

closed_pg="$(free_port)"
closed_nats="$(free_port)"

# --- arguments and configuration -----------------------------------------------------
run_cmd bash "$SCRIPTS/up.sh" --help
expect_rc "up.sh --help exits 0" 0
expect_out "up.sh --help documents LONGSHIP_PORT_OFFSET" LONGSHIP_PORT_OFFSET

run_cmd bash "$SCRIPTS/up.sh" order
expect_rc "up.sh rejects arguments" nonzero
expect_out "up.sh names the stray argument" "got 'order'"

LONGSHIP_PORT_OFFSET=abc run_cmd bash "$SCRIPTS/up.sh"
expect_rc "bad LONGSHIP_PORT_OFFSET fails" nonzero
expect_out "bad LONGSHIP_PORT_OFFSET is named" "LONGSHIP_PORT_OFFSET must be a non-negative integer"

LONGSHIP_PORT_OFFSET=20000 run_cmd bash "$SCRIPTS/up.sh"
expect_rc "too large LONGSHIP_PORT_OFFSET fails" nonzero
expect_out "too large LONGSHIP_PORT_OFFSET is explained" "past 65535"

LONGSHIP_PROFILE=fast run_cmd bash "$SCRIPTS/up.sh"
expect_rc "bad LONGSHIP_PROFILE fails" nonzero
expect_out "bad LONGSHIP_PROFILE is named" "LONGSHIP_PROFILE must be 'debug' or 'release'"

LONGSHIP_DB_SUFFIX='_x; drop' run_cmd bash "$SCRIPTS/up.sh"
expect_rc "unsafe LONGSHIP_DB_SUFFIX fails" nonzero
expect_out "unsafe LONGSHIP_DB_SUFFIX is named" "LONGSHIP_DB_SUFFIX may contain only"

LONGSHIP_INFRA=kubernetes run_cmd bash "$SCRIPTS/up.sh"
expect_rc "bad LONGSHIP_INFRA fails" nonzero
no_side_effects "invalid configuration"

# --- unreachable infrastructure --------------------------------------------------------
NATS_URL="nats://127.0.0.1:$closed_nats" LONGSHIP_PG_URL="postgres://postgres@127.0.0.1:$closed_pg/postgres" \
    run_cmd bash "$SCRIPTS/up.sh"
expect_rc "both unreachable: fails" nonzero
expect_out "both unreachable: names NATS and where it looked" "NATS is not reachable at 127.0.0.1:$closed_nats"
expect_out "both unreachable: names Postgres and where it looked" "Postgres is not reachable at 127.0.0.1:$closed_pg"
expect_out "both unreachable: gives the NATS start command" "nats-server -- -a 127.0.0.1 -p $closed_nats -js"
expect_out "both unreachable: gives the Postgres start command" "pg_ctlcluster --skip-systemctl-redirect"
expect_out "both unreachable: says nothing was started" "nothing was started"
no_side_effects "both unreachable"

NATS_URL="nats://127.0.0.1:$closed_nats" run_cmd bash "$SCRIPTS/up.sh"
expect_rc "NATS on a closed port: fails fast" nonzero
expect_out "NATS on a closed port: names NATS" "NATS is not reachable at 127.0.0.1:$closed_nats (looked at NATS_URL=nats://127.0.0.1:$closed_nats)"
if ((pg_up)); then
    expect_no_out "NATS on a closed port: does not blame the running Postgres" "Postgres is not reachable"
else
    fail "NATS on a closed port: Postgres blame check needs Postgres at 127.0.0.1:5432 (pg_ctlcluster --skip-systemctl-redirect 15 main start)"
fi
no_side_effects "NATS on a closed port"

if ((nats_up)); then
    LONGSHIP_PG_URL="postgres://postgres@127.0.0.1:$closed_pg/postgres" run_cmd bash "$SCRIPTS/up.sh"
    expect_rc "Postgres on a closed port: fails" nonzero
    expect_out "Postgres on a closed port: names Postgres" "Postgres is not reachable at 127.0.0.1:$closed_pg (looked at LONGSHIP_PG_URL=postgres://postgres@127.0.0.1:$closed_pg/postgres)"
    expect_no_out "Postgres on a closed port: does not blame the running NATS" "NATS is not"
    no_side_effects "Postgres on a closed port"
else
    fail "Postgres on a closed port needs NATS at 127.0.0.1:4222 to isolate the check (nats-server -js -p 4222)"
fi

serve_line 'INFO {"server_id":"FAKE","version":"2.9.10","headers":true,"max_payload":1048576}'
NATS_URL="nats://127.0.0.1:$SERVED_PORT" LONGSHIP_PG_URL="postgres://postgres@127.0.0.1:$closed_pg/postgres" run_cmd bash "$SCRIPTS/up.sh"
expect_rc "NATS without JetStream: fails" nonzero
expect_out "NATS without JetStream: says so" "runs without JetStream"
no_side_effects "NATS without JetStream"

serve_line ''
NATS_URL="nats://user:secret@127.0.0.1:$SERVED_PORT" LONGSHIP_PG_URL="postgres://postgres:hunter2@127.0.0.1:$closed_pg/postgres" run_cmd bash "$SCRIPTS/up.sh"
expect_rc "a silent non-NATS listener: fails" nonzero
expect_out "a silent non-NATS listener: says it is not NATS" "does not greet like a NATS server"
expect_no_out "passwords in URLs are not printed (NATS)" "secret"
expect_no_out "passwords in URLs are not printed (Postgres)" "hunter2"
no_side_effects "a silent non-NATS listener"

# --- ports already taken (needs the real Postgres and NATS to get that far) ---------------
if ((pg_up && nats_up)); then
    offset="$(pick_offset)"
    taken=$((8081 + offset))
    python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(1); time.sleep(120)' "$taken" >/dev/null 2>&1 &
    HELPERS+=("$!")
    sleep 0.5
    LONGSHIP_PORT_OFFSET="$offset" LONGSHIP_DB_SUFFIX=_preflight_never_created run_cmd bash "$SCRIPTS/up.sh"
    expect_rc "a taken port: fails" nonzero
    expect_out "a taken port: names the port and the service" "port $taken (for inventory) is already in use"
    expect_out "a taken port: suggests LONGSHIP_PORT_OFFSET" "LONGSHIP_PORT_OFFSET"
    no_side_effects "a taken port"
    if [[ -n "$(psql postgres://postgres@127.0.0.1:5432/postgres -XtAc "select 1 from pg_database where datname like '%_preflight_never_created'")" ]]; then
        fail "a taken port: databases were created before the port check"
    else
        pass "a taken port: no database was created"
    fi
else
    fail "a taken port needs Postgres at 127.0.0.1:5432 and NATS (JetStream) at 127.0.0.1:4222: start them"
fi

# --- nothing of ours running ------------------------------------------------------------
run_cmd bash "$SCRIPTS/status.sh"
expect_rc "status with nothing running exits 0" 0
expect_out "status says nothing of ours is running" "nothing of ours is running"

run_cmd bash "$SCRIPTS/down.sh"
expect_rc "down with nothing running exits 0" 0
expect_out "down says nothing of ours is running" "nothing of ours is running"

run_cmd bash "$SCRIPTS/logs.sh" shipping
expect_rc "logs of an unknown service fails" nonzero
expect_out "logs names the known services" "choose one of"

LONGSHIP_LOGS_FOLLOW=0 run_cmd bash "$SCRIPTS/logs.sh"
expect_rc "logs with no logs yet fails" nonzero
expect_out "logs says there are no logs yet" "no logs yet"

summary
