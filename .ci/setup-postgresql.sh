#!/usr/bin/env bash
# PostgreSQL for the tests of `cnnlab tune --storage postgresql://...` (tests/test_tune_*.py).
# Installs Debian's postgresql, starts a server on 127.0.0.1:5432 and creates the test role and
# database. Idempotent: every step is skipped when already done. Exports nothing: tests connect to
# $CNNLAB_TEST_PG, default postgresql://cnnlab:cnnlab@127.0.0.1:5432/cnnlab_test.
set -euo pipefail

PG_USER="${CNNLAB_PG_USER:-cnnlab}"
PG_PASSWORD="${CNNLAB_PG_PASSWORD:-cnnlab}"
PG_DB="${CNNLAB_PG_DB:-cnnlab_test}"
PG_PORT="${CNNLAB_PG_PORT:-5432}"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# 1. install (only when the server binaries are missing)
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q
    as_root apt-get install -y -q postgresql
fi

# 2. a cluster (Debian's postgresql package normally creates "main"; create it if not)
version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1"/"$2}' | grep -qx "$version/main"; then
    as_root pg_createcluster "$version" main --port "$PG_PORT"
fi
port="$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $3}')"

# 3. start it on loopback (no-op when already online)
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $4}' | grep -q online; then
    as_root pg_ctlcluster "$version" main start -- -o "-c listen_addresses=127.0.0.1"
fi
for _ in $(seq 1 30); do
    if as_root su postgres -c "pg_isready -q -h 127.0.0.1 -p $port"; then break; fi
    sleep 1
done
as_root su postgres -c "pg_isready -h 127.0.0.1 -p $port"

# 4. role and database for the tests (password auth over TCP; Debian's pg_hba allows md5/scram on 127.0.0.1)
psql_su() { as_root su postgres -c "psql -p $port -v ON_ERROR_STOP=1 -qtAc \"$1\""; }
if [ "$(psql_su "SELECT 1 FROM pg_roles WHERE rolname='$PG_USER'")" != "1" ]; then
    psql_su "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD'"
fi
if [ "$(psql_su "SELECT 1 FROM pg_database WHERE datname='$PG_DB'")" != "1" ]; then
    psql_su "CREATE DATABASE $PG_DB OWNER $PG_USER"
fi
echo "postgresql ready: postgresql://$PG_USER:***@127.0.0.1:$port/$PG_DB"
