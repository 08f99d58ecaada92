#!/usr/bin/env bash
# buf, pinned in package.json and package-lock.json beside this script (npm `@bufbuild/buf`):
# installs it into target/buf when it is missing or the lock changed, then runs `buf ARGS...`
# (e.g. `lint`, `breaking proto --against release-baseline/proto`, `--version`) from the
# repository root. Needs node and npm (Debian: apt-get install nodejs npm); the install needs the
# npm registry once, running buf needs no network.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ "$target" == /* ]] || target="$ROOT/$target"
DEST="$target/buf"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "error: node and npm are needed for buf (apt-get install nodejs npm)" >&2
    exit 2
fi

if [[ ! -x "$DEST/node_modules/.bin/buf" ]] || ! cmp -s "$HERE/package-lock.json" "$DEST/package-lock.json"; then
    mkdir -p "$DEST"
    cp "$HERE/package.json" "$HERE/package-lock.json" "$DEST/"
    echo "installing buf into $DEST (npm ci)" >&2
    npm ci --prefix "$DEST" --no-audit --no-fund --loglevel=error >&2
fi
cd "$ROOT"
exec "$DEST/node_modules/.bin/buf" "$@"
