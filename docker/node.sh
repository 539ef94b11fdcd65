#!/bin/bash
# shakedown-node: the command of every container of a shakedown run (installed in the node image
# as /usr/local/bin/shakedown-node). `shakedown-node ROLE` sets up and runs one service in the
# foreground; its logs go to stdout/stderr (`docker logs`). The shakedown binary sits next to it
# as /usr/local/bin/shakedown, and /usr/lib/postgresql/15/bin is first on the image's PATH.
#
# Roles, their ports, environment and readiness check (run with `docker exec CONTAINER ...`):
#
#   pg-primary   PostgreSQL 15 primary on 0.0.0.0:5432, data in /var/lib/shakedown/pg (mount a
#                volume there; an empty one is initialised, a used one is just started).
#                env:   SHAKEDOWN_REPLICATION = async (default) | sync | remote_apply; read only
#                       when the cluster is created. sync and remote_apply wait for the standby
#                       whose application_name is `standby` (synchronous_standby_names).
#                auth:  trust for every user, database and host, replication included (user postgres).
#                slot:  physical replication slot `standby`, created with the cluster.
#                ready: pg_isready -h 127.0.0.1 -p 5432 -U postgres
#                       (TCP answers only once the final server runs: while the cluster is
#                       being created its temporary server listens on the Unix socket only.)
#                archive: with SHAKEDOWN_ARCHIVE_URL (the backup agent, `shakedown serve backup`)
#                       the cluster is created with 1 MB WAL segments and archives each one with
#                       `shakedown wal-push` (an HTTP PUT to the agent, so a partition from the
#                       backup host fails it and PostgreSQL retries), archive_timeout = 1s
#                       (a recovery point at most a second old). The standby cloned from it
#                       inherits the settings and archives once promoted. The settings are
#                       written only when the cluster is created; the URL and
#                       SHAKEDOWN_ARCHIVE_IGNORE_FAILURES (1: the `wal-archive-gap` bug) are read
#                       by wal-push from the server's environment at each call.
#
#   pg-replica   PostgreSQL 15 hot standby on 0.0.0.0:5432, data in /var/lib/shakedown/pg.
#                An empty data dir is cloned with pg_basebackup (-R, slot `standby`), retried
#                every 0.5 s, at most 240 times, while the primary starts up.
#                env:   SHAKEDOWN_PRIMARY_HOST (required when the data dir is empty): the
#                       primary's host name, e.g. its container name on the run's network,
#                       or the link proxy's (the run streams through it, for latency faults);
#                       SHAKEDOWN_PRIMARY_PORT (default 5432). Both end up in primary_conninfo.
#                config: cluster_name = 'standby' (its application_name on the primary) and
#                       synchronous_standby_names = '' (once promoted it must not wait for a
#                       standby it does not have), both in postgresql.auto.conf.
#                ready: pg_isready -h 127.0.0.1 -p 5432 -U postgres
#                streaming: psql -h 127.0.0.1 -U postgres -Atc 'SELECT status FROM pg_stat_wal_receiver'
#                       prints `streaming`.
#
#     Both PostgreSQL roles: postgres becomes PID 1 (exec), so SIGKILL of the container kills it.
#     Restarted on a used data dir, postgres runs crash recovery; a `standby.signal` file in the
#     data dir (written by the watchdog to fence a node) brings it up read-only in recovery.
#     A cluster whose creation was killed half-way is removed and created again: the cluster is
#     built in the hidden subdirectory .shakedown-init and moved into place with PG_VERSION last,
#     so "PG_VERSION exists" means "complete".
#
#   broker       RabbitMQ 3.10 (AMQP) on 0.0.0.0:5672, user guest/guest allowed from any host
#                (loopback_users = none), no plugins, node name rabbit@localhost (so the node
#                and its data in /var/lib/rabbitmq/mnesia do not depend on the container's
#                host name), logs on stdout. The node's settings are written to /etc/rabbitmq
#                at start, so `docker exec` CLI tools find the node. This script stays PID 1
#                (forwards SIGTERM, exits with the broker's status); SIGKILL kills both.
#                ready: rabbitmq-diagnostics -q check_port_connectivity
#                       (exits 0 once port 5672 accepts connections. Not `ping`: it answers as
#                       soon as the Erlang node is up, 2-3 s before the rabbit app has booted
#                       and opened 5672, and after a restart on old data even longer before.
#                       Each call starts an Erlang VM: ~2 s.)
#
#   redis        Redis 7 on 0.0.0.0:6379, no protected mode, append-only file in
#                /var/lib/shakedown/redis.
#                ready: redis-cli -h 127.0.0.1 ping   (prints PONG)
#
#   objects      s3s-fs (S3 API) on 0.0.0.0:9000, objects as files under /var/lib/shakedown/objects
#                (mount a volume there: each object is written to a temporary name and renamed
#                into place, so a SIGKILL loses no acknowledged object and leaves no half one).
#                Needs the real /usr/local/bin/s3s-fs (`shakedown image build` puts in a stub
#                that fails, saying so, when it did not find it: `scripts/real-services.sh s3s-fs`
#                builds it). s3s-fs is PID 1 (exec).
#                env:   SHAKEDOWN_S3_ACCESS_KEY (default shakedown),
#                       SHAKEDOWN_S3_SECRET_KEY (default shakedown-secret): the one key it takes.
#                       Buckets are directories; the adapter creates its bucket (CreateBucket).
#                ready: bash -c 'exec 3<>/dev/tcp/127.0.0.1/9000'   (the port accepts)
#
#   anything else: exec'd as is, e.g. `shakedown-node shakedown serve gateway ...` or `bash`.
set -euo pipefail

