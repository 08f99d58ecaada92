#!/usr/bin/env bash
# The browser-test harness (tests/browser/offline.py) passes a page that stays on its origin and
# catches one that loads from another, in the real chromium the browser tests use.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/tests/lib.sh
source "$HERE/lib.sh"

run_cmd python3 "$HERE/../../tests/browser/self_test.py"
expect_rc "the harness confines pages to their origin" 0
expect_out "the harness says so" "ok: the harness confines pages to their origin"
summary
