#!/usr/bin/env bash
# Stop exactly what scripts/up.sh started: the service processes named by the pid files
# in $LONGSHIP_STATE_DIR/run (SIGTERM, wait, then SIGKILL), and the Docker compose
# infrastructure only if up.sh started it. Nothing else is touched.
# Usage: scripts/down.sh [SERVICE]   (a service name stops only that one; `just up` starts it again)
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

ONLY=""
if (($# > 0)); then
    case "$1" in
        -h | --help)
            say "Usage: scripts/down.sh [SERVICE]   (or: just down [SERVICE]). Stops what scripts/up.sh started, or only SERVICE (order, inventory, payment; \`just up\` starts it again); LONGSHIP_PORT_OFFSET picks the copy (as for up: a non-zero offset means <repo>/.longship-N) or LONGSHIP_STATE_DIR the state dir, LONGSHIP_STOP_TIMEOUT (default 20 s) the grace period before SIGKILL."
            exit 0
            ;;
        *) ONLY="$1" ;;
    esac
    (($# == 1)) || die "down.sh takes at most one argument, a service name (got $#)"
fi

longship_config
if [[ -n "$ONLY" ]]; then
    is_service "$ONLY" || die "unknown service '$ONLY' (one of: ${LONGSHIP_SERVICES[*]})"
fi

if [[ ! -d "$RUN_DIR" ]]; then
    say "nothing of ours is running (no state in $STATE_DIR)"
    exit 0
fi

exec 9>"$STATE_DIR/lock"
if command -v flock >/dev/null 2>&1 && ! flock -w 5 9; then
    die "another up.sh or down.sh is working on $STATE_DIR; wait for it to finish"
fi

did=0
for svc in "${LONGSHIP_STOP_ORDER[@]}"; do
    [[ -z "$ONLY" || "$svc" == "$ONLY" ]] || continue
    pf="$(pid_file "$svc")"
    [[ -e "$pf" ]] || continue
    if pid="$(service_pid "$svc")"; then
        step "stopping $svc (pid $pid): SIGTERM, up to ${STOP_TIMEOUT}s before SIGKILL"
        stop_pid "$svc" "$pid"
        ok "$svc stopped"
        did=1
    else
        say "   $svc was not running (stale pid file removed)"
    fi
    forget_service "$svc"
done

if [[ -n "$ONLY" ]]; then
    if ((did)); then
        step "$ONLY is down; \`$(same_copy just up)\` starts it again."
    else
        say "$ONLY is not running"
    fi
    exit 0
fi

if [[ -s "$RUN_DIR/compose-started" ]]; then
    mapfile -t infra <"$RUN_DIR/compose-started"
    if docker_engine_up; then
        step "stopping the Docker compose infrastructure up.sh started: ${infra[*]} (volumes are kept)"
        compose rm --stop --force "${infra[@]}"
        did=1
    else
        warn "up.sh started compose services (${infra[*]}) but no Docker engine is reachable now; left as is"
    fi
    rm -f "$RUN_DIR/compose-started"
fi
rm -f "$RUN_DIR/infra"

if ((did)); then
    step "Longship is down."
else
    say "nothing of ours is running"
fi
