#!/usr/bin/env bash
# Start a local PostgreSQL and create the test role and database.
# Writes the connection URL to .services.env for the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_FILE=.services.env
ROLE=scrubber
PASSWORD=scrubber-test
DB=scrubber_test

log() { echo "provision-postgres: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    log "not root: cannot install or start PostgreSQL; PostgreSQL tests will not run"
    exit 0
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "installing postgresql from Debian packages"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
if [ -z "$version" ]; then
    log "no PostgreSQL cluster found"; exit 1
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" && $4=="online"' | grep -q .; then
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
for _ in $(seq 1 30); do
    su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1 && break
    sleep 0.5
done
su postgres -c "psql -qtAc \"select 1 from pg_roles where rolname='$ROLE'\"" | grep -q 1 \
    || su postgres -c "psql -qc \"create role $ROLE login createdb password '$PASSWORD'\""
# The tests drop their databases WITH (FORCE), which must be able to end an
# autovacuum worker there; without pg_signal_backend a non-superuser cannot.
su postgres -c "psql -qtAc \"select 1 from pg_auth_members m join pg_roles r on r.oid=m.roleid join pg_roles u on u.oid=m.member where r.rolname='pg_signal_backend' and u.rolname='$ROLE'\"" | grep -q 1 \
    || su postgres -c "psql -qc \"grant pg_signal_backend to $ROLE\""
su postgres -c "psql -qtAc \"select 1 from pg_database where datname='$DB'\"" | grep -q 1 \
    || su postgres -c "createdb -O $ROLE $DB"

url="postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:5432/$DB"
touch "$ENV_FILE"
grep -v '^SCRUBBER_TEST_PG=' "$ENV_FILE" > "$ENV_FILE.tmp" || true
echo "SCRUBBER_TEST_PG=$url" >> "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
log "PostgreSQL $version ready: $ROLE@127.0.0.1:5432/$DB"
