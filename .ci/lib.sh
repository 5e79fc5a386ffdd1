# Sourced by the throwaway-server scripts (.ci/postgres.sh, .ci/mariadb.sh, .ci/redis.sh): each sets
# NAME and URL and defines `start` and `stop`, then calls `main "$@"`. Everything but the URL goes to
# stderr, so `URL=$(bash .ci/<script> | tail -n1)` works.

log() { echo "${NAME}: $*" >&2; }

# apt_install WHAT PACKAGE...: install Debian packages (root only; WHAT names the missing program).
apt_install() {
    local what=$1
    shift
    if [[ "${EUID}" -ne 0 ]]; then
        log "${what} is not installed and we are not root: install the '$1' package"
        exit 1
    fi
    log "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "$@" >&2
}

# wait_until TRIES SECONDS COMMAND...: run COMMAND until it succeeds, at most TRIES times, SECONDS
# apart; returns the last try's status.
wait_until() {
    local tries=$1 pause=$2 i
    shift 2
    for ((i = 1; i < tries; i++)); do
        "$@" && return 0
        sleep "${pause}"
    done
    "$@"
}

pid_gone() { ! kill -0 "$1" 2>/dev/null; }

# wait_pidfile_gone PIDFILE TRIES SECONDS: wait (bounded) until the process named in PIDFILE has
# exited; status 1 if it is still there.
wait_pidfile_gone() {
    local pid
    [[ -f "$1" ]] || return 0
    pid="$(cat "$1" 2>/dev/null || true)"
    [[ -n "${pid}" ]] || return 0
    wait_until "$2" "$3" pid_gone "${pid}"
}

# main [start|stop|url]: what every server script does with its argument.
main() {
    case "${1:-start}" in
        start) start ;;
        stop) stop ;;
        url) echo "${URL}" ;;
        *) echo "usage: $0 [start|stop|url]" >&2; exit 2 ;;
    esac
}
