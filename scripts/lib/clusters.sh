# Sourced by servers.sh: clusters on loopback ports of their own, for the
# failover tests of internal/chaos (cluster_*_test.go) and the benchmark's
# cluster rows:
#
#   - a Redis Cluster of 3 masters and 3 replicas, every write fsynced to
#     each node's append-only file (CONVEYOR_REDIS_HA_CLUSTER);
#   - a 3-node RabbitMQ cluster, joined with rabbitmqctl join_cluster, its
#     Erlang distribution and an epmd of its own on loopback
#     (CONVEYOR_RABBITMQ_CLUSTER_URL, a multi-address URL, and
#     CONVEYOR_RABBITMQ_CLUSTER_NODES, CONVEYOR_RABBITMQ_CLUSTER_EPMD_PORT);
#   - a PostgreSQL primary with a streaming replica
#     (CONVEYOR_POSTGRES_HA_URL, multi-host with
#     target_session_attrs=read-write, and CONVEYOR_POSTGRES_HA_DIR, where
#     each node's data directory is named by its port).
#
# The tests kill, stop and promote these nodes and bring them back, so each
# is started with a configuration a test can restart it from. None of them
# shares a port, a data directory or an epmd with the single servers.

REDIS_HA_PORTS="${CONVEYOR_REDIS_HA_PORTS:-7201 7202 7203 7204 7205 7206}"
RABBIT_CLUSTER_PORTS="${CONVEYOR_RABBITMQ_CLUSTER_PORTS:-5701 5702 5703}"
RABBIT_CLUSTER_EPMD="${CONVEYOR_RABBITMQ_CLUSTER_EPMD_PORT:-4380}"
PG_HA_PORTS="${CONVEYOR_PG_HA_PORTS:-5441 5442}"

start_clusters() {
  start_redis_ha
  start_rabbitmq_cluster
  start_postgres_ha
}

# redis_ha_conf writes node $1's configuration into $2/redis.conf: a test
# restarts a killed node from it (INFO server names the file).
redis_ha_conf() {
  cat >"$2/redis.conf" <<CONF
bind 127.0.0.1
port $1
dir $2
daemonize yes
pidfile $2/redis.pid
logfile $2/redis.log
cluster-enabled yes
cluster-config-file $2/nodes.conf
# A replica takes over 2 s after its master stops answering.
cluster-node-timeout 2000
appendonly yes
appendfsync always
save ""
CONF
}

