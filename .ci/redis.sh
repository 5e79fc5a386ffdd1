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

PORT="${SMSCN_REDIS_PORT:-56379}"
DIR="/tmp/smscn-redis-${PORT}"
URL="redis://127.0.0.1:${PORT}/0"

log() { echo "redis.sh: $*" >&2; }
ping() { redis-cli -h 127.0.0.1 -p "${PORT}" ping 2>/dev/null | grep -q PONG; }

start() {
    if ! command -v redis-server >/dev/null 2>&1; then
        [[ "${EUID}" -eq 0 ]] || { log "redis-server is not installed and we are not root"; exit 1; }
        log "installing redis-server with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq --no-install-recommends redis-server >&2
    fi
    if ping; then log "already running on port ${PORT}"; echo "${URL}"; return 0; fi
    mkdir -p "${DIR}"
    # --save '' and --appendonly no: a broker for one test run keeps nothing on disk.
    redis-server --port "${PORT}" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
        --dir "${DIR}" --pidfile "${DIR}/redis.pid" --logfile "${DIR}/redis.log" >&2
    local i
    for ((i = 0; i < 100; i++)); do ping && break; sleep 0.1; done
    ping || { log "redis did not answer on port ${PORT}"; tail -n 20 "${DIR}/redis.log" >&2 || true; exit 1; }
    log "ready"
    echo "${URL}"
}

stop() {
    if [[ -f "${DIR}/redis.pid" ]]; then
        local pid
        pid="$(cat "${DIR}/redis.pid")"
        kill "${pid}" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
        kill -9 "${pid}" 2>/dev/null || true
    fi
    rm -rf "${DIR}"
    log "stopped and removed ${DIR}"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    url) echo "${URL}" ;;
    *) echo "usage: $0 [start|stop|url]" >&2; exit 2 ;;
esac
