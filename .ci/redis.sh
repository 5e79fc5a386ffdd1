#!/usr/bin/env bash
# A throwaway Redis (the Celery broker of the deployment test) on loopback, no persistence.
#
#   .ci/redis.sh [start]   install Debian's redis-server if missing, start it on 127.0.0.1:$SMSCN_REDIS_PORT
#                          (default 56379) in /tmp/smscn-redis-$PORT, print its URL as the last stdout line.
#                          Idempotent: if it already answers, only prints the URL.
#   .ci/redis.sh stop      stop it and delete its directory.
#   .ci/redis.sh url       print the URL only.
# Everything but the URL goes to stderr, so `URL=$(.ci/redis.sh | tail -n1)` works.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME="redis.sh"
PORT="${SMSCN_REDIS_PORT:-56379}"
DIR="/tmp/smscn-redis-${PORT}"
URL="redis://127.0.0.1:${PORT}/0"

ping() { redis-cli -h 127.0.0.1 -p "${PORT}" ping 2>/dev/null | grep -q PONG; }

start() {
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server redis-server
    if ping; then log "already running on port ${PORT}"; echo "${URL}"; return 0; fi
    mkdir -p "${DIR}"
    # --save '' and --appendonly no: a broker for one test run keeps nothing on disk.
    redis-server --port "${PORT}" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
        --dir "${DIR}" --pidfile "${DIR}/redis.pid" --logfile "${DIR}/redis.log" >&2
    wait_until 100 0.1 ping || { log "redis did not answer on port ${PORT}"; tail -n 20 "${DIR}/redis.log" >&2 || true; exit 1; }
    log "ready"
    echo "${URL}"
}

stop() {
    if [[ -f "${DIR}/redis.pid" ]]; then
        local pid
        pid="$(cat "${DIR}/redis.pid")"
        kill "${pid}" 2>/dev/null || true
        wait_pidfile_gone "${DIR}/redis.pid" 50 0.1 || kill -9 "${pid}" 2>/dev/null || true
    fi
    rm -rf "${DIR}"
    log "stopped and removed ${DIR}"
}

main "$@"
