#!/usr/bin/env bash
# `just new-service` end to end, in a throw-away copy of this repository (never in the checkout
# itself): bad and taken names are refused without changing a byte; a missing marker, a template
# that breaks its section rules (a section left open, nested or unknown; a participant file or
# snippet that repeats a plain one) and a failure injected half-way through the commit leave the
# tree exactly as it was; `just new-service shipping`
# then generates a service that builds, passes clippy -D warnings, rustfmt and rustdoc -D warnings,
# passes its own tests against the real Postgres and NATS, renders in both kustomize overlays
# (Deployment + HPA) and passes the manifest and Docker checks, is in the compose file, and answers
# when `scripts/up.sh` starts it (beside stubs of the other three services); generating it again is
# refused without changes. The service is generated as a saga participant (`--saga-participant`), and
# docs/changing-a-saga.md's worked example runs on it: scripts/tests/test_saga_extension.sh applies
# the doc's hand edits and runs the mixed-replica rollout with real processes. A second, plain
# service (`just new-service billing`) gets the next ports and passes clippy -D warnings.
#
# The copy is the working tree as git sees it (tracked + untracked, not ignored files; without git:
# everything but target/, .git/, .longship/), with modification times kept, and cargo runs there with
# CARGO_TARGET_DIR pointing at this checkout's target/ (or $CARGO_TARGET_DIR), so the workspace's
# build cache is reused: only longship-proto and the new crate compile. (Because the cache is
# shared, the checkout's target/ may afterwards hold a longship-proto build that also has a
# `shipping` module; nothing uses it, and the next change under proto/ rebuilds it.)
#
# Needs: python3, rsync, cargo + cargo-nextest, just, kubectl (or kustomize), curl, psql, and
# Postgres (127.0.0.1:5432) and NATS with JetStream (TEST_NATS_URL, default nats://127.0.0.1:4222);
# fails saying what is missing.
# Ends with `N passed, M failed`. Usage: bash scripts/tests/test_new_service.sh   (or: just test-new-service)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=scripts/tests/lib.sh
source "$HERE/lib.sh"

