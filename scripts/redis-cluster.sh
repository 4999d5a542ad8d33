#!/usr/bin/env bash
# Starts a three-master Redis Cluster on 127.0.0.1:7101-7103 for the Redis
# Cluster tests (every key of an account shares a {hash tag}, so one slot)
# unless one there already answers cluster_state:ok; a node that already
# answers is reused. Each node keeps its files in its own dir under a temp
# path. Tests find the cluster in STATUSHUB_TEST_REDIS_CLUSTER
# (127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103). Stop it with
#   for p in 7101 7102 7103; do redis-cli -p $p shutdown nosave; done
set -euo pipefail
command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
  { echo "redis-cluster.sh: redis-server is missing: apt-get install -y redis-server" >&2; exit 1; }
cluster_ports=(7101 7102 7103)
cluster_ok() { redis-cli -p "${cluster_ports[0]}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }
if ! cluster_ok; then
  cluster_dir=$(mktemp -d "${TMPDIR:-/tmp}/statushub-ci-cluster.XXXXXX")
  echo "redis-cluster.sh: starting a three-master Redis Cluster on 127.0.0.1:${cluster_ports[0]}-${cluster_ports[2]} (files in $cluster_dir)"
  cluster_nodes=()
  for port in "${cluster_ports[@]}"; do
    cluster_nodes+=("127.0.0.1:$port")
    redis-cli -p "$port" ping >/dev/null 2>&1 && continue
    mkdir -p "$cluster_dir/$port"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$cluster_dir/$port" --cluster-enabled yes \
      --cluster-config-file "nodes-$port.conf" --save "" --appendonly no --daemonize yes \
      --pidfile "$cluster_dir/$port/redis.pid" --logfile "$cluster_dir/$port/redis.log"
  done
  for port in "${cluster_ports[@]}"; do
    for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -p "$port" ping >/dev/null 2>&1 ||
      { echo "redis-cluster.sh: redis-server on port $port did not start; see $cluster_dir/$port/redis.log" >&2; exit 1; }
  done
  if ! redis-cli --cluster create "${cluster_nodes[@]}" --cluster-replicas 0 --cluster-yes \
    >"$cluster_dir/create.log" 2>&1; then
    echo "redis-cluster.sh: redis-cli --cluster create failed (a node on ${cluster_ports[*]} holding other data or another cluster?):" >&2
    cat "$cluster_dir/create.log" >&2
    exit 1
  fi
  for _ in $(seq 1 100); do cluster_ok && break; sleep 0.1; done
  cluster_ok || { echo "redis-cluster.sh: the Redis Cluster on ${cluster_ports[*]} is not cluster_state:ok after 10 s; see $cluster_dir" >&2; exit 1; }
fi
