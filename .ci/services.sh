#!/usr/bin/env bash
# Real databases for the tests, run as plain processes on loopback (no Docker, no systemd here).
#
#   .ci/services.sh [up]   start PostgreSQL 15 (PgBouncer in front of it), Redis and FerretDB
#                          (MongoDB wire) if not running;
#                          installs/builds what is missing, then writes .ci/services.env
#   .ci/services.sh stop   stop them all cleanly (data is kept)
#
# Idempotent: on a machine where they already run, `up` only checks them (about a second).
# Everything lives under $BURR_CI_DIR (default /var/tmp/burr-ci), so it survives across runs
# and stays out of the git work tree.
set -euo pipefail

CI_DIR="${BURR_CI_DIR:-/var/tmp/burr-ci}"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ENV_FILE="$SCRIPT_DIR/services.env"

PG_PORT=55432
REDIS_PORT=56379
PGBOUNCER_PORT=56432
MONGO_PORT=57017
FERRETDB_VERSION=v1.24.2 # 1.x: v2 needs a PostgreSQL extension that is not available here
START_TIMEOUT="${BURR_CI_START_TIMEOUT:-60}" # seconds each server gets to accept connections

PG_DIR="$CI_DIR/pg"
PGBOUNCER_DIR="$CI_DIR/pgbouncer"
REDIS_DIR="$CI_DIR/redis"
FERRET_DIR="$CI_DIR/ferretdb"
BIN_DIR="$CI_DIR/bin"

log() { echo "[services] $*" >&2; }

# die MESSAGE [LOGFILE]: fail loudly, with the end of the server's log when there is one.
die() {
  log "ERROR: $1"
  if [[ -n "${2:-}" && -f "$2" ]]; then
    log "--- last lines of $2 ---"
    tail -n 40 "$2" >&2
  fi
  exit 1
}

