# Sourced by servers.sh: clusters on loopback ports of their own, for the
# failover tests (Redis Cluster with replicas, a 3-node RabbitMQ, a
# PostgreSQL primary with a streaming replica).

start_clusters() {
  :
}
