# shellcheck shell=bash
# Tiny assertion helpers for scripts/tests/*.sh. Sourced.

PASSED=0
FAILED=0
OUT=""  # combined stdout+stderr of the last run_cmd
RC=0    # its exit status

pass() {
    PASSED=$((PASSED + 1))
    printf 'ok    %s\n' "$1"
}
fail() {
    FAILED=$((FAILED + 1))
    printf 'FAIL  %s\n' "$1"
    if [[ -n "${2:-}" ]]; then printf '%s\n' "$2" | sed 's/^/      | /'; fi
}
# run_cmd CMD...: run with a time bound, capture output and status without tripping set -e.
run_cmd() {
    RC=0
    OUT="$(timeout "${RUN_TIMEOUT:-120}" "$@" 2>&1)" || RC=$?
}

expect_rc() { # expect_rc NAME WANT   (WANT: 0 or "nonzero")
    if [[ "$2" == nonzero && "$RC" != 0 ]] || [[ "$2" == "$RC" ]]; then
        pass "$1"
    else
        fail "$1 (exit $RC, wanted $2)" "$OUT"
    fi
}
expect_out() { # expect_out NAME FIXED-STRING
    if grep -qF -- "$2" <<<"$OUT"; then pass "$1"; else fail "$1 (output lacks: $2)" "$OUT"; fi
}
expect_no_out() {
    if grep -qF -- "$2" <<<"$OUT"; then fail "$1 (output has: $2)" "$OUT"; else pass "$1"; fi
}

# A TCP port on 127.0.0.1 nothing listens on (the kernel picks it; closed again at once).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A LONGSHIP_PORT_OFFSET whose six ports are all free right now, outside the kernel's ephemeral
# range where it can be (so an outgoing connection elsewhere cannot take one before the service
# binds it).
pick_offset() {
    local o p busy eph_lo eph_hi min_o max_o
    read -r eph_lo eph_hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || { eph_lo=32768 eph_hi=60999; }
    min_o=$((eph_hi + 1 - 50051)) max_o=$((65535 - 50054))
    if ((min_o < 0 || max_o <= min_o || 8083 + max_o >= eph_lo)); then min_o=3000 max_o=12000; fi
    for _ in $(seq 1 50); do
        o=$((min_o + RANDOM % (max_o - min_o)))
        busy=0
        for p in 8080 8081 8082 50051 50052 50053; do
            # shellcheck disable=SC2016  # expanded by the inner shell
            if timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' $((p + o)) 2>/dev/null; then busy=1; fi
        done
        if ((busy == 0)); then
            echo "$o"
            return 0
        fi
    done
    return 1
}

summary() {
    printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
    ((FAILED == 0))
}
