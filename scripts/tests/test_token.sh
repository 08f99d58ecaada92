#!/usr/bin/env bash
# `just token`: tenant, operator and tenant-admin tokens carry the claims the services check;
# bad arguments are refused with exit status 2 and the usage.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/tests/lib.sh
source "$HERE/lib.sh"
TOKEN="$HERE/../token.py"

claims() { # the payload of the token in $OUT, as compact JSON
    python3 -c 'import base64,json,sys; p=sys.argv[1].split(".")[1]; p+="="*(-len(p)%4); print(json.dumps(json.loads(base64.urlsafe_b64decode(p)), sort_keys=True, separators=(",",":")))' "$OUT"
}

run_cmd python3 "$TOKEN" acme
expect_rc "tenant token" 0
OUT="$(claims)"
expect_out "tenant token carries tenant_id" '"tenant_id":"acme"'
expect_no_out "tenant token carries no scope" '"scope"'

run_cmd python3 "$TOKEN" --operator
expect_rc "operator token" 0
OUT="$(claims)"
expect_out "operator token has the operator scope" '"scope":"longship:operator"'
expect_out "operator token has a subject" '"sub":"dev"'

run_cmd env TOKEN_SUB=alice python3 "$TOKEN" --admin globex
expect_rc "tenant admin token" 0
OUT="$(claims)"
expect_out "tenant admin token has the admin scope" '"scope":"longship:admin"'
expect_out "tenant admin token names its tenant" '"tenant_id":"globex"'
expect_out "TOKEN_SUB sets the subject" '"sub":"alice"'

for args in "" "--admin" "--operator acme" "Not-A-Tenant" "--admin BAD" "--other"; do
    # shellcheck disable=SC2086
    run_cmd python3 "$TOKEN" $args
    expect_rc "refuses '${args}'" 2
    expect_out "usage for '${args}'" "usage: just token"
done

summary