start_redis_ha() {
  need_pkg redis-server redis-server
  need_pkg redis-tools redis-cli
  local addrs=() p dir
  for p in $REDIS_HA_PORTS; do
    fresh_redis_dir "$p" "redis-ha-$p"
    redis_ha_conf "$p" "$dir"
    redis-server "$dir/redis.conf" || die "redis cluster node $p did not start"
    STOP_HOOKS+=("redis-cli -p $p shutdown nosave")
    wait_for 20 redis_up "$p" || die "redis cluster node $p does not answer: $(tail -5 "$dir/redis.log")"
    addrs+=("127.0.0.1:$p")
  done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$SERVERS_DIR/redis-ha-create.log" 2>&1 ||
    die "redis-cli --cluster create --cluster-replicas 1 failed: $(tail -5 "$SERVERS_DIR/redis-ha-create.log")"
  local first=${addrs[0]#*:}
  wait_for 30 redis_ha_ready "$first" || die "the redis cluster with replicas never had 3 masters and 3 linked replicas: $(redis-cli -p "$first" cluster nodes)"
  CONVEYOR_REDIS_HA_CLUSTER=$(IFS=,; echo "${addrs[*]}")
  export CONVEYOR_REDIS_HA_CLUSTER
  echo "redis cluster with replicas: $CONVEYOR_REDIS_HA_CLUSTER"
}

# redis_ha_ready: state ok, 3 masters, 3 replicas each linked to its master.
redis_ha_ready() {
  local nodes
  redis-cli -p "$1" cluster info | grep -q cluster_state:ok || return 1
  nodes=$(redis-cli -p "$1" cluster nodes)
  [ "$(grep -c master <<<"$nodes")" = 3 ] && [ "$(grep -c slave <<<"$nodes")" = 3 ] || return 1
  local p
  for p in $REDIS_HA_PORTS; do
    if redis-cli -p "$p" info replication | grep -q role:slave; then
      redis-cli -p "$p" info replication | grep -q master_link_status:up || return 1
    fi
  done
}

# rabbit_cluster_env prints the environment of cluster node $1 (a port).
rabbit_cluster_env() {
  local dir="$SERVERS_DIR/rabbitmq-cluster/$1"
  echo "RABBITMQ_NODENAME=conveyor-c$1@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$1" \
    "RABBITMQ_DIST_PORT=$((20000 + $1)) RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf" \
    "RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log" \
    "ERL_EPMD_PORT=$RABBIT_CLUSTER_EPMD ERL_EPMD_ADDRESS=127.0.0.1"
}

rabbit_cluster_up() { ERL_EPMD_PORT=$RABBIT_CLUSTER_EPMD rabbitmqctl -q -n "$1" await_startup --timeout 5; }

start_rabbitmq_cluster() {
  need_pkg rabbitmq-server rabbitmq-server
  local p node nodes=() addrs=() first=""
  for p in $RABBIT_CLUSTER_PORTS; do
    ERL_EPMD_PORT=$RABBIT_CLUSTER_EPMD rabbitmqctl -q -n "conveyor-c$p@localhost" stop >/dev/null 2>&1 || true
  done
  rm -rf "$SERVERS_DIR/rabbitmq-cluster"
  # The nodes' own epmd (the first node starts it) goes after them.
  STOP_HOOKS+=("epmd -port $RABBIT_CLUSTER_EPMD -kill")
  for p in $RABBIT_CLUSTER_PORTS; do
    local dir="$SERVERS_DIR/rabbitmq-cluster/$p"
    mkdir -p "$dir/mnesia" "$dir/log"
    printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users.guest = true\n' "$p" >"$dir/rabbitmq.conf"
    chown -R rabbitmq:rabbitmq "$SERVERS_DIR/rabbitmq-cluster" 2>/dev/null || true
    # The distribution listens on loopback only; env(1) keeps the Erlang
    # term's braces out of word splitting.
    # shellcheck disable=SC2046
    env $(rabbit_cluster_env "$p") \
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
      rabbitmq-server -detached >/dev/null 2>&1 || die "rabbitmq cluster node $p did not start"
    node="conveyor-c$p@localhost"
    STOP_HOOKS+=("ERL_EPMD_PORT=$RABBIT_CLUSTER_EPMD rabbitmqctl -q -n $node stop")
    nodes+=("$node")
    addrs+=("127.0.0.1:$p")
  done
  for node in "${nodes[@]}"; do
    wait_for 120 rabbit_cluster_up "$node" ||
      die "rabbitmq cluster node $node does not answer: $(tail -20 "$SERVERS_DIR"/rabbitmq-cluster/*/log/*.log 2>/dev/null)"
  done
  first=${nodes[0]}
  local ctl="env ERL_EPMD_PORT=$RABBIT_CLUSTER_EPMD rabbitmqctl -q -n"
  local joinlog="$SERVERS_DIR/rabbitmq-cluster/join.log"
  for node in "${nodes[@]:1}"; do
    { $ctl "$node" stop_app && $ctl "$node" reset && $ctl "$node" join_cluster "$first" && $ctl "$node" start_app; } >>"$joinlog" 2>&1 ||
      die "rabbitmq node $node could not join $first: $(tail -5 "$joinlog")"
  done
  for node in "${nodes[@]}"; do
    wait_for 60 rabbit_cluster_up "$node" || die "rabbitmq cluster node $node does not answer after joining"
  done
  local running
  running=$($ctl "$first" cluster_status --formatter json | grep -o '"running_nodes":\[[^]]*\]' | grep -o "conveyor-c[0-9]*@localhost" | sort -u | wc -l || true)
  [ "$running" = "${#nodes[@]}" ] || die "rabbitmq cluster has $running nodes, want ${#nodes[@]}: $($ctl "$first" cluster_status)"
  CONVEYOR_RABBITMQ_CLUSTER_URL="amqp://guest:guest@$(IFS=,; echo "${addrs[*]}")/"
  CONVEYOR_RABBITMQ_CLUSTER_NODES=$(IFS=,; echo "${nodes[*]}")
  export CONVEYOR_RABBITMQ_CLUSTER_URL CONVEYOR_RABBITMQ_CLUSTER_NODES
  export CONVEYOR_RABBITMQ_CLUSTER_EPMD_PORT="$RABBIT_CLUSTER_EPMD"
  echo "rabbitmq cluster: $CONVEYOR_RABBITMQ_CLUSTER_URL ($CONVEYOR_RABBITMQ_CLUSTER_NODES, epmd $RABBIT_CLUSTER_EPMD)"
}

PG_BIN="/usr/lib/postgresql/$PG_VERSION/bin"

pg_ha_as() { runuser -u postgres -- "$@"; }

# pg_ha_start starts the node whose data directory is $1 on port $2.
pg_ha_start() {
  pg_ha_as "$PG_BIN/pg_ctl" -D "$1" -l "$1.log" -w -o "-p $2 -k $(dirname "$1") -c listen_addresses=127.0.0.1" start >/dev/null ||
    die "PostgreSQL on port $2 did not start: $(tail -5 "$1.log")"
}

start_postgres_ha() {
  need_pkg postgresql "$PG_BIN/postgres"
  local dir="$SERVERS_DIR/pg-ha" primary replica p
  read -r primary replica <<<"$PG_HA_PORTS"
  for p in $primary $replica; do
    if [ -d "$dir/$p" ]; then pg_ha_as "$PG_BIN/pg_ctl" -D "$dir/$p" stop -m immediate >/dev/null 2>&1 || true; fi
  done
  rm -rf "$dir" && mkdir -p "$dir" && chown postgres:postgres "$dir"
  pg_ha_as "$PG_BIN/initdb" -D "$dir/$primary" -U conveyor -A trust >"$dir/initdb.log" 2>&1 ||
    die "initdb for the PostgreSQL primary failed: $(tail -5 "$dir/initdb.log")"
  # Off until a test turns it on (ALTER SYSTEM, on whichever node is the
  # primary then); copied to the replica with the rest of the directory.
  cat >>"$dir/$primary/postgresql.conf" <<CONF
max_connections = 200
wal_keep_size = 256MB
synchronous_standby_names = ''
CONF
  pg_ha_start "$dir/$primary" "$primary"
  STOP_HOOKS+=("runuser -u postgres -- $PG_BIN/pg_ctl -D $dir/$primary stop -m fast")
  pg_ha_as "$PG_BIN/createdb" -h 127.0.0.1 -p "$primary" -U conveyor conveyor || die "creating the conveyor database on the primary failed"
  pg_ha_as "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$primary" -U conveyor -D "$dir/$replica" -X stream -R -c fast \
    -d "application_name=pg$replica" >"$dir/basebackup.log" 2>&1 ||
    die "pg_basebackup for the PostgreSQL replica failed: $(tail -5 "$dir/basebackup.log")"
  pg_ha_start "$dir/$replica" "$replica"
  STOP_HOOKS+=("runuser -u postgres -- $PG_BIN/pg_ctl -D $dir/$replica stop -m fast")
  wait_for 30 sh -c "psql -h 127.0.0.1 -p $primary -U conveyor -d conveyor -tAc \"SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'\" | grep -q 1" ||
    die "the PostgreSQL replica on port $replica never streamed from the primary"
  export CONVEYOR_POSTGRES_HA_URL="postgres://conveyor@127.0.0.1:$primary,127.0.0.1:$replica/conveyor?target_session_attrs=read-write"
  export CONVEYOR_POSTGRES_HA_DIR="$dir"
  echo "postgres primary and replica: $CONVEYOR_POSTGRES_HA_URL"
}