NAME=shipping
PG_ADMIN="postgres://postgres@127.0.0.1:5432/postgres"
TEST_NATS_URL="${TEST_NATS_URL:-nats://127.0.0.1:4222}"
NATS_HOSTPORT="${TEST_NATS_URL#nats://}"
NATS_HOST="${NATS_HOSTPORT%:*}" NATS_PORT="${NATS_HOSTPORT##*:}"
export TEST_NATS_URL
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ "$CARGO_TARGET_DIR" == /* ]] || CARGO_TARGET_DIR="$ROOT/$CARGO_TARGET_DIR"
export CARGO_TERM_COLOR=never

missing=()
for tool in python3 rsync cargo cargo-nextest just curl psql pg_isready; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
command -v kubectl >/dev/null 2>&1 || command -v kustomize >/dev/null 2>&1 || missing+=("kubectl (or kustomize)")
if ((${#missing[@]} > 0)); then
    fail "test_new_service needs: ${missing[*]} (see README, Quick start)"
    summary
    exit 1
fi
# shellcheck disable=SC2016  # expanded by the inner shell
if ! pg_isready -q -t 2 -d "$PG_ADMIN" || ! timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$NATS_HOST" "$NATS_PORT" 2>/dev/null; then
    fail "test_new_service needs Postgres at 127.0.0.1:5432 and NATS at $TEST_NATS_URL: start them (see README) and rerun"
    summary
    exit 1
fi

TMP="$(mktemp -d)"
COPY="$TMP/repo"
SUFFIX="_nstest_$$"
NATS_TEST_PREFIX="lst$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
cleanup() {
    if [[ -d "$COPY/scripts" ]]; then
        LONGSHIP_STATE_DIR="$TMP/state" LONGSHIP_STOP_TIMEOUT=5 bash "$COPY/scripts/down.sh" >/dev/null 2>&1 || true
    fi
    for db in orders inventory payments "$NAME"; do
        psql "$PG_ADMIN" -Xqc "drop database if exists \"$db$SUFFIX\" with (force)" >/dev/null 2>&1 || true
    done
    delete_streams "${NATS_TEST_PREFIX^^}_SHIPPING" "${NATS_TEST_PREFIX^^}_DEADLETTER"
    local rollout="${NATS_TEST_PREFIX^^}R"
    delete_streams "${rollout}_ORDERS" "${rollout}_INVENTORY" "${rollout}_PAYMENTS" "${rollout}_SHIPPING" "${rollout}_DEADLETTER"
    rm -rf "$TMP"
}
trap cleanup EXIT

# Deletes JetStream streams over the plain NATS protocol (no nats CLI needed).
delete_streams() {
    python3 - "$NATS_HOST" "$NATS_PORT" "$@" <<'PY' >/dev/null 2>&1 || true
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
s.recv(4096)
s.sendall(b'CONNECT {"verbose":false}\r\nSUB _INBOX.nstest 1\r\n')
for name in sys.argv[3:]:
    s.sendall(f"PUB $JS.API.STREAM.DELETE.{name} _INBOX.nstest 0\r\n\r\n".encode())
s.sendall(b"PING\r\n")
s.recv(4096)
PY
}

# A hash of every file (path, mode, content) of the copy, except build output and state.
tree_hash() {
    python3 - "$COPY" <<'PY'
import hashlib, os, sys
root = sys.argv[1]
h = hashlib.sha256()
for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames if os.path.relpath(os.path.join(dirpath, d), root) not in ("target", ".git", ".longship"))
    rel_dir = os.path.relpath(dirpath, root)
    h.update(f"D {rel_dir}\n".encode())
    for f in sorted(filenames):
        p = os.path.join(dirpath, f)
        st = os.lstat(p)
        h.update(f"F {os.path.join(rel_dir, f)} {st.st_mode:o}\n".encode())
        if os.path.isfile(p) and not os.path.islink(p):
            with open(p, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
print(h.hexdigest())
PY
}

# Runs a command inside the copy (run_cmd takes commands, not shell functions).
# shellcheck disable=SC2016  # expanded by the inner shell
IN_COPY=(bash -c 'cd "$1" && shift && exec "$@"' in-copy "$COPY")

expect_unchanged() { # expect_unchanged NAME HASH-BEFORE
    local after
    after="$(tree_hash)"
    if [[ "$after" == "$2" ]]; then pass "$1"; else fail "$1 (the tree hash changed)" "$(cd "$COPY" && ls -la services proto migrations k8s/base)"; fi
}

# --- 1. the copy ------------------------------------------------------------------------
mkdir -p "$COPY"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
        rsync -a --from0 --files-from=- --ignore-missing-args ./ "$COPY/")
else
    rsync -a --exclude /target --exclude /.git --exclude /.longship "$ROOT/" "$COPY/"
fi
if [[ -e "$COPY/services/$NAME" ]]; then
    fail "this checkout already has services/$NAME; the test generates that name"
    summary
    exit 1
fi
pass "copied the working tree to $COPY"
before="$(tree_hash)"

# The recipe as a user runs it; until the top-level justfile imports justfiles/new-service.just,
# the module file is run on its own.
if (cd "$COPY" && just --summary 2>/dev/null | tr ' ' '\n' | grep -qx new-service); then
    NEW_SERVICE=("${IN_COPY[@]}" just new-service)
else
    NEW_SERVICE=("${IN_COPY[@]}" just --justfile justfiles/new-service.just --working-directory . new-service)
fi

# --- 2. refusals change nothing ------------------------------------------------------------
for bad in Shipping 1x -x x- a--b ship_ping s "$(printf 'x%.0s' {1..31})" order errors tenant loadgen tokio orders order-grpc type; do
    RUN_TIMEOUT=60 run_cmd "${NEW_SERVICE[@]}" "$bad"
    if [[ "$RC" != 0 ]] && grep -qF "allowed: 2-30 characters, lower-case letters a-z, digits and single dashes" <<<"$OUT" &&
        grep -qF "nothing was changed" <<<"$OUT"; then
        pass "refuses '$bad' and says what is allowed: $(grep -o 'error: [^;]*' <<<"$OUT" | head -n1)"
    else
        fail "refuses '$bad' saying what is allowed (exit $RC)" "$OUT"
    fi
done
expect_unchanged "refused names left the tree unchanged" "$before"

# A marker the generator needs is missing: refused before anything is written.
prod="$COPY/k8s/overlays/prod/kustomization.yaml"
cp -p "$prod" "$TMP/prod.kustomization.yaml"
grep -v 'new-service:prod-images' "$TMP/prod.kustomization.yaml" >"$prod"
without_marker="$(tree_hash)"
RUN_TIMEOUT=60 run_cmd "${NEW_SERVICE[@]}" billing
expect_rc "refuses when a marker is missing" 1
expect_out "names the file and the marker" "k8s/overlays/prod/kustomization.yaml: expected exactly one marker line containing \`new-service:prod-images\`"
expect_unchanged "a missing marker left the tree unchanged" "$without_marker"
cp -p "$TMP/prod.kustomization.yaml" "$prod"

# A template that breaks its own rules is refused before anything is written: a section left open,
# a section inside another, a participant file that repeats a plain one instead of a section.
grpc_tmpl="$COPY/templates/service/files/services/{{name}}/src/grpc.rs.tmpl"
cp -p "$grpc_tmpl" "$TMP/grpc.rs.tmpl"
template_fault() { # template_fault NAME EXPECTED-MESSAGE FLAGS...
    local name="$1" message="$2" faulty
    shift 2
    faulty="$(tree_hash)"
    RUN_TIMEOUT=60 run_cmd "${NEW_SERVICE[@]}" billing "$@"
    expect_rc "refuses $name" 1
    expect_out "says what is wrong with $name" "$message"
    expect_unchanged "$name left the tree unchanged" "$faulty"
}
printf '{{#participant}}\n' >>"$grpc_tmpl"
template_fault "a section left open" "the participant section is not closed"
cp -p "$TMP/grpc.rs.tmpl" "$grpc_tmpl"
printf '{{#participant}}\n{{^participant}}\n{{/participant}}\n' >>"$grpc_tmpl"
template_fault "a section inside a section" "{{^participant}} inside the participant section (sections do not nest)"
cp -p "$TMP/grpc.rs.tmpl" "$grpc_tmpl"
printf '{{#saga}}x{{/saga}}\n' >>"$grpc_tmpl"
template_fault "an unknown section" "uses an unknown section {{#saga}}"
cp -p "$TMP/grpc.rs.tmpl" "$grpc_tmpl"
overlay_copy="$COPY/templates/service/saga-participant/files/services/{{name}}/src/grpc.rs.tmpl"
cp -p "$grpc_tmpl" "$overlay_copy"
template_fault "a participant file that repeats a plain one" "saga-participant/files/services/{{name}}/src/grpc.rs.tmpl repeats templates/service/files/services/{{name}}/src/grpc.rs.tmpl" --saga-participant
rm -f "$overlay_copy"
snippet_copy="$COPY/templates/service/saga-participant/snippets/errors-catalogue.md.tmpl"
cp -p "$COPY/templates/service/snippets/errors-catalogue.md.tmpl" "$snippet_copy"
template_fault "a participant snippet that repeats a plain one" "expected one snippet errors-catalogue" --saga-participant
rm -f "$snippet_copy"

# Failures injected between the steps of the commit (folders moved, files replaced, Cargo.lock):
# everything done so far is undone.
for after in 0 3 6 14; do
    LONGSHIP_NEW_SERVICE_FAIL_AFTER=$after RUN_TIMEOUT=120 run_cmd "${NEW_SERVICE[@]}" billing
    if [[ "$RC" != 0 ]] && grep -qF "injected failure after $after step(s)" <<<"$OUT"; then
        pass "a failure after $after commit step(s) is reported"
    else
        fail "a failure after $after commit step(s) is reported (exit $RC)" "$OUT"
    fi
    expect_unchanged "a failure after $after commit step(s) left the tree unchanged" "$before"
done

# --- 3. generate ---------------------------------------------------------------------------
RUN_TIMEOUT=300 run_cmd "${NEW_SERVICE[@]}" "$NAME" --saga-participant
expect_rc "just new-service $NAME --saga-participant succeeds" 0
printf '%s\n' "$OUT" | sed 's/^/      | /'
for created in "services/$NAME/" "proto/$NAME/" "migrations/$NAME/" "k8s/base/$NAME/"; do
    expect_out "lists created $created" "$created"
done
for changed in libs/proto/src/lib.rs docker/compose.yaml scripts/lib/common.sh k8s/overlays/dev/kustomization.yaml k8s/overlays/prod/kustomization.yaml; do
    expect_out "lists changed $changed" "$changed"
done
expect_out "prints the next steps" "Next:"
if [[ "$(grep -cE '^  [1234]\. ' <<<"$OUT")" == 4 ]]; then pass "prints four next steps (the fourth: the saga version)"; else fail "prints four next steps" "$OUT"; fi
expect_out "lists the order service's step" "services/order/src/steps/$NAME.rs"
for changed in services/order/src/steps.rs; do
    expect_out "lists changed $changed" "$changed"
done
for f in "services/$NAME/Cargo.toml" "services/$NAME/build.rs" "services/$NAME/src/lib.rs" "services/$NAME/tests/it/main.rs" \
    "proto/$NAME/v1/$NAME.proto" "migrations/$NAME/0001_init.sql" "k8s/base/$NAME/deployment.yaml" \
    "migrations/$NAME/0002_reservations.sql" "services/$NAME/tests/it/saga_step.rs" "services/order/src/steps/$NAME.rs"; do
    if [[ -f "$COPY/$f" ]]; then pass "created $f"; else fail "created $f"; fi
done
if grep -rqF '{{' "$COPY/services/$NAME" "$COPY/proto/$NAME" "$COPY/migrations/$NAME" "$COPY/k8s/base/$NAME"; then
    fail "no template placeholder is left" "$(grep -rnF '{{' "$COPY/services/$NAME" "$COPY/proto/$NAME" "$COPY/migrations/$NAME" "$COPY/k8s/base/$NAME")"
else
    pass "no template placeholder is left"
fi
if grep -q "^name = \"$NAME\"" "$COPY/Cargo.lock"; then pass "Cargo.lock records $NAME"; else fail "Cargo.lock records $NAME"; fi

generated="$(tree_hash)"
RUN_TIMEOUT=60 run_cmd "${NEW_SERVICE[@]}" "$NAME"
expect_rc "generating $NAME again is refused" 1
expect_out "says the name is taken" "the name '$NAME' is taken"
expect_unchanged "the second run changed nothing" "$generated"

# --- 4. local platform, compose, Kubernetes ------------------------------------------------------
ports="$(cd "$COPY" && bash -c 'source scripts/lib/common.sh; longship_config; echo "$(http_port '"$NAME"') $(grpc_port '"$NAME"') $(db_name '"$NAME"') ${LONGSHIP_SERVICES[*]}"')"
if [[ "$ports" == "8083 50054 $NAME $NAME inventory payment order" ]]; then
    pass "just up knows $NAME: HTTP 8083, gRPC 50054, database $NAME, started first"
else
    fail "just up knows $NAME (got: $ports)"
fi

compose_services="$(python3 - "$COPY/docker/compose.yaml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
try:
    import yaml
    print(" ".join(sorted(yaml.safe_load(text)["services"])))
except ImportError:
    print(" ".join(sorted(re.findall(r"^  ([a-z0-9-]+):\s*$", text, re.M))))
PY
)"
if [[ " $compose_services " == *" $NAME "* && " $compose_services " == *" $NAME-migrate "* ]]; then
    pass "compose lists $NAME and $NAME-migrate"
else
    fail "compose lists $NAME and $NAME-migrate (services: $compose_services)"
fi
if grep -qx "CREATE DATABASE $NAME;" "$COPY/docker/postgres/init.sql"; then pass "compose's Postgres creates database $NAME"; else fail "compose's Postgres creates database $NAME"; fi

if command -v kubectl >/dev/null 2>&1; then render=(kubectl kustomize); else render=(kustomize build); fi
for overlay in dev prod; do
    RUN_TIMEOUT=120 run_cmd "${render[@]}" "$COPY/k8s/overlays/$overlay"
    if [[ "$RC" != 0 ]]; then
        fail "k8s/overlays/$overlay renders" "$OUT"
        continue
    fi
    kinds="$(python3 -c '
import re, sys
found = set()
for doc in re.split(r"^---$", sys.stdin.read(), flags=re.M):
    kind = re.search(r"^kind: (\S+)", doc, re.M)
    name = re.search(r"^metadata:\n(?:  .*\n)*?  name: (\S+)", doc, re.M)
    if kind and name and name.group(1) == sys.argv[1]:
        found.add(kind.group(1))
print(" ".join(sorted(found)))' "$NAME" <<<"$OUT")"
    for kind in Deployment HorizontalPodAutoscaler Service PodDisruptionBudget NetworkPolicy; do
        if [[ " $kinds " == *" $kind "* ]]; then pass "$overlay overlay renders the $kind $NAME"; else fail "$overlay overlay renders the $kind $NAME (found: $kinds)"; fi
    done
    if grep -q "longship/$NAME:" <<<"$OUT" && grep -q "args:.*migrate\|- migrate" <<<"$OUT"; then
        pass "$overlay: $NAME runs a tagged image with its migrate init container"
    else
        fail "$overlay: $NAME runs a tagged image with its migrate init container"
    fi
done

if python3 -c 'import yaml, kubernetes_validate' 2>/dev/null; then
    RUN_TIMEOUT=600 run_cmd python3 "$COPY/k8s/tests/check_manifests.py"
    expect_rc "k8s/tests/check_manifests.py passes with $NAME ($(tail -n1 <<<"$OUT"))" 0
else
    fail "k8s/tests/check_manifests.py cannot run: pip install -r k8s/tests/requirements.txt"
fi
if python3 -c 'import yaml' 2>/dev/null; then
    RUN_TIMEOUT=120 run_cmd python3 "$COPY/docker/tests/check_docker.py"
    expect_rc "docker/tests/check_docker.py passes with $NAME ($(tail -n1 <<<"$OUT"))" 0
else
    fail "docker/tests/check_docker.py cannot run: pip install pyyaml"
fi

# --- 5. the crate: build, lint, docs, its own tests ------------------------------------------------
RUN_TIMEOUT=1800 run_cmd "${IN_COPY[@]}" cargo build -p "$NAME"
expect_rc "cargo build -p $NAME (target dir $CARGO_TARGET_DIR)" 0
RUN_TIMEOUT=1800 run_cmd "${IN_COPY[@]}" cargo clippy -p "$NAME" --all-targets -- -D warnings
expect_rc "cargo clippy -p $NAME --all-targets -- -D warnings" 0
RUN_TIMEOUT=300 run_cmd "${IN_COPY[@]}" cargo fmt --check -p "$NAME" -p longship-proto -p order
expect_rc "cargo fmt --check (the new crate, libs/proto, order with its step)" 0
RUN_TIMEOUT=1800 run_cmd "${IN_COPY[@]}" env RUSTDOCFLAGS="-D warnings" cargo doc -p "$NAME" --no-deps
expect_rc "RUSTDOCFLAGS=-D warnings cargo doc -p $NAME --no-deps" 0
# a new service records its event schemas and OpenAPI document first (`just snapshots` does this
# for every service; the compat tests then compare against the files)
RUN_TIMEOUT=1800 run_cmd "${IN_COPY[@]}" env LONGSHIP_UPDATE_SNAPSHOTS=1 cargo nextest run -p "$NAME" --no-fail-fast -E 'test(event_schemas_match_the_committed_files) | test(served_openapi_matches_the_committed_file)'
expect_rc "LONGSHIP_UPDATE_SNAPSHOTS=1: the new service's schemas and OpenAPI document recorded" 0
for f in "schemas/events/$NAME/$NAME.v1.item_created.json" "openapi/$NAME.json"; do
    if [[ -s "$COPY/$f" ]]; then pass "$f written"; else fail "$f written"; fi
done
RUN_TIMEOUT=1800 run_cmd "${IN_COPY[@]}" cargo nextest run -p "$NAME" --no-fail-fast
expect_rc "cargo nextest run -p $NAME ($(grep -o 'Summary.*' <<<"$OUT" | head -n1))" 0

# --- 6. it answers when scripts/up.sh starts it --------------------------------------------------
# The other three are stubs (scripts/tests/stub_service.py), so nothing else needs building.
mkdir -p "$TMP/bin"
for s in order inventory payment; do ln -s "$COPY/scripts/tests/stub_service.py" "$TMP/bin/$s"; done
ln -s "$CARGO_TARGET_DIR/debug/$NAME" "$TMP/bin/$NAME"
# Ports outside the kernel's ephemeral range, so an outgoing connection elsewhere cannot hold one.
read -r eph_lo eph_hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || { eph_lo=32768; eph_hi=60999; }
min_o=$((eph_hi + 1 - 50051)) max_o=$((65535 - 50054))
if ((min_o < 0 || max_o <= min_o || 8083 + max_o >= eph_lo)); then min_o=3000 max_o=12000; fi
offset=""
for _ in $(seq 1 50); do
    o=$((min_o + RANDOM % (max_o - min_o)))
    busy=0
    for p in 8080 8081 8082 8083 50051 50052 50053 50054; do
        # shellcheck disable=SC2016  # expanded by the inner shell
        if timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' $((p + o)) 2>/dev/null; then busy=1; fi
    done
    if ((busy == 0)); then offset=$o && break; fi
done
if [[ -z "$offset" ]]; then
    fail "no free LONGSHIP_PORT_OFFSET for the up.sh check"
else
    (
        export LONGSHIP_STATE_DIR="$TMP/state" LONGSHIP_INFRA=local LONGSHIP_NO_BUILD=1 LONGSHIP_BIN_DIR="$TMP/bin"
        export LONGSHIP_PORT_OFFSET="$offset" LONGSHIP_DB_SUFFIX="$SUFFIX" LONGSHIP_PG_URL="$PG_ADMIN"
        export LONGSHIP_READY_TIMEOUT=60 NATS_URL="$TEST_NATS_URL" NATS_PREFIX="$NATS_TEST_PREFIX"
        # the platform here is stubs that speak no gRPC; the generated service's mTLS is covered by its
        # own tests (testkit runs every TestApp with a throwaway CA) and up.sh's by test_up_real.sh
        export GRPC_MTLS=off
        unset RUST_LOG LOG_FORMAT AUTH_JWT_SECRET AUTH_JWT_ALGORITHM OTEL_EXPORTER_OTLP_ENDPOINT
        RUN_TIMEOUT=180 run_cmd bash "$COPY/scripts/up.sh"
        expect_rc "scripts/up.sh starts $NAME with the platform" 0
        expect_out "up.sh reports $NAME ready" "$NAME is ready"
        base="http://127.0.0.1:$((8083 + offset))"
        created="$(curl -sS -o "$TMP/item.json" -w '%{http_code} %header{location}' -X POST "$base/v1/items" \
            -H 'X-Tenant-Id: acme' -H 'Content-Type: application/json' -d '{"name":"first"}' 2>&1 || true)"
        if [[ "$created" == "201 /v1/items/"* ]]; then
            pass "POST $base/v1/items answers 201 with a Location"
            read_back="$(curl -sS -o /dev/null -w '%{http_code}' "$base${created#201 }" -H 'X-Tenant-Id: acme' 2>&1 || true)"
            if [[ "$read_back" == 200 ]]; then pass "GET ${created#201 } answers 200"; else fail "GET ${created#201 } answers 200 (got $read_back)"; fi
        else
            fail "POST $base/v1/items answers 201 with a Location (got: $created)" "$(cat "$TMP/item.json" 2>/dev/null; tail -n 20 "$TMP/state/logs/$NAME.log" 2>/dev/null)"
        fi
        RUN_TIMEOUT=60 run_cmd bash "$COPY/scripts/down.sh"
        expect_rc "scripts/down.sh stops it again" 0
        printf '%s %s\n' "$PASSED" "$FAILED" >"$TMP/sub.counts"
    )
    if [[ -f "$TMP/sub.counts" ]]; then
        read -r PASSED FAILED <"$TMP/sub.counts"
    else
        fail "the up.sh check did not finish"
    fi
fi

# --- 6b. docs/changing-a-saga.md: the doc's hand edits, the mixed-replica rollout --------------------
if [[ -n "$offset" ]]; then
    COPY="$COPY" TMP="$TMP" PG_ADMIN="$PG_ADMIN" NATS_URL="$TEST_NATS_URL" NATS_TEST_PREFIX="$NATS_TEST_PREFIX" \
        SUFFIX="$SUFFIX" PORT_OFFSET="$offset" bash "$HERE/test_saga_extension.sh" || true
    if [[ -f "$TMP/saga.counts" ]]; then
        read -r p f <"$TMP/saga.counts"
        PASSED=$((PASSED + p)) FAILED=$((FAILED + f))
    else
        fail "test_saga_extension.sh did not finish"
    fi
fi

# --- 7. a second, plain service gets the next ports and keeps the checks green ---------------------
RUN_TIMEOUT=300 run_cmd "${NEW_SERVICE[@]}" billing
expect_rc "just new-service billing (a second service, plain) succeeds" 0
expect_no_out "a plain service adds no saga step to order" "services/order/src/steps/"
expect_out "billing gets the next free ports" "(HTTP 8084, gRPC 50055"
order_line="$(grep -E '^LONGSHIP_(SERVICES|STOP_ORDER)=' "$COPY/scripts/lib/common.sh" | tr '\n' ' ')"
if [[ "$order_line" == "LONGSHIP_SERVICES=(billing $NAME inventory payment order) LONGSHIP_STOP_ORDER=(order inventory payment $NAME billing) " ]]; then
    pass "just up starts new services first and stops them last"
else
    fail "just up starts new services first and stops them last (got: $order_line)"
fi
if python3 -c 'import yaml, kubernetes_validate' 2>/dev/null; then
    RUN_TIMEOUT=600 run_cmd python3 "$COPY/k8s/tests/check_manifests.py"
    expect_rc "k8s/tests/check_manifests.py passes with two new services ($(tail -n1 <<<"$OUT"))" 0
fi
# the plain template's own code (the participant's overlay replaced parts of it in shipping)
RUN_TIMEOUT=1800 run_cmd "${IN_COPY[@]}" cargo clippy -p billing --all-targets -- -D warnings
expect_rc "cargo clippy -p billing --all-targets -- -D warnings (the plain template)" 0
if python3 -c 'import yaml' 2>/dev/null; then
    RUN_TIMEOUT=120 run_cmd python3 "$COPY/docker/tests/check_docker.py"
    expect_rc "docker/tests/check_docker.py passes with two new services ($(tail -n1 <<<"$OUT"))" 0
fi

summary
