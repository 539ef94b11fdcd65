#!/usr/bin/env bash
# Real services for the real-adapter tests, all on loopback and in one project-owned directory:
#   PostgreSQL 15 primary          127.0.0.1:55432
#   PostgreSQL 15 hot standby      127.0.0.1:55433  (pg_basebackup -R, streaming, slot `standby`)
#   RabbitMQ 3.10 (AMQP)           127.0.0.1:55672
#   s3s-fs (S3 API, files on disk) 127.0.0.1:55900  (access key shakedown / shakedown-secret)
#   Redis 7 (the backup catalogue) 127.0.0.1:56379  (append-only file under $DIR/redis)
# Usage: scripts/real-services.sh up | down | status | s3s-fs
# `up` installs the Debian packages when missing (CI starts on a fresh machine), builds s3s-fs
# when missing, recreates every server's data from scratch, and waits until every server answers.
# `down` stops exactly what `up` started. Logs live under $SHAKEDOWN_REAL_DIR (default
# /tmp/shakedown-real); on failure their tail is printed. `s3s-fs` only builds the S3 server (if
# missing) and prints its path: the containers image takes it from there.
#
# s3s-fs is a Rust crate: `cargo install` builds it into $SHAKEDOWN_TOOLS_DIR (default target/tools
# in this repository), pinned and --locked, about three minutes once. It keeps each object as a
# file written to a temporary name and renamed into place, so a SIGKILL loses no acknowledged
# object and never leaves half of one. The bucket is not made here: the adapter creates it.
#
# The primary archives its WAL continuously (issue 15): each completed segment is copied into
# $DIR/wal-archive by `archive_command`, first to a temporary name and then renamed, so a segment
# under its final name is always whole (and synced to disk before the rename); an existing one is
# never overwritten (the command fails, PostgreSQL keeps the segment and retries, and the server
# log says why). No `archive_timeout`: a forced segment switch every second made the standby's
# flush lag, as pg_stat_replication shows it between status messages, jump by the rest of a 16 MB
# segment (11 MB seen), which failed the probe test and would sway the watchdog's max_lag rule;
# tests/real_backup.rs closes segments itself with pg_switch_wal().
# The standby inherits the settings and archives nothing until it is promoted (then it archives
# its new timeline into the same directory; segment names carry the timeline, so none collide).
set -euo pipefail

DIR=${SHAKEDOWN_REAL_DIR:-/tmp/shakedown-real}
PGBIN=/usr/lib/postgresql/15/bin
PRIMARY_PORT=${SHAKEDOWN_PG_PRIMARY_PORT:-55432}
STANDBY_PORT=${SHAKEDOWN_PG_STANDBY_PORT:-55433}
AMQP_PORT=${SHAKEDOWN_AMQP_PORT:-55672}
S3_PORT=${SHAKEDOWN_S3_PORT:-55900}
REDIS_PORT=${SHAKEDOWN_REDIS_PORT:-56379}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${SHAKEDOWN_TOOLS_DIR:-$ROOT/target/tools}
# The newest s3s-fs that builds with the Rust toolchain here (1.95; 0.15 and later need 1.96).
S3S_FS_VERSION=0.14.1
S3S_FS=$TOOLS/bin/s3s-fs

