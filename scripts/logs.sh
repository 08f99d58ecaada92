#!/usr/bin/env bash
# Follow the logs of one service (order, inventory, payment) or of all three.
# Usage: scripts/logs.sh [service]     LONGSHIP_LOGS_FOLLOW=0 prints the tail and exits.
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

case "${1:-}" in
    -h | --help)
        say "Usage: scripts/logs.sh [order|inventory|payment]   (or: just logs [service]). LONGSHIP_PORT_OFFSET or LONGSHIP_STATE_DIR picks the copy (as for up), LONGSHIP_LOGS_LINES (default 50) lines of history, LONGSHIP_LOGS_FOLLOW=0 to not follow."
        exit 0
        ;;
esac
(($# <= 1)) || die "logs.sh takes at most one argument, a service name (got $#)"

longship_config

svc="${1:-}"
files=()
if [[ -n "$svc" ]]; then
    is_service "$svc" || die "unknown service '$svc'; choose one of: ${LONGSHIP_SERVICES[*]} (or none for all)"
    files=("$(log_file "$svc")")
else
    for s in "${LONGSHIP_STOP_ORDER[@]}"; do files+=("$(log_file "$s")"); done
fi

present=()
for f in "${files[@]}"; do [[ -e "$f" ]] && present+=("$f"); done
if ((${#present[@]} == 0)); then
    die "no logs yet under $LOG_DIR${svc:+ for $svc}; start the platform with: $(same_copy just up)"
fi

lines="${LONGSHIP_LOGS_LINES:-50}"
[[ "$lines" =~ ^[0-9]+$ ]] || die "LONGSHIP_LOGS_LINES must be a number, got '$lines'"
if [[ "${LONGSHIP_LOGS_FOLLOW:-1}" == 0 ]]; then
    exec tail -n "$lines" "${present[@]}"
fi
# -F keeps following across up.sh's log rotation (the log is renamed to .log.1 on restart).
exec tail -n "$lines" -F "${files[@]}"