PGBIN=/usr/lib/postgresql/15/bin
PGDATA=/var/lib/shakedown/pg
# The cluster is created here and then moved up into PGDATA (see above).
PG_STAGING=$PGDATA/.shakedown-init
BASEBACKUP_TRIES_MAX=240
BASEBACKUP_RETRY_DELAY_S=0.5
# A primary that does not answer at all (no route yet) must not eat the whole retry budget.
BASEBACKUP_CONNECT_TIMEOUT_S=5
# The temporary server that creates the replication slot starts within seconds; allow slow disks.
PG_CTL_TIMEOUT_S=120
REDIS_DIR=/var/lib/shakedown/redis
OBJECTS_DIR=/var/lib/shakedown/objects

ROLE=${1:-}

log() { printf 'shakedown-node %s: %s\n' "$ROLE" "$*" >&2; }
die() {
    log "$*"
    exit 1
}
as_user() {
    local user=$1
    shift
    setpriv --reuid="$user" --regid="$user" --init-groups "$@"
}

usage() {
    cat <<'EOF'
usage: shakedown-node pg-primary | pg-replica | broker | redis | objects | COMMAND [ARG...]
See the comment at the top of /usr/local/bin/shakedown-node for ports, environment and readiness.
EOF
}

# --- PostgreSQL ----------------------------------------------------------------------------

pg_prepare_dirs() {
    # The socket directory lives under /run, which the image does not keep.
    install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    # A fresh Docker volume is an empty root-owned directory.
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
}

# True when PGDATA holds a complete cluster; otherwise clears what an interrupted init left.
pg_initialised() {
    if [ -f "$PGDATA/PG_VERSION" ]; then
        # Killed between moving PG_VERSION and removing the (then empty) staging directory.
        rm -rf "$PG_STAGING"
        return 0
    fi
    if [ -n "$(ls -A "$PGDATA")" ]; then
        log "removing what an interrupted init left in $PGDATA"
        find "$PGDATA" -mindepth 1 -delete
    fi
    return 1
}

# Move the staged cluster into PGDATA, PG_VERSION last: it marks the cluster complete.
pg_publish() {
    local entry
    for entry in "$PG_STAGING"/* "$PG_STAGING"/.[!.]*; do
        [ -e "$entry" ] || continue
        [ "${entry##*/}" = PG_VERSION ] || mv "$entry" "$PGDATA/"
    done
    mv "$PG_STAGING/PG_VERSION" "$PGDATA/PG_VERSION"
    rmdir "$PG_STAGING"
}