# apt-get update only once per run, and only if something has to be installed.
APT_UPDATED=0
apt_install() {
  if [[ $APT_UPDATED == 0 ]]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# wait_for NAME LOGFILE COMMAND...: retry COMMAND until it succeeds or START_TIMEOUT runs out.
wait_for() {
  local name=$1 logfile=$2
  shift 2
  local deadline=$((SECONDS + START_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$name did not accept connections within ${START_TIMEOUT}s" "$logfile"
    sleep 0.2
  done
}

# tcp_open PORT: true if something accepts a TCP connection on 127.0.0.1:PORT (bash's /dev/tcp).
tcp_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# ---------------------------------------------------------------- PostgreSQL

pg_bin_dir() {
  # Debian's packaged server; /usr/local/bin/{postgres,pg_ctl,initdb} are symlinks into it.
  ls -d /usr/lib/postgresql/15/bin 2>/dev/null || ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# The cluster must run as user postgres: the server refuses to run as root.
as_postgres() {
  if [[ $(id -u) == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_up() {
  local bin
  bin=$(pg_bin_dir)
  if [[ -z $bin || ! -x $bin/pg_ctl ]]; then
    apt_install postgresql
    bin=$(pg_bin_dir)
  fi
  [[ -x $bin/pg_ctl ]] || die "no PostgreSQL server binaries found after install"

  local data="$PG_DIR/data" sock="$PG_DIR/run" logfile="$PG_DIR/postgres.log"
  mkdir -p "$data" "$sock"
  if [[ $(id -u) == 0 ]]; then chown postgres:postgres "$PG_DIR" "$data" "$sock"; fi
  chmod 700 "$data"

  if [[ ! -f $data/PG_VERSION ]]; then
    log "postgres: initdb $data"
    # trust over the private unix socket (only for this script's admin step),
    # password (scram) over TCP, so clients use the burr/burr credentials for real.
    as_postgres "$bin/initdb" -D "$data" -U postgres --encoding=UTF8 --locale=C \
      --auth-local=trust --auth-host=scram-sha-256 >"$PG_DIR/initdb.log" 2>&1 ||
      die "initdb failed" "$PG_DIR/initdb.log"
    echo "include_if_exists = 'burr-ci.conf'" >>"$data/postgresql.conf"
  fi
  # Rewritten every run so the settings here stay the truth; they apply on the next (re)start.
  cat >"$data/burr-ci.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sock'
max_connections = 200
EOF
  if [[ $(id -u) == 0 ]]; then chown postgres:postgres "$data/burr-ci.conf"; fi

  if as_postgres "$bin/pg_ctl" status -D "$data" >/dev/null 2>&1; then
    log "postgres: already running"
  else
    log "postgres: starting on 127.0.0.1:$PG_PORT"
    # pg_ctl removes a stale postmaster.pid itself; -w waits until it is up.
    as_postgres "$bin/pg_ctl" start -D "$data" -l "$logfile" -w -t "$START_TIMEOUT" >/dev/null ||
      die "postgres failed to start" "$logfile"
  fi
  wait_for postgres "$logfile" pg_isready -q -h 127.0.0.1 -p "$PG_PORT"

  # Role and database, created only when missing (fast no-op when they exist).
  # CREATEDB so tests may create throwaway databases of their own.
  as_postgres "$bin/psql" -h "$sock" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt >/dev/null <<'SQL' ||
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'burr') THEN
    CREATE ROLE burr LOGIN CREATEDB PASSWORD 'burr';
  END IF;
END $$;
SELECT 'CREATE DATABASE burr OWNER burr' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'burr')
\gexec
SQL
    die "could not create role/database burr" "$logfile"
}

pg_stop() {
  local bin data="$PG_DIR/data"
  bin=$(pg_bin_dir)
  if [[ -n $bin && -f $data/postmaster.pid ]] && as_postgres "$bin/pg_ctl" status -D "$data" >/dev/null 2>&1; then
    log "postgres: stopping"
    as_postgres "$bin/pg_ctl" stop -D "$data" -m fast -w -t 30 >/dev/null
  else
    log "postgres: not running"
  fi
}

# ---------------------------------------------------------------- PgBouncer (in front of the PostgreSQL above)

pgbouncer_pid() {
  # The pid from its pidfile, only if that process is still a pgbouncer (pids get reused).
  local pid
  pid=$(cat "$PGBOUNCER_DIR/pgbouncer.pid" 2>/dev/null) || return 1
  [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == pgbouncer ]] && echo "$pid"
}

pgbouncer_up() {
  command -v pgbouncer >/dev/null || apt_install pgbouncer # Debian's 1.18: no prepared statements in transaction mode
  local logfile="$PGBOUNCER_DIR/pgbouncer.log"
  mkdir -p "$PGBOUNCER_DIR"
  # Transaction pooling, as large deployments run it; the store's URL says `pgbouncer=true`
  # (stores/src/postgres/README.md). connect_query sets the statement timeout the store cannot
  # send through PgBouncer. The userlist holds the CI database's test password (CI only).
  cat >"$PGBOUNCER_DIR/pgbouncer.ini" <<EOF
[databases]
burr = host=127.0.0.1 port=$PG_PORT dbname=burr connect_query='SET statement_timeout = 4000'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $PGBOUNCER_DIR/userlist.txt
pool_mode = transaction
max_client_conn = 900
default_pool_size = 20
logfile = $logfile
pidfile = $PGBOUNCER_DIR/pgbouncer.pid
EOF
  echo '"burr" "burr"' >"$PGBOUNCER_DIR/userlist.txt"
  chmod 600 "$PGBOUNCER_DIR/userlist.txt"
  # PgBouncer refuses to run as root.
  if [[ $(id -u) == 0 ]]; then chown -R postgres:postgres "$PGBOUNCER_DIR"; fi

  if pgbouncer_pid >/dev/null && tcp_open "$PGBOUNCER_PORT"; then
    log "pgbouncer: already running"
    return
  fi
  log "pgbouncer: starting on 127.0.0.1:$PGBOUNCER_PORT (transaction pooling)"
  as_postgres pgbouncer -d -q "$PGBOUNCER_DIR/pgbouncer.ini" || die "pgbouncer failed to start" "$logfile"
  wait_for pgbouncer "$logfile" tcp_open "$PGBOUNCER_PORT"
}

pgbouncer_stop() {
  local pid
  if pid=$(pgbouncer_pid); then
    log "pgbouncer: stopping (pid $pid)"
    kill -INT "$pid" # fast shutdown: client and server connections closed at once
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
  else
    log "pgbouncer: not running"
  fi
}

# ---------------------------------------------------------------- Redis

redis_ping() { [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

redis_up() {
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p "$REDIS_DIR"
  local logfile="$REDIS_DIR/redis.log"
  if redis_ping; then
    log "redis: already running"
    return
  fi
  log "redis: starting on 127.0.0.1:$REDIS_PORT"
  # Our own daemon, not Debian's systemd unit. No persistence: test data is throwaway.
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
    --pidfile "$REDIS_DIR/redis.pid" --logfile "$logfile" --dir "$REDIS_DIR" \
    --save '' --appendonly no ||
    die "redis-server failed to start" "$logfile"
  wait_for redis "$logfile" redis_ping
}

redis_stop() {
  if command -v redis-cli >/dev/null && redis_ping; then
    log "redis: stopping"
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  else
    log "redis: not running"
  fi
}

# ---------------------------------------------------------------- FerretDB (MongoDB wire protocol)

ferret_pid() {
  # The pid from our pidfile, only if that process is still a ferretdb (pids get reused).
  local pid
  pid=$(cat "$FERRET_DIR/ferretdb.pid" 2>/dev/null) || return 1
  [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == ferretdb ]] && echo "$pid"
}

ferret_build() {
  # No MongoDB server is installable here; FerretDB builds from the Go module proxy (~3 min).
  # Not `go install ...@version`: that binary panics at start because the module lacks the
  # build/version/version.txt its release tooling generates. So: copy the module source,
  # write that file (as FerretDB's docs say to), and build the copy.
  local out=$1 src="$CI_DIR/src/FerretDB-$FERRETDB_VERSION" buildlog="$FERRET_DIR/build.log" t0=$SECONDS
  export PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null || die "go is needed to build FerretDB and was not found"
  log "ferretdb: building $FERRETDB_VERSION (one-time, takes a few minutes)"
  if [[ ! -f $src/go.mod ]]; then
    local mod
    mod=$(cd / && go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" 2>>"$buildlog" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') || true
    [[ -d $mod ]] || die "could not download the FerretDB module" "$buildlog"
    rm -rf "$src" && mkdir -p "$(dirname "$src")"
    cp -r "$mod" "$src" && chmod -R u+w "$src"
  fi
  echo "$FERRETDB_VERSION" >"$src/build/version/version.txt"
  (cd "$src" && GOFLAGS=-buildvcs=false go build -o "$out" ./cmd/ferretdb) >>"$buildlog" 2>&1 ||
    die "building FerretDB failed" "$buildlog"
  log "ferretdb: built in $((SECONDS - t0))s"
}

ferret_up() {
  local bin="$BIN_DIR/ferretdb" logfile="$FERRET_DIR/ferretdb.log"
  mkdir -p "$FERRET_DIR/data" "$FERRET_DIR/state" "$BIN_DIR"

  # Rebuild when missing, broken or another version (`--version` is instant).
  local have
  have=$("$bin" --version 2>/dev/null) || true
  [[ $have == *"version: $FERRETDB_VERSION"$'\n'* ]] || ferret_build "$bin"

  if ferret_pid >/dev/null && tcp_open "$MONGO_PORT"; then
    log "ferretdb: already running"
    return
  fi
  log "ferretdb: starting on 127.0.0.1:$MONGO_PORT"
  # SQLite backend (one file per database under data/), no auth, no telemetry;
  # debug HTTP endpoint off so it cannot clash with anything on :8088.
  # setsid+nohup: keeps running after this script (and its process group) exits.
  setsid nohup "$bin" \
    --handler=sqlite \
    --sqlite-url="file:$FERRET_DIR/data/" \
    --state-dir="$FERRET_DIR/state" \
    --listen-addr="127.0.0.1:$MONGO_PORT" \
    --debug-addr=- \
    --telemetry=disable \
    --log-level=warn \
    >>"$logfile" 2>&1 </dev/null &
  echo $! >"$FERRET_DIR/ferretdb.pid"
  wait_for ferretdb "$logfile" tcp_open "$MONGO_PORT"
  ferret_pid >/dev/null || die "ferretdb exited right after start" "$logfile"
}

ferret_stop() {
  local pid
  if pid=$(ferret_pid); then
    log "ferretdb: stopping (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$FERRET_DIR/ferretdb.pid"
  else
    log "ferretdb: not running"
  fi
}

# ---------------------------------------------------------------- main

write_env() {
  cat >"$ENV_FILE" <<EOF
export BURR_TEST_POSTGRES_URL=postgres://burr:burr@127.0.0.1:$PG_PORT/burr
export BURR_TEST_PGBOUNCER_URL=postgres://burr:burr@127.0.0.1:$PGBOUNCER_PORT/burr
export BURR_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export BURR_TEST_REDIS_CLUSTER_URL=$REDIS_CLUSTER_URL
export BURR_TEST_MONGO_URL=mongodb://127.0.0.1:$MONGO_PORT/burr
EOF
  cat "$ENV_FILE"
}

main() {
  case "${1:-up}" in
    up)
      mkdir -p "$CI_DIR"
      chmod 755 "$CI_DIR" # user postgres must be able to reach $CI_DIR/pg
      pg_up
      pgbouncer_up
      redis_up
      REDIS_CLUSTER_URL=$(bash "$SCRIPT_DIR/redis-cluster.sh" up)
      ferret_up
      write_env
      ;;
    stop)
      ferret_stop
      bash "$SCRIPT_DIR/redis-cluster.sh" stop
      redis_stop
      pgbouncer_stop
      pg_stop
      ;;
    *)
      echo "usage: $0 [up|stop]" >&2
      exit 2
      ;;
  esac
}

main "$@"
