#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the ledger tests (and anything else that wants one).
#
#   .ci/postgres.sh [start]   install PostgreSQL if missing, start a cluster on 127.0.0.1:$SMSCN_PG_PORT
#                             (default 55432) in /tmp/smscn-pg-$PORT, print its SQLAlchemy URL as the
#                             last stdout line. Idempotent: if it already runs, only prints the URL.
#   .ci/postgres.sh stop      stop that cluster and delete its directory (it is a throwaway).
#   .ci/postgres.sh url       print the URL only.
#
# Meant to run as root on a fresh Debian machine (the cluster itself runs as `postgres`); as a
# non-root user with the server already installed it runs the cluster as that user.
# Everything but the URL goes to stderr, so `URL=$(.ci/postgres.sh | tail -n1)` works.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME="postgres.sh"
PORT="${SMSCN_PG_PORT:-55432}"
DIR="/tmp/smscn-pg-${PORT}"
DATA="${DIR}/data"
LOG="${DIR}/postgres.log"
DB_USER="smscn"
DB_PASS="smscn"
DB_NAME="smscn"
URL="postgresql+psycopg2://${DB_USER}:${DB_PASS}@127.0.0.1:${PORT}/${DB_NAME}"

find_bindir() {
    # The newest installed server version wins.
    local initdb
    initdb="$(ls -1d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1 || true)"
    [[ -n "${initdb}" ]] && dirname "${initdb}"
}

as_owner() {
    # Run a server command as the cluster owner: `postgres` when we are root, else ourselves.
    if [[ "${EUID}" -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

can_log_in() {
    PGPASSWORD="${DB_PASS}" PGCONNECT_TIMEOUT=5 "${BINDIR}/psql" -h 127.0.0.1 -p "${PORT}" \
        -U "${DB_USER}" -d "${DB_NAME}" -Atqc 'select 1' >/dev/null 2>&1
}

start() {
    BINDIR="$(find_bindir || true)"
    if [[ -z "${BINDIR}" ]]; then
        apt_install "PostgreSQL server" postgresql
        BINDIR="$(find_bindir || true)"
        [[ -n "${BINDIR}" ]] || { log "initdb still missing after installing postgresql"; exit 1; }
    fi

    if "${BINDIR}/pg_isready" -q -h 127.0.0.1 -p "${PORT}"; then
        if can_log_in; then
            log "already running on port ${PORT}"
            echo "${URL}"
            return 0
        fi
        log "something already listens on 127.0.0.1:${PORT} but ${DB_USER}@${DB_NAME} cannot log in"
        exit 1
    fi

    mkdir -p "${DIR}"
    chmod 700 "${DIR}"
    if [[ "${EUID}" -eq 0 ]]; then
        chown postgres:postgres "${DIR}"
    fi

    if [[ ! -f "${DATA}/PG_VERSION" ]]; then
        rm -rf "${DATA}"
        log "initdb in ${DATA}"
        as_owner "${BINDIR}/initdb" -D "${DATA}" -U postgres -E UTF8 --no-locale \
            --auth-local=trust --auth-host=scram-sha-256 >&2
        # Settings live in the cluster's own file so a later plain `pg_ctl start` keeps them.
        cat >>"${DATA}/postgresql.conf" <<EOF

# added by .ci/postgres.sh
listen_addresses = '127.0.0.1'
port = ${PORT}
unix_socket_directories = '${DIR}'
max_connections = 300
password_encryption = 'scram-sha-256'
EOF
    fi

    # A stale pid file from a killed server would stop pg_ctl; it removes it itself when the pid is gone.
    log "starting the server on 127.0.0.1:${PORT}"
    as_owner "${BINDIR}/pg_ctl" -D "${DATA}" -l "${LOG}" -w -t 60 start >&2 || {
        log "pg_ctl start failed; last lines of ${LOG}:"
        tail -n 30 "${LOG}" >&2 || true
        exit 1
    }

    wait_until 120 0.5 "${BINDIR}/pg_isready" -q -h 127.0.0.1 -p "${PORT}" || { log "server did not come up"; exit 1; }

    # The role and the database, created once (over the local socket, where postgres is trusted).
    as_owner "${BINDIR}/psql" -h "${DIR}" -p "${PORT}" -U postgres -d postgres -v ON_ERROR_STOP=1 -Atq >&2 <<EOF
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${DB_USER}') THEN
    CREATE ROLE ${DB_USER} LOGIN CREATEDB PASSWORD '${DB_PASS}';
  END IF;
END \$\$;
EOF
    if [[ -z "$(as_owner "${BINDIR}/psql" -h "${DIR}" -p "${PORT}" -U postgres -d postgres -Atqc \
        "SELECT 1 FROM pg_database WHERE datname = '${DB_NAME}'")" ]]; then
        as_owner "${BINDIR}/createdb" -h "${DIR}" -p "${PORT}" -U postgres -O "${DB_USER}" "${DB_NAME}" >&2
    fi
    can_log_in || { log "cannot log in as ${DB_USER} after setup"; exit 1; }
    log "ready"
    echo "${URL}"
}

stop() {
    BINDIR="$(find_bindir || true)"
    if [[ -n "${BINDIR}" && -f "${DATA}/PG_VERSION" ]]; then
        as_owner "${BINDIR}/pg_ctl" -D "${DATA}" -m fast -w -t 60 stop >&2 || true
    fi
    rm -rf "${DIR}"
    log "stopped and removed ${DIR}"
}

main "$@"
