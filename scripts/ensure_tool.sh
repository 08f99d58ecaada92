#!/usr/bin/env bash
# Install a tool a recipe needs, only when it is missing (idempotent; quiet when present).
# Usage: scripts/ensure_tool.sh promtool|cargo-deny
#   promtool    Debian/Ubuntu package `prometheus` (apt-get; sudo when not root)
#   cargo-deny  crates.io, the version pinned below (cargo install --locked)
set -euo pipefail

CARGO_DENY_VERSION=0.20.2

apt_install() {
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    command -v apt-get >/dev/null 2>&1 ||
        { echo "error: $1 is missing and this is not a Debian/Ubuntu machine; install the package that provides it" >&2; exit 1; }
    # A fresh machine may have no package lists yet: update once, then retry.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null ||
        { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null; }
}

case "${1:-}" in
    promtool)
        command -v promtool >/dev/null 2>&1 && exit 0
        echo "installing promtool (Debian package prometheus)" >&2
        apt_install promtool prometheus
        ;;
    cargo-deny)
        if command -v cargo-deny >/dev/null 2>&1; then exit 0; fi
        echo "installing cargo-deny $CARGO_DENY_VERSION (cargo install --locked)" >&2
        cargo install cargo-deny --locked --version "$CARGO_DENY_VERSION" --quiet
        ;;
    *)
        echo "usage: $0 promtool|cargo-deny" >&2
        exit 2
        ;;
esac
