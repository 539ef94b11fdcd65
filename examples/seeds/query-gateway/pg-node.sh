#!/bin/sh
# A PostgreSQL 15 server from Debian's package, the way the official image starts one:
# on an empty data directory, initdb, password authentication from the network, and every
# /initdb.d/*.sql run once; then postgres in the foreground.
#
#   POSTGRES_PASSWORD   the password of the `postgres` user (default postgres)
set -eu
BIN=/usr/lib/postgresql/15/bin
PGDATA=/var/lib/postgresql/data
PASSWORD="${POSTGRES_PASSWORD:-postgres}"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

# In a fresh container /var/run/postgresql does not exist: postgres would die with "could not
# create lock file".
install -d -o postgres -g postgres -m 2775 /var/run/postgresql
install -d -o postgres -g postgres -m 0700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "$PASSWORD" > /tmp/pwfile && chown postgres /tmp/pwfile
  as_postgres $BIN/initdb -D "$PGDATA" -U postgres --pwfile=/tmp/pwfile \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f /tmp/pwfile
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  as_postgres $BIN/pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  for f in /initdb.d/*.sql; do
    [ -e "$f" ] && as_postgres psql -v ON_ERROR_STOP=1 -q -U postgres -f "$f"
  done
  as_postgres $BIN/pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups $BIN/postgres -D "$PGDATA" -c listen_addresses='*'
