#!/bin/sh
# A Patroni node: write /etc/patroni.yml from the environment, then run Patroni as postgres.
#
#   PATRONI_NAME        this node's name, also its DNS name on the compose network (pg1, pg2, …)
#   SYNCHRONOUS_MODE    true (default): a commit waits for a synchronous standby; false: async
#   ETCD_HOST           etcd's client address (default etcd:2379)
#
# The DCS settings under bootstrap.dcs only apply when the cluster is first created (Patroni
# keeps them in etcd afterwards); a fresh compose project starts with an empty etcd.
set -eu
: "${PATRONI_NAME:?set PATRONI_NAME to the node's name}"
SYNCHRONOUS_MODE="${SYNCHRONOUS_MODE:-true}"
ETCD_HOST="${ETCD_HOST:-etcd:2379}"

# In a fresh container /var/run/postgresql may be missing (a tmpfs, or a volume over /var/run):
# postgres then dies with "could not create lock file".
install -d -o postgres -g postgres -m 2775 /var/run/postgresql
install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data

cat > /etc/patroni.yml <<YAML
scope: shakedown
name: ${PATRONI_NAME}
restapi:
  listen: 0.0.0.0:8008
  connect_address: ${PATRONI_NAME}:8008
etcd3:
  host: ${ETCD_HOST}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 2
    retry_timeout: 5
    maximum_lag_on_failover: 1048576
    synchronous_mode: ${SYNCHRONOUS_MODE}
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 128MB
        shared_buffers: 32MB
  initdb:
    - encoding: UTF8
    - data-checksums
  pg_hba:
    - local all all trust
    - host replication replicator all md5
    - host all all all md5
postgresql:
  listen: 0.0.0.0:5432
  connect_address: ${PATRONI_NAME}:5432
  data_dir: /var/lib/postgresql/data/pg
  bin_dir: /usr/lib/postgresql/15/bin
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: replicator
      password: replicator
    rewind:
      username: postgres
      password: postgres
tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
YAML
chown postgres:postgres /etc/patroni.yml

# Patroni as PID 1 reaps its children itself; setpriv execs (no extra process in between).
export HOME=/var/lib/postgresql
exec setpriv --reuid=postgres --regid=postgres --init-groups patroni /etc/patroni.yml
