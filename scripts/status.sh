#!/usr/bin/env bash
# Show, for each service that scripts/up.sh manages: running or stopped, its pid and
# what GET /readyz answers. Exit 0 when everything of ours is ready or nothing of ours
# runs; exit 1 when something runs but is not ready (or died).
# Usage: scripts/status.sh
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

if (($# > 0)); then
    case "$1" in
        -h | --help)
            say "Usage: scripts/status.sh   (or: just status). LONGSHIP_PORT_OFFSET picks the copy (as for up: a non-zero offset means <repo>/.longship-N) or LONGSHIP_STATE_DIR the state dir (default <repo>/.longship)."
            exit 0
            ;;
        *) die "status.sh takes no arguments (got '$1')" ;;
    esac
fi

longship_config

running=0
degraded=0
lines=()
for svc in "${LONGSHIP_STOP_ORDER[@]}"; do
    if pid="$(service_pid "$svc")"; then
        running=$((running + 1))
        base="$(recorded_http_base "$svc")"
        code="$(http_code "$base/readyz")"
        case "$code" in
            200) ready="200 ready" ;;
            000)
                ready="no answer"
                degraded=1
                ;;
            *)
                ready="$code not ready"
                degraded=1
                ;;
        esac
        lines+=("$(printf '  %-10s %-8s %-7s %-24s %s' "$svc" running "$pid" "$base" "$ready")")
    else
        if [[ -e "$(pid_file "$svc")" ]]; then
            # up.sh started it and it is gone: that is worth a non-zero exit.
            lines+=("$(printf '  %-10s %-8s %-7s %-24s %s' "$svc" stopped - - "died (see $(log_file "$svc"))")")
            degraded=1
        else
            lines+=("$(printf '  %-10s %-8s %-7s %-24s %s' "$svc" stopped - - -)")
        fi
    fi
done

if ((running == 0 && degraded == 0)); then
    say "nothing of ours is running (state dir $STATE_DIR); start it with: $(same_copy just up)"
    exit 0
fi

printf '  %-10s %-8s %-7s %-24s %s\n' service state pid http readyz
printf '%s\n' "${lines[@]}"
if [[ -s "$RUN_DIR/compose-started" ]]; then
    say "  infrastructure: Docker compose ($(paste -sd' ' "$RUN_DIR/compose-started"), started by up.sh; traces at http://localhost:16686)"
elif [[ "$(cat "$RUN_DIR/infra" 2>/dev/null || true)" == docker ]]; then
    say "  infrastructure: Docker compose (already running before up.sh; left alone by down.sh)"
fi
say "  logs: $LOG_DIR"
exit "$degraded"
