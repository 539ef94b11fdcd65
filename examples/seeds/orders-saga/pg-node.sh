#!/bin/sh
# A PostgreSQL 15 server from Debian's package, primary or streaming replica.
#
#   ROLE=primary    on an empty data directory: initdb, password authentication from the network
#                   (replication too), /initdb.d/$INIT_SQL (default every *.sql) run once; then postgres.
#   ROLE=replica    on an empty data directory: pg_basebackup from PRIMARY_HOST (waiting until it
#                   answers) with -R, which writes primary_conninfo and standby.signal: a hot
#                   standby streaming asynchronously, no replication slot; then postgres.
#   POSTGRES_PASSWORD, REPLICATION_PASSWORD   default postgres / replicator
set -eu
BIN=/usr/lib/postgresql/15/bin
PGDATA=/var/lib/postgresql/data
ROLE="${ROLE:-primary}"
PRIMARY_HOST="${PRIMARY_HOST:-pg-primary}"
PASSWORD="${POSTGRES_PASSWORD:-postgres}"
REPLICATION_PASSWORD="${REPLICATION_PASSWORD:-replicator}"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

# In a fresh container /var/run/postgresql does not exist: postgres would die with "could not
# create lock file".
install -d -o postgres -g postgres -m 2775 /var/run/postgresql
install -d -o postgres -g postgres -m 0700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ] && [ "$ROLE" = primary ]; then
  echo "$PASSWORD" > /tmp/pwfile && chown postgres /tmp/pwfile
  as_postgres $BIN/initdb -D "$PGDATA" -U postgres --pwfile=/tmp/pwfile \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f /tmp/pwfile
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "host replication replicator 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  as_postgres $BIN/pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  as_postgres psql -v ON_ERROR_STOP=1 -q -U postgres \
    -c "CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '$REPLICATION_PASSWORD'"
  for f in /initdb.d/${INIT_SQL:-*.sql}; do
    [ -e "$f" ] && as_postgres psql -v ON_ERROR_STOP=1 -q -U postgres -f "$f"
  done
  as_postgres $BIN/pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi

if [ ! -s "$PGDATA/PG_VERSION" ] && [ "$ROLE" = replica ]; then
  export PGPASSWORD="$REPLICATION_PASSWORD"   # -R copies it into primary_conninfo
  until as_postgres $BIN/pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" -R \
      -X stream -c fast; do
    echo "pg-node: waiting for $PRIMARY_HOST" >&2
    rm -rf "$PGDATA"/* && sleep 1
  done
  unset PGPASSWORD
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups $BIN/postgres -D "$PGDATA" -c listen_addresses='*'