pg_init_primary() {
    local sync_names commit
    case "${SHAKEDOWN_REPLICATION:-async}" in
        async) sync_names="''" commit=on ;;
        sync) sync_names="'standby'" commit=on ;;
        remote_apply) sync_names="'standby'" commit=remote_apply ;;
        *) die "SHAKEDOWN_REPLICATION=$SHAKEDOWN_REPLICATION: expected async, sync or remote_apply" ;;
    esac
    log "creating the cluster (replication ${SHAKEDOWN_REPLICATION:-async})"
    local segsize=()
    # Archived segments are shipped whole: 1 MB each keeps a second's archive_timeout cheap.
    [ -z "${SHAKEDOWN_ARCHIVE_URL:-}" ] || segsize=(--wal-segsize=1)
    as_user postgres "$PGBIN/initdb" -D "$PG_STAGING" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 "${segsize[@]}" >&2
    cat >>"$PG_STAGING/postgresql.conf" <<EOF

# shakedown-node pg-primary
listen_addresses = '*'
port = 5432
# Every service keeps a pool per node (8 connections): a dozen processes need more than 100.
max_connections = 300
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
wal_log_hints = on
wal_keep_size = '256MB'
wal_retrieve_retry_interval = '100ms'
cluster_name = 'primary'
fsync = on
synchronous_standby_names = $sync_names
synchronous_commit = $commit
EOF
    if [ -n "${SHAKEDOWN_ARCHIVE_URL:-}" ]; then
        cat >>"$PG_STAGING/postgresql.conf" <<'EOF'
archive_mode = on
archive_timeout = '1s'
archive_command = '/usr/local/bin/shakedown wal-push %p %f'
EOF
    fi
    cat >>"$PG_STAGING/pg_hba.conf" <<'EOF'

# shakedown-node: every container of the run's private network may connect.
host all all all trust
host replication all all trust
EOF
    # The slot is created on a temporary server reachable only on its Unix socket, so a replica
    # cannot clone the cluster before the slot exists; it must not wait for a standby either.
    as_user postgres "$PGBIN/pg_ctl" -D "$PG_STAGING" -w -t "$PG_CTL_TIMEOUT_S" \
        -o "-c listen_addresses='' -c synchronous_standby_names='' -c archive_mode=off" start >&2
    as_user postgres "$PGBIN/psql" -X -q -h /var/run/postgresql -U postgres -d postgres \
        -v ON_ERROR_STOP=1 -c "SELECT pg_create_physical_replication_slot('standby')" >&2
    as_user postgres "$PGBIN/pg_ctl" -D "$PG_STAGING" -w -t "$PG_CTL_TIMEOUT_S" -m fast stop >&2
    pg_publish
}

pg_init_replica() {
    local host=${SHAKEDOWN_PRIMARY_HOST:?SHAKEDOWN_PRIMARY_HOST must name the primary (an empty replica clones it)}
    local port=${SHAKEDOWN_PRIMARY_PORT:-5432}
    local try=1
    log "cloning the primary $host:$port (pg_basebackup, slot standby)"
    until as_user postgres env PGCONNECT_TIMEOUT="$BASEBACKUP_CONNECT_TIMEOUT_S" \
        "$PGBIN/pg_basebackup" -h "$host" -p "$port" -U postgres -D "$PG_STAGING" \
        -R -S standby -X stream -c fast >&2; do
        if [ "$try" -ge "$BASEBACKUP_TRIES_MAX" ]; then
            die "pg_basebackup from $host:$port failed $try times (BASEBACKUP_TRIES_MAX=$BASEBACKUP_TRIES_MAX); is the primary up?"
        fi
        try=$((try + 1))
        # pg_basebackup removes what it wrote when it fails; a kill leaves the rest to pg_initialised.
        rm -rf "$PG_STAGING"
        sleep "$BASEBACKUP_RETRY_DELAY_S"
    done
    log "cloned after $try attempt(s)"
    # postgresql.auto.conf, after pg_basebackup's primary_conninfo: overrides what the primary's
    # postgresql.conf says (cluster_name = 'primary', its synchronous_standby_names).
    cat >>"$PG_STAGING/postgresql.auto.conf" <<'EOF'
# shakedown-node pg-replica
cluster_name = 'standby'
synchronous_standby_names = ''
hot_standby = on
EOF
    pg_publish
}