say() { printf 'real-services: %s\n' "$*" >&2; }
die() { say "$*"; for f in "$DIR"/logs/*.log "$DIR"/rabbit/stdout.log "$DIR"/redis/redis.log "$TOOLS"/s3s-fs-install.log; do [ -f "$f" ] && { say "--- tail $f"; tail -n 20 "$f" >&2; }; done; exit 1; }
as_pg() { runuser -u postgres -- "$@"; }

install() {
    local missing=()
    [ -x "$PGBIN/initdb" ] || missing+=(postgresql-15)
    [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
    [ -x /usr/bin/redis-server ] && [ -x /usr/bin/redis-cli ] || missing+=(redis-server)
    [ ${#missing[@]} -eq 0 ] && return
    say "installing ${missing[*]} (Debian packages)"
    if [ "$(id -u)" -ne 0 ]; then die "need root to apt-get install ${missing[*]}"; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

# Build s3s-fs into $TOOLS unless the pinned version is there. Its own temporary target dir
# (CARGO_TARGET_DIR unset): the project's build cache is not mixed with a tool's.
s3s_fs_install() {
    if [ -x "$S3S_FS" ] && [ "$("$S3S_FS" --version 2>/dev/null)" = "s3s-fs $S3S_FS_VERSION" ]; then return; fi
    command -v cargo >/dev/null || die "cargo is needed to build s3s-fs (the Rust toolchain)"
    say "building s3s-fs $S3S_FS_VERSION into $TOOLS (cargo install, a few minutes, once)"
    mkdir -p "$TOOLS"
    local started=$SECONDS
    env -u CARGO_TARGET_DIR cargo install s3s-fs --version "=$S3S_FS_VERSION" --features binary --locked \
        --root "$TOOLS" >"$TOOLS/s3s-fs-install.log" 2>&1 || die "cargo install s3s-fs failed"
    say "built s3s-fs in $((SECONDS - started)) s"
}

s3_up() {
    rm -rf "${DIR:?}/s3"; mkdir -p "$DIR/s3/data" "$DIR/logs"
    RUST_LOG=info setsid "$S3S_FS" --host 127.0.0.1 --port "$S3_PORT" --access-key shakedown --secret-key shakedown-secret \
        "$DIR/s3/data" >"$DIR/logs/s3s-fs.log" 2>&1 &
    echo $! >"$DIR/s3/s3s-fs.pid"
    local try
    for try in $(seq 100); do
        if (exec 3<>/dev/tcp/127.0.0.1/"$S3_PORT") 2>/dev/null; then return; fi
        kill -0 "$(cat "$DIR/s3/s3s-fs.pid")" 2>/dev/null || die "s3s-fs exited"
        sleep 0.1
    done
    die "s3s-fs did not listen on 127.0.0.1:$S3_PORT within 10 s"
}

rabbit_env() {
    export HOME=$DIR/rabbit/home RABBITMQ_NODENAME=shakedown@localhost \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$AMQP_PORT RABBITMQ_DIST_PORT=$((AMQP_PORT + 1)) \
        ERL_EPMD_PORT=$((AMQP_PORT - 1303)) ERL_EPMD_ADDRESS=127.0.0.1 \
        RABBITMQ_MNESIA_BASE=$DIR/rabbit/mnesia RABBITMQ_LOG_BASE=$DIR/rabbit/log \
        RABBITMQ_CONFIG_FILE=$DIR/rabbit/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$DIR/rabbit/enabled_plugins \
        RABBITMQ_PID_FILE=$DIR/rabbit/rabbit.pid RABBITMQ_CONF_ENV_FILE=$DIR/rabbit/rabbitmq-env.conf \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
        RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

pg_up() {
    mkdir -p "$DIR/logs" "$DIR/sock"
    for node in primary standby wal-archive; do rm -rf "${DIR:?}/$node"; mkdir -p "$DIR/$node"; chmod 700 "$DIR/$node"; done
    chown -R postgres: "$DIR/logs" "$DIR/sock" "$DIR/primary" "$DIR/standby" "$DIR/wal-archive"
    as_pg "$PGBIN/initdb" -D "$DIR/primary" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$DIR/logs/initdb.log" 2>&1 \
        || die "initdb failed"
    cat >>"$DIR/primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PRIMARY_PORT
unix_socket_directories = '$DIR/sock'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
wal_log_hints = on
wal_keep_size = '256MB'
wal_retrieve_retry_interval = '100ms'
cluster_name = 'primary'
fsync = on
archive_mode = on
archive_command = 'test ! -f "$DIR/wal-archive/%f" && cp "%p" "$DIR/wal-archive/.%f.tmp" && sync "$DIR/wal-archive/.%f.tmp" && mv "$DIR/wal-archive/.%f.tmp" "$DIR/wal-archive/%f"'
CONF
    as_pg "$PGBIN/pg_ctl" -D "$DIR/primary" -l "$DIR/logs/primary.log" -w -t 30 start >/dev/null || die "primary did not start"
    as_pg psql -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -qAt -c "SELECT pg_create_physical_replication_slot('standby')" >/dev/null
    as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$DIR/standby" -R -S standby -X stream -c fast \
        >"$DIR/logs/basebackup.log" 2>&1 || die "pg_basebackup failed"
    printf "port = %s\ncluster_name = 'standby'\n" "$STANDBY_PORT" >>"$DIR/standby/postgresql.conf"
    as_pg "$PGBIN/pg_ctl" -D "$DIR/standby" -l "$DIR/logs/standby.log" -w -t 30 start >/dev/null || die "standby did not start"
    local recovering
    recovering=$(psql -h 127.0.0.1 -p "$STANDBY_PORT" -U postgres -qAt -c "SELECT pg_is_in_recovery()")
    [ "$recovering" = t ] || die "the standby is not in recovery"
}

# Redis as the backup catalogue: one server, append-only file fsynced every second (Redis's
# default), no RDB snapshots; the pid file's process is the one `down` stops.
redis_up() {
    rm -rf "${DIR:?}/redis"; mkdir -p "$DIR/redis/data"
    cat >"$DIR/redis/redis.conf" <<CONF
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize no
dir $DIR/redis/data
appendonly yes
appendfsync everysec
save ""
logfile $DIR/redis/redis.log
CONF
    setsid /usr/bin/redis-server "$DIR/redis/redis.conf" >/dev/null 2>&1 &
    echo $! >"$DIR/redis/redis.pid"
    local try
    for try in $(seq 100); do
        if [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; then return; fi
        kill -0 "$(cat "$DIR/redis/redis.pid")" 2>/dev/null || die "redis-server exited"
        sleep 0.1
    done
    die "redis-server did not answer on 127.0.0.1:$REDIS_PORT within 10 s"
}

rabbit_up() {
    rabbit_env
    rm -rf "${DIR:?}/rabbit"; mkdir -p "$HOME" "$RABBITMQ_MNESIA_BASE" "$RABBITMQ_LOG_BASE"
    echo '[].' >"$RABBITMQ_ENABLED_PLUGINS_FILE"
    echo "listeners.tcp.default = 127.0.0.1:$AMQP_PORT" >"$RABBITMQ_CONFIG_FILE"
    setsid /usr/lib/rabbitmq/bin/rabbitmq-server >"$DIR/rabbit/stdout.log" 2>&1 &
    /usr/lib/rabbitmq/bin/rabbitmqctl wait --timeout 120 "$RABBITMQ_PID_FILE" >/dev/null 2>&1 || die "RabbitMQ did not start"
}

down() {
    # The pid file's process, only while it is still s3s-fs (a reused pid is not ours).
    if [ -f "$DIR/s3/s3s-fs.pid" ]; then
        local pid
        pid=$(cat "$DIR/s3/s3s-fs.pid")
        if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = s3s-fs ]; then kill "$pid" 2>/dev/null || true; fi
        rm -f "$DIR/s3/s3s-fs.pid"
    fi
    # Likewise redis-server; waited for (at most 5 s), since `up` reuses its port at once.
    if [ -f "$DIR/redis/redis.pid" ]; then
        local pid try
        pid=$(cat "$DIR/redis/redis.pid")
        if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = redis-server ]; then
            kill "$pid" 2>/dev/null || true
            for try in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
        fi
        rm -f "$DIR/redis/redis.pid"
    fi
    for node in standby primary; do
        if [ -f "$DIR/$node/postmaster.pid" ]; then
            as_pg "$PGBIN/pg_ctl" -D "$DIR/$node" -m immediate -w stop >/dev/null 2>&1 || true
        fi
    done
    if [ -d "$DIR/rabbit" ]; then
        rabbit_env
        /usr/lib/rabbitmq/bin/rabbitmqctl stop >/dev/null 2>&1 || true
        # epmd outlives `rabbitmqctl stop`: kill the one this script's broker started — it
        # inherited our ERL_EPMD_PORT — and no other (another RabbitMQ's epmd is not ours).
        for pid in $(pgrep -x epmd); do
            if tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qx "ERL_EPMD_PORT=$ERL_EPMD_PORT"; then
                kill "$pid" 2>/dev/null || true
            fi
        done
    fi
}

status() {
    psql -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -qAt -c "SELECT 'primary in_recovery=' || pg_is_in_recovery()" 2>/dev/null || echo "primary: down"
    psql -h 127.0.0.1 -p "$STANDBY_PORT" -U postgres -qAt -c "SELECT 'standby in_recovery=' || pg_is_in_recovery()" || echo "standby: down"
    if (exec 3<>/dev/tcp/127.0.0.1/"$AMQP_PORT") 2>/dev/null; then echo "rabbitmq: up"; else echo "rabbitmq: down"; fi
    if (exec 3<>/dev/tcp/127.0.0.1/"$S3_PORT") 2>/dev/null; then echo "s3s-fs: up"; else echo "s3s-fs: down"; fi
    if [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; then echo "redis: up"; else echo "redis: down"; fi
    if [ -d "$DIR/wal-archive" ]; then echo "wal-archive: $(find "$DIR/wal-archive" -maxdepth 1 -name '[0-9A-F]*' | wc -l) files"; fi
}

case "${1:-}" in
    up)
        install
        s3s_fs_install
        down
        pg_up
        rabbit_up
        s3_up
        redis_up
        say "up: primary 127.0.0.1:$PRIMARY_PORT (WAL archive $DIR/wal-archive), standby 127.0.0.1:$STANDBY_PORT, AMQP 127.0.0.1:$AMQP_PORT, S3 http://127.0.0.1:$S3_PORT, Redis 127.0.0.1:$REDIS_PORT (logs in $DIR)"
        ;;
    down) down; say "down" ;;
    status) status ;;
    s3s-fs) s3s_fs_install; echo "$S3S_FS" ;;
    *) echo "usage: $0 up | down | status | s3s-fs" >&2; exit 254 ;;
esac
