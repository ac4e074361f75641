# Sourced by scripts/test: installs (Debian packages, once) and starts on
# loopback every server the tests need, exports where each one listens, and
# stops them on exit. A server that cannot start fails the run: tests never
# skip a backend because its server is missing.

SERVERS_DIR="${CONVEYOR_SERVERS_DIR:-/tmp/conveyor-servers}"
REDIS_PORT="${CONVEYOR_REDIS_PORT:-6399}"
REDIS_CLUSTER_PORTS="${CONVEYOR_REDIS_CLUSTER_PORTS:-7101 7102 7103}"
APT_UPDATED=""
STOP_HOOKS=()

die() { echo "scripts/test: $*" >&2; exit 1; }

stop_servers() {
  local i
  for ((i = ${#STOP_HOOKS[@]} - 1; i >= 0; i--)); do
    eval "${STOP_HOOKS[$i]}" >/dev/null 2>&1 || true
  done
}
trap stop_servers EXIT

# need_pkg installs Debian package $1 unless command (or file) $2 exists.
need_pkg() {
  command -v "$2" >/dev/null && return 0
  [ -x "$2" ] && return 0
  [ "$(id -u)" = 0 ] || die "$2 is missing and only root can install package $1"
  if [ -z "$APT_UPDATED" ]; then
    apt-get update -qq || die "apt-get update failed"
    APT_UPDATED=1
  fi
  # policy-rc.d refuses apt's own service start: there is no systemd, and we
  # start every server by hand on loopback below.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null || die "apt-get install $1 failed"
  command -v "$2" >/dev/null || [ -x "$2" ] || die "package $1 did not provide $2"
}

# wait_for runs "$2..." until it succeeds or $1 seconds pass.
wait_for() {
  local limit=$1; shift
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }
redis_down() { ! redis-cli -h 127.0.0.1 -p "$1" ping >/dev/null 2>&1; }

# fresh_redis_dir stops whatever Redis a previous run left on port $1 and
# returns an empty directory for the new one in $dir.
fresh_redis_dir() {
  redis-cli -p "$1" shutdown nosave >/dev/null 2>&1 || true
  wait_for 20 redis_down "$1" || die "a Redis left on port $1 does not stop"
  dir="$SERVERS_DIR/$2"
  rm -rf "$dir" && mkdir -p "$dir"
}

start_redis() {
  need_pkg redis-server redis-server
  need_pkg redis-tools redis-cli
  local dir
  fresh_redis_dir "$REDIS_PORT" "redis-$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" \
    --save '' --appendonly no --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" ||
    die "redis-server did not start"
  STOP_HOOKS+=("redis-cli -p $REDIS_PORT shutdown nosave")
  wait_for 20 redis_up "$REDIS_PORT" || die "redis-server on port $REDIS_PORT does not answer: $(tail -5 "$dir/redis.log")"
  export CONVEYOR_REDIS_ADDR="127.0.0.1:$REDIS_PORT"

  local addrs=() p
  for p in $REDIS_CLUSTER_PORTS; do
    fresh_redis_dir "$p" "redis-cluster-$p"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$p" --dir "$dir" --cluster-enabled yes \
      --cluster-config-file "$dir/nodes.conf" --save '' --appendonly no \
      --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" || die "redis cluster node $p did not start"
    STOP_HOOKS+=("redis-cli -p $p shutdown nosave")
    wait_for 20 redis_up "$p" || die "redis cluster node $p does not answer"
    addrs+=("127.0.0.1:$p")
  done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$SERVERS_DIR/redis-cluster-create.log" 2>&1 ||
    die "redis-cli --cluster create failed: $(tail -5 "$SERVERS_DIR/redis-cluster-create.log")"
  local first=${addrs[0]#*:}
  wait_for 30 sh -c "redis-cli -p $first cluster info | grep -q cluster_state:ok" || die "redis cluster never reached state ok"
  CONVEYOR_REDIS_CLUSTER=$(IFS=,; echo "${addrs[*]}")
  export CONVEYOR_REDIS_CLUSTER
  echo "redis: $CONVEYOR_REDIS_ADDR, cluster: $CONVEYOR_REDIS_CLUSTER"
}

PG_VERSION="${CONVEYOR_PG_VERSION:-15}"
PG_PORT="${CONVEYOR_PG_PORT:-5432}"

pg_up() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; }

start_postgres() {
  # The client tools may be there without the server: check for the server.
  need_pkg postgresql "/usr/lib/postgresql/$PG_VERSION/bin/postgres"
  if [ ! -d "/etc/postgresql/$PG_VERSION/main" ]; then
    pg_createcluster "$PG_VERSION" main >/dev/null || die "pg_createcluster failed"
  fi
  # Debian's postgresql.conf reads conf.d/ last, so these win.
  for k in listen_addresses port max_connections; do
    pg_conftool "$PG_VERSION" main remove "$k" 2>/dev/null || true
  done
  mkdir -p "/etc/postgresql/$PG_VERSION/main/conf.d"
  printf "listen_addresses = '127.0.0.1'\nport = %s\nmax_connections = 300\n" "$PG_PORT" \
    >"/etc/postgresql/$PG_VERSION/main/conf.d/conveyor.conf"
  pg_ctlcluster "$PG_VERSION" main stop -m fast >/dev/null 2>&1 || true
  pg_ctlcluster "$PG_VERSION" main start || die "PostgreSQL did not start: $(tail -5 /var/log/postgresql/postgresql-$PG_VERSION-main.log 2>/dev/null)"
  STOP_HOOKS+=("pg_ctlcluster $PG_VERSION main stop -m fast")
  wait_for 30 pg_up || die "PostgreSQL on port $PG_PORT does not answer"
  su postgres -c "psql -q -p $PG_PORT -tc \"SELECT 1 FROM pg_roles WHERE rolname = 'conveyor'\"" | grep -q 1 ||
    su postgres -c "psql -q -p $PG_PORT -c \"CREATE ROLE conveyor LOGIN SUPERUSER PASSWORD 'conveyor'\"" ||
    die "creating the conveyor role failed"
  su postgres -c "psql -q -p $PG_PORT -tc \"SELECT 1 FROM pg_database WHERE datname = 'conveyor'\"" | grep -q 1 ||
    su postgres -c "createdb -p $PG_PORT -O conveyor conveyor" || die "creating the conveyor database failed"
  export CONVEYOR_POSTGRES_URL="postgres://conveyor:conveyor@127.0.0.1:$PG_PORT/conveyor"
  echo "postgres: $CONVEYOR_POSTGRES_URL"
}

RABBIT_PORT="${CONVEYOR_RABBITMQ_PORT:-5672}"
RABBIT_NODE="rabbit@localhost"

rabbit_up() { rabbitmqctl -q -n "$RABBIT_NODE" await_startup --timeout 5; }

start_rabbitmq() {
  need_pkg rabbitmq-server rabbitmq-server
  # Node, epmd and distribution on loopback; a fresh data directory per run.
  cat >/etc/rabbitmq/rabbitmq-env.conf <<CONF
NODENAME=$RABBIT_NODE
NODE_IP_ADDRESS=127.0.0.1
ERL_EPMD_ADDRESS=127.0.0.1
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
MNESIA_BASE=$SERVERS_DIR/rabbitmq/mnesia
LOG_BASE=$SERVERS_DIR/rabbitmq/log
CONF
  cat >/etc/rabbitmq/rabbitmq.conf <<CONF
listeners.tcp.default = 127.0.0.1:$RABBIT_PORT
loopback_users.guest = true
CONF
  rabbitmqctl -q -n "$RABBIT_NODE" stop >/dev/null 2>&1 || true
  rm -rf "$SERVERS_DIR/rabbitmq" && mkdir -p "$SERVERS_DIR/rabbitmq/mnesia" "$SERVERS_DIR/rabbitmq/log"
  chown -R rabbitmq:rabbitmq "$SERVERS_DIR/rabbitmq" 2>/dev/null || true
  rabbitmq-server -detached >/dev/null 2>&1 || die "rabbitmq-server did not start: $(tail -5 "$SERVERS_DIR"/rabbitmq/log/*.log 2>/dev/null)"
  STOP_HOOKS+=("rabbitmqctl -q -n $RABBIT_NODE stop")
  # await_startup fails until the node has registered with epmd: loop on it.
  wait_for 120 rabbit_up || die "RabbitMQ does not answer: $(tail -20 "$SERVERS_DIR"/rabbitmq/log/*.log 2>/dev/null)"
  export CONVEYOR_RABBITMQ_URL="amqp://guest:guest@127.0.0.1:$RABBIT_PORT/"
  export CONVEYOR_RABBITMQ_NODE="$RABBIT_NODE"
  echo "rabbitmq: $CONVEYOR_RABBITMQ_URL"
}

# need_chromium installs Debian's Chromium for the dashboard's browser test.
need_chromium() {
  need_pkg chromium chromium
  export CONVEYOR_CHROMIUM
  CONVEYOR_CHROMIUM=$(command -v chromium)
  echo "chromium: $CONVEYOR_CHROMIUM"
}

# What the interop and cluster tests need lives in files of their own.
# shellcheck source=python.sh
. "$(dirname "${BASH_SOURCE[0]}")/python.sh"
# shellcheck source=clusters.sh
. "$(dirname "${BASH_SOURCE[0]}")/clusters.sh"
