#!/usr/bin/env bash
# `just check-compat`, `just release-baseline` and `just lint-migrations` (scripts/compat): every
# kind of break is reported, named, in one run, and compatible changes pass (fixtures in
# scripts/compat/tests/test_compat.py). Installs the pinned buf (npm, into target/buf) and squawk
# (pip) first, as the recipes do; fails, saying so, when they cannot be installed.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

if ! bash "$ROOT/scripts/buf/run.sh" --version >/dev/null; then
    echo "FAIL  buf could not be installed (scripts/buf/run.sh)"
    echo "0 passed, 1 failed"
    exit 1
fi
if ! python3 -m pip install --quiet --disable-pip-version-check -r "$ROOT/scripts/squawk/requirements.txt"; then
    echo "FAIL  squawk could not be installed (scripts/squawk/requirements.txt)"
    echo "0 passed, 1 failed"
    exit 1
fi
target="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ "$target" == /* ]] || target="$ROOT/$target"
exec python3 "$ROOT/scripts/compat/tests/test_compat.py" --buf "$target/buf/node_modules/.bin/buf" --squawk "$(command -v squawk)"
