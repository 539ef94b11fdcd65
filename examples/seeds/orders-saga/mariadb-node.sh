#!/bin/sh
# A MariaDB server from Debian's package, binlog primary or replica.
#
#   ROLE=primary    on an empty data directory: mariadb-install-db, then /initdb.d/accounts.sql and
#                   /initdb.d/$INIT_SQL run once with the binary log on (the replica replays them);
#                   then mariadbd with --log-bin.
#   ROLE=replica    on an empty data directory: mariadb-install-db, then CHANGE MASTER TO
#                   PRIMARY_HOST from the primary's first binlog (mysql-bin.000001, position 4),
#                   retrying the connection every second; then mariadbd with --read-only. The
#                   replication threads start with the server (master.info is kept in the volume).
#   SERVER_ID       unique per server (default 1)
set -eu
ROLE="${ROLE:-primary}"
SERVER_ID="${SERVER_ID:-1}"
PRIMARY_HOST="${PRIMARY_HOST:-}"
DATA=/var/lib/mysql
install -d -o mysql -g mysql -m 0755 /run/mysqld
install -d -o mysql -g mysql -m 0750 "$DATA"

set -- --user=mysql --datadir="$DATA" --server-id="$SERVER_ID" --log-bin=mysql-bin \
  --binlog-format=ROW --relay-log=relay-bin --bind-address=0.0.0.0 --skip-name-resolve \
  --max-connect-errors=1000000
[ "$ROLE" = replica ] && set -- "$@" --read-only=1

if [ ! -d "$DATA/mysql" ]; then
  mariadb-install-db --user=mysql --datadir="$DATA" --skip-test-db >/dev/null
  mariadbd "$@" --skip-networking --socket=/tmp/init.sock &
  pid=$!
  until mariadb-admin --socket=/tmp/init.sock ping >/dev/null 2>&1; do sleep 0.2; done
  if [ "$ROLE" = primary ]; then
    cat /initdb.d/accounts.sql "/initdb.d/$INIT_SQL" | mariadb --socket=/tmp/init.sock
  else
    mariadb --socket=/tmp/init.sock -e "CHANGE MASTER TO MASTER_HOST='$PRIMARY_HOST',
      MASTER_USER='repl', MASTER_PASSWORD='repl', MASTER_LOG_FILE='mysql-bin.000001',
      MASTER_LOG_POS=4, MASTER_CONNECT_RETRY=1"
  fi
  mariadb-admin --socket=/tmp/init.sock shutdown
  wait "$pid" || true
fi
exec mariadbd "$@"