pg_run() {
    pg_prepare_dirs
    if pg_initialised; then
        if [ -f "$PGDATA/standby.signal" ]; then
            log "starting on the existing cluster in $PGDATA, in recovery (standby.signal)"
        else
            log "starting on the existing cluster in $PGDATA (crash recovery if it was killed)"
        fi
    elif [ "$1" = primary ]; then
        pg_init_primary
    else
        pg_init_replica
    fi
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$PGBIN/postgres" -D "$PGDATA"
}

# --- RabbitMQ ------------------------------------------------------------------------------

broker_run() {
    install -d -o rabbitmq -g rabbitmq /var/lib/rabbitmq /var/log/rabbitmq /etc/rabbitmq
    # Read by the server and by every CLI tool (rabbitmq-diagnostics through `docker exec`).
    cat >/etc/rabbitmq/rabbitmq-env.conf <<'EOF'
NODENAME=rabbit@localhost
EOF
    cat >/etc/rabbitmq/rabbitmq.conf <<'EOF'
listeners.tcp.default = 5672
loopback_users = none
log.console = true
log.console.level = info
log.console.use_colors = off
log.file = false
EOF
    echo '[].' >/etc/rabbitmq/enabled_plugins
    chown rabbitmq:rabbitmq /etc/rabbitmq/*
    # The node name's host part must resolve to this container: Docker's /etc/hosts maps localhost.
    getent hosts localhost >/dev/null || die "localhost does not resolve; the node rabbit@localhost cannot start"
    cd /var/lib/rabbitmq
    # Left to itself, rabbitmq-server runs erl in the background and exits 0 however erl ended,
    # so a broker that failed to boot would look like a clean stop. With RABBITMQ_ALLOW_INPUT it
    # execs erl instead (-noinput is then passed by hand: nothing may read stdin), and this shell
    # stays PID 1: it forwards SIGTERM, exits with erl's status, and reaps the orphans that
    # `docker exec rabbitmq-diagnostics` leaves behind (erl as PID 1 would not).
    HOME=/var/lib/rabbitmq RABBITMQ_ALLOW_INPUT=true RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-noinput \
        setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups /usr/lib/rabbitmq/bin/rabbitmq-server &
    local pid=$! status=0
    trap 'kill -TERM "$pid" 2>/dev/null' TERM INT
    wait "$pid" || status=$?
    # A trapped signal ends `wait` early: wait again for erl's own exit.
    while kill -0 "$pid" 2>/dev/null; do
        status=0
        wait "$pid" || status=$?
    done
    log "rabbitmq-server exited with status $status"
    exit "$status"
}

# --- Redis ---------------------------------------------------------------------------------

redis_run() {
    install -d -o redis -g redis -m 750 "$REDIS_DIR"
    exec setpriv --reuid=redis --regid=redis --init-groups redis-server --bind 0.0.0.0 \
        --port 6379 --protected-mode no --appendonly yes --dir "$REDIS_DIR"
}

# --- Object storage (s3s-fs) ------------------------------------------------------------------

objects_run() {
    mkdir -p "$OBJECTS_DIR"
    # s3s-fs logs nothing without RUST_LOG; at info, `docker logs` shows it start and listen.
    RUST_LOG=${RUST_LOG:-info} exec /usr/local/bin/s3s-fs --host 0.0.0.0 --port 9000 \
        --access-key "${SHAKEDOWN_S3_ACCESS_KEY:-shakedown}" \
        --secret-key "${SHAKEDOWN_S3_SECRET_KEY:-shakedown-secret}" "$OBJECTS_DIR"
}

case "$ROLE" in
    pg-primary) pg_run primary ;;
    pg-replica) pg_run replica ;;
    broker) broker_run ;;
    redis) redis_run ;;
    objects) objects_run ;;
    -h | --help)
        usage
        exit 0
        ;;
    "")
        usage >&2
        exit 2
        ;;
    *) exec "$@" ;;
esac
