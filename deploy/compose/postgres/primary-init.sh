#!/bin/sh
# Runs once, on the primary's first start (docker-entrypoint-initdb.d), as the postgres user.
# Creates the replication role used by postgres-replica and lets it connect for streaming.
set -eu
: "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD must be set in deploy/compose/vantus.env}"

psql -v ON_ERROR_STOP=1 -v pw="$REPLICATION_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
SELECT format('CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD %L', :'pw')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'replicator') \gexec
SQL

# scram-sha-256 for replication connections from the compose network only.
if ! grep -q '^host replication replicator' "$PGDATA/pg_hba.conf"; then
  echo "host replication replicator samenet scram-sha-256" >>"$PGDATA/pg_hba.conf"
fi
