#!/bin/sh
# Streaming read replica for compose. On first start (empty PGDATA) it clones the primary with
# pg_basebackup, creating a physical replication slot so the primary keeps WAL the replica
# still needs; -R writes standby.signal + primary_conninfo. Later starts just run postgres.
set -eu
: "${PGDATA:?}" "${PRIMARY_HOST:?}" "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD must be set}"
slot=${REPLICATION_SLOT:-replica1}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "replica: cloning $PRIMARY_HOST into $PGDATA (slot $slot)"
  rm -rf "$PGDATA.partial"
  PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup \
    --host="$PRIMARY_HOST" --username=replicator --pgdata="$PGDATA.partial" \
    --wal-method=stream --write-recovery-conf --progress --checkpoint=fast \
    --create-slot --slot="$slot" \
    || PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup \
      --host="$PRIMARY_HOST" --username=replicator --pgdata="$PGDATA.partial" \
      --wal-method=stream --write-recovery-conf --progress --checkpoint=fast \
      --slot="$slot"
  # The password must not stay in postgresql.auto.conf in clear; use a passfile instead.
  printf '%s:5432:replication:replicator:%s\n' "$PRIMARY_HOST" "$REPLICATION_PASSWORD" >"$PGDATA.partial/../.pgpass"
  chmod 0600 "$PGDATA.partial/../.pgpass"
  sed -i "s/password=[^ ']*//" "$PGDATA.partial/postgresql.auto.conf"
  echo "primary_conninfo = 'host=$PRIMARY_HOST port=5432 user=replicator passfile=''$(dirname "$PGDATA")/.pgpass'' application_name=$slot'" \
    >>"$PGDATA.partial/postgresql.auto.conf"
  chmod 0700 "$PGDATA.partial"
  mv "$PGDATA.partial" "$PGDATA"
fi

exec postgres -c hot_standby=on -c hot_standby_feedback=on -c shared_buffers=128MB
