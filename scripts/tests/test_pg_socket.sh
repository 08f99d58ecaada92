#!/usr/bin/env bash
# How scripts/up.sh picks the services' transport to Postgres (scripts/lib/common.sh
# pg_socket_dir, pg_url_with_socket): a Unix socket only for a server on this machine that accepts
# us there, TCP otherwise, and always what LONGSHIP_PG_SOCKET_DIR says. Needs psql; the checks
# that need a local socket say so when there is none.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=scripts/tests/lib.sh
source "$HERE/lib.sh"
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"

check() { # check NAME GOT WANT
    if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1: got '$2', wanted '$3'"; fi
}

check "a URL without query gets ?host=" "$(pg_url_with_socket 'postgres://u@127.0.0.1:5432/db' /run/pg)" \
    'postgres://u@127.0.0.1:5432/db?host=/run/pg'
check "a URL with a query gets &host=" "$(pg_url_with_socket 'postgres://u@127.0.0.1/db?sslmode=disable' /tmp)" \
    'postgres://u@127.0.0.1/db?sslmode=disable&host=/tmp'
check "no directory leaves the URL alone" "$(pg_url_with_socket 'postgres://u@h/db' '')" 'postgres://u@h/db'

URL="postgres://postgres@127.0.0.1:5432/postgres"
check "none means TCP" "$(LONGSHIP_PG_SOCKET_DIR=none pg_socket_dir "$URL")" ""
check "a server on another host is reached over TCP" \
    "$(pg_socket_dir 'postgres://postgres@db.example.invalid:5432/postgres')" ""
empty="$(mktemp -d)"
RC=0
OUT="$(LONGSHIP_PG_SOCKET_DIR="$empty" pg_socket_dir "$URL" 2>&1)" || RC=$?
check "a directory without a socket falls back to TCP" "$(LONGSHIP_PG_SOCKET_DIR="$empty" pg_socket_dir "$URL" 2>/dev/null)" ""
expect_out "... and says so" "no usable Postgres socket"
rmdir "$empty"

local_dir=""
for d in /var/run/postgresql /run/postgresql /tmp; do
    if [[ -S "$d/.s.PGSQL.5432" ]]; then local_dir="$d" && break; fi
done
if [[ -z "$local_dir" ]]; then
    fail "needs the local Postgres (127.0.0.1:5432) with its Unix socket: start it (see README) and rerun"
elif ! psql -XtAq "$(pg_url_with_socket "$URL" "$local_dir")" -c 'select 1' >/dev/null 2>&1; then
    check "a socket that refuses us (pg_hba) is not used" "$(pg_socket_dir "$URL")" ""
else
    check "auto picks the local server's socket" "$(pg_socket_dir "$URL")" "$local_dir"
    check "... also for localhost" "$(pg_socket_dir 'postgres://postgres@localhost/postgres')" "$local_dir"
    check "an explicit directory is used" "$(LONGSHIP_PG_SOCKET_DIR="$local_dir" pg_socket_dir "$URL")" "$local_dir"
    check "a socket of another port is not taken for this one" \
        "$(pg_socket_dir 'postgres://postgres@127.0.0.1:1/postgres')" ""
fi

summary
