#!/usr/bin/env bash
# Every test of the local-run scripts (scripts/tests/test_*.sh); no cargo and no Docker
# engine needed. (docker/tests/check_docker.py runs on its own, in `just test-deploy`.)
# Ends with one `N passed, M failed` line (nothing is skipped: a missing prerequisite fails, saying what to start) summed over all of them and
# exits non-zero if anything failed. test_up_lifecycle.sh, test_up_copies.sh and test_up_real.sh need Postgres
# (127.0.0.1:5432) and NATS (127.0.0.1:4222) and fail, saying so, without them.
# Usage: bash scripts/tests/run_all.sh
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

total_pass=0
total_fail=0
broken=()
run() { # run NAME CMD...
    local name="$1" out rc last p f
    shift
    printf '\n=== %s\n' "$name"
    out="$("$@" 2>&1)"
    rc=$?
    printf '%s\n' "$out"
    last="$(grep -E '^[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n1)"
    if [[ -z "$last" ]]; then
        broken+=("$name (exit $rc, no summary line)")
        total_fail=$((total_fail + 1))
        return
    fi
    p="$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$last")"
    f="$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$last")"
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    if ((rc != 0 && f == 0)); then
        broken+=("$name (exit $rc)")
        total_fail=$((total_fail + 1))
    fi
}

run "scripts/tests/test_token.sh" bash "$HERE/test_token.sh"
run "scripts/tests/test_compat.sh" bash "$HERE/test_compat.sh"
run "scripts/tests/test_browser_harness.sh" bash "$HERE/test_browser_harness.sh"
run "scripts/tests/test_up_preflight.sh" bash "$HERE/test_up_preflight.sh"
run "scripts/tests/test_pg_socket.sh" bash "$HERE/test_pg_socket.sh"
run "scripts/tests/test_demo.sh" bash "$HERE/test_demo.sh"
run "scripts/tests/test_up_lifecycle.sh" bash "$HERE/test_up_lifecycle.sh"
run "scripts/tests/test_up_copies.sh" bash "$HERE/test_up_copies.sh"
run "scripts/tests/test_up_real.sh" bash "$HERE/test_up_real.sh"

echo
for b in "${broken[@]+"${broken[@]}"}"; do echo "broken: $b"; done
echo "$total_pass passed, $total_fail failed"
((total_fail == 0))
