#!/usr/bin/env bash
# A real Redis Cluster for the tests: three masters and three replicas from Debian's redis-server,
# plain processes on loopback ports 57001-57006 (run by .ci/services.sh).
#
#   .ci/redis-cluster.sh [up]   start the nodes that are not running, create the cluster if it has
#                               no slots yet, wait for cluster_state:ok; prints the URL
#   .ci/redis-cluster.sh stop   shut every node down
#   .ci/redis-cluster.sh reset  stop, forget the cluster (nodes.conf and data), then up
#
# Idempotent: with the cluster running, `up` only checks it. A node's config lives in
# $BURR_CI_DIR/redis-cluster/<port>/redis.conf, so a test that kills a node starts it again with
# `redis-server <that file>` (it rejoins as a replica of the node that took over).
set -euo pipefail

CI_DIR="${BURR_CI_DIR:-/var/tmp/burr-ci}"
CLUSTER_DIR="$CI_DIR/redis-cluster"
PORTS=(57001 57002 57003 57004 57005 57006) # cluster bus: 47001-47006
START_TIMEOUT="${BURR_CI_START_TIMEOUT:-60}"

log() { echo "[redis-cluster] $*" >&2; }
die() {
  log "ERROR: $1"
  [[ -n "${2:-}" && -f "$2" ]] && tail -n 40 "$2" >&2
  exit 1
}

cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }
node_up() { [[ $(cli "$1" ping 2>/dev/null) == PONG ]]; }
cluster_field() { cli "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"; }

start_node() {
  local port=$1 dir="$CLUSTER_DIR/$1"
  mkdir -p "$dir"
  # Rewritten every time so this file stays the truth. No persistence: test data is throwaway.
  # The bus port is 10000 below the node's (the default, 10000 above, would be past 65535).
  # A 2 s node timeout makes failovers quick; validity factor 0 lets any replica take over.
  cat >"$dir/redis.conf" <<EOF
port $port
bind 127.0.0.1
dir $dir
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
save ""
appendonly no
cluster-enabled yes
cluster-config-file nodes.conf
cluster-port $((port - 10000))
cluster-node-timeout 2000
cluster-replica-validity-factor 0
EOF
  if node_up "$port"; then return; fi
  log "starting node on 127.0.0.1:$port"
  redis-server "$dir/redis.conf" || die "redis-server on $port failed to start" "$dir/redis.log"
  local deadline=$((SECONDS + START_TIMEOUT))
  until node_up "$port"; do
    ((SECONDS < deadline)) || die "node $port did not answer within ${START_TIMEOUT}s" "$dir/redis.log"
    [[ -f $dir/redis.pid ]] && ! kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null && die "node $port exited" "$dir/redis.log"
    sleep 0.2
  done
}

up() {
  command -v redis-server >/dev/null || die "redis-server is not installed (apt-get install redis-server)"
  for port in "${PORTS[@]}"; do start_node "$port"; done
  if [[ $(cluster_field "${PORTS[0]}" cluster_slots_assigned) == 0 ]]; then
    log "creating the cluster (3 masters, 1 replica each)"
    local nodes=()
    for port in "${PORTS[@]}"; do nodes+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$CLUSTER_DIR/create.log" 2>&1 ||
      die "redis-cli --cluster create failed" "$CLUSTER_DIR/create.log"
  fi
  # Every node must see every slot served and every node known, replicas in sync.
  local deadline=$((SECONDS + START_TIMEOUT))
  for port in "${PORTS[@]}"; do
    until [[ $(cluster_field "$port" cluster_state) == ok && $(cluster_field "$port" cluster_known_nodes) == ${#PORTS[@]} ]]; do
      ((SECONDS < deadline)) || die "node $port: cluster not ok within ${START_TIMEOUT}s ($(cluster_field "$port" cluster_state))" "$CLUSTER_DIR/$port/redis.log"
      sleep 0.2
    done
  done
  until [[ $(cli "${PORTS[0]}" cluster nodes | grep -c 'master.* connected [0-9]') == 3 &&
    $(cli "${PORTS[0]}" cluster nodes | grep -c 'slave.* connected') == 3 ]]; do
    ((SECONDS < deadline)) || die "the cluster has not 3 serving masters and 3 replicas: $(cli "${PORTS[0]}" cluster nodes)"
    sleep 0.2
  done
  log "ok"
  echo "redis+cluster://127.0.0.1:${PORTS[0]},127.0.0.1:${PORTS[1]},127.0.0.1:${PORTS[2]}"
}

stop() {
  for port in "${PORTS[@]}"; do
    if node_up "$port"; then
      log "stopping node $port"
      cli "$port" shutdown nosave >/dev/null 2>&1 || true
    fi
  done
}

case "${1:-up}" in
  up) up ;;
  stop) stop ;;
  reset)
    stop
    rm -rf "$CLUSTER_DIR"
    up
    ;;
  *)
    echo "usage: $0 [up|stop|reset]" >&2
    exit 2
    ;;
esac
