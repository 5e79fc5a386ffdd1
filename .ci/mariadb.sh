#!/usr/bin/env bash
# A throwaway MariaDB server for the ledger tests (MySQL as a ledger backend).
#
#   .ci/mariadb.sh [start]   install Debian's mariadb-server if missing, start a server on
#                            127.0.0.1:$SMSCN_MYSQL_PORT (default 53306) in /tmp/smscn-mariadb-$PORT,
#                            print its SQLAlchemy URL as the last stdout line. Idempotent: if it
#                            already runs, only prints the URL.
#   .ci/mariadb.sh stop      stop that server and delete its directory (it is a throwaway).
#   .ci/mariadb.sh url       print the URL only.
#
# Meant to run as root on a fresh Debian machine (the server itself runs as `mysql`); as a
# non-root user with the server already installed it runs the server as that user.
# Everything but the URL goes to stderr, so `URL=$(.ci/mariadb.sh | tail -n1)` works.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME="mariadb.sh"
PORT="${SMSCN_MYSQL_PORT:-53306}"
DIR="/tmp/smscn-mariadb-${PORT}"
DATA="${DIR}/data"
SOCKET="${DIR}/mysqld.sock"
PIDFILE="${DIR}/mysqld.pid"
LOG="${DIR}/mysqld.log"
DB_USER="smscn"
DB_PASS="smscn"
DB_NAME="smscn"
URL="mysql+pymysql://${DB_USER}:${DB_PASS}@127.0.0.1:${PORT}/${DB_NAME}?charset=utf8mb4"

find_bin() {
    # The first of the given names found on PATH or in /usr/sbin, /usr/bin.
    local name
    for name in "$@"; do
        if command -v "${name}" >/dev/null 2>&1; then command -v "${name}"; return 0; fi
        if [[ -x "/usr/sbin/${name}" ]]; then echo "/usr/sbin/${name}"; return 0; fi
    done
    return 1
}

owner() { if [[ "${EUID}" -eq 0 ]]; then echo mysql; else id -un; fi; }

client() {
    # The admin client over our socket, as the server's root (unix_socket authentication when we
    # are root; the freshly initialised root account has no password otherwise).
    "${CLIENT}" --no-defaults --socket="${SOCKET}" -uroot "$@"
}

can_log_in() {
    "${CLIENT}" --no-defaults --protocol=TCP -h 127.0.0.1 -P "${PORT}" -u"${DB_USER}" -p"${DB_PASS}" \
        --connect-timeout=5 -N -e 'SELECT 1' "${DB_NAME}" >/dev/null 2>&1
}

start() {
    SERVER="$(find_bin mariadbd mysqld || true)"
    if [[ -z "${SERVER}" ]]; then
        # The package may try to start the system-wide service: that one is not ours, and may fail in
        # a container; ours runs from its own directory and port.
        apt_install MariaDB mariadb-server mariadb-client
        SERVER="$(find_bin mariadbd mysqld || true)"
        [[ -n "${SERVER}" ]] || { log "mariadbd still missing after installing mariadb-server"; exit 1; }
    fi
    CLIENT="$(find_bin mariadb mysql)"
    INSTALL_DB="$(find_bin mariadb-install-db mysql_install_db)"

    if can_log_in; then
        log "already running on port ${PORT}"
        echo "${URL}"
        return 0
    fi

    mkdir -p "${DIR}"
    chmod 755 "${DIR}"
    [[ "${EUID}" -eq 0 ]] && chown "$(owner)" "${DIR}"

    if [[ ! -d "${DATA}/mysql" ]]; then
        rm -rf "${DATA}"
        log "initialising ${DATA}"
        "${INSTALL_DB}" --no-defaults --datadir="${DATA}" --user="$(owner)" \
            --auth-root-authentication-method=socket --skip-test-db >&2
    fi

    log "starting the server on 127.0.0.1:${PORT}"
    # setsid: the server outlives this script (and the shell of the caller) like pg_ctl's does.
    setsid "${SERVER}" --no-defaults --datadir="${DATA}" --user="$(owner)" \
        --bind-address=127.0.0.1 --port="${PORT}" --socket="${SOCKET}" --pid-file="${PIDFILE}" \
        --log-error="${LOG}" --skip-log-bin --max-connections=300 --innodb-buffer-pool-size=64M \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
        </dev/null >/dev/null 2>&1 &

    wait_until 120 0.5 client -N -e 'SELECT 1' >/dev/null 2>&1 || {
        log "server did not come up; last lines of ${LOG}:"
        tail -n 30 "${LOG}" >&2 || true
        exit 1
    }

    # The user and the database, created once. The tests create a database per test: the user may
    # create and drop databases (a throwaway server, loopback only).
    client >&2 <<SQL
CREATE DATABASE IF NOT EXISTS ${DB_NAME} CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS '${DB_USER}'@'127.0.0.1' IDENTIFIED BY '${DB_PASS}';
CREATE USER IF NOT EXISTS '${DB_USER}'@'localhost' IDENTIFIED BY '${DB_PASS}';
GRANT ALL PRIVILEGES ON *.* TO '${DB_USER}'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO '${DB_USER}'@'localhost';
FLUSH PRIVILEGES;
SQL
    can_log_in || { log "cannot log in as ${DB_USER} after setup"; exit 1; }
    log "ready"
    echo "${URL}"
}

stop() {
    CLIENT="$(find_bin mariadb mysql || true)"
    if [[ -n "${CLIENT}" && -S "${SOCKET}" ]]; then
        local admin
        admin="$(find_bin mariadb-admin mysqladmin || true)"
        [[ -n "${admin}" ]] && "${admin}" --no-defaults --socket="${SOCKET}" -uroot shutdown >&2 || true
    fi
    wait_pidfile_gone "${PIDFILE}" 60 0.5 || true
    rm -rf "${DIR}"
    log "stopped and removed ${DIR}"
}

main "$@"
