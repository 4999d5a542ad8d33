#!/usr/bin/env bash
# The docker-compose.yml topology on loopback, without Docker: one redis-server
# (its own port and temp dir, appendonly yes + appendfsync always), two or three
# hub nodes sharing it (same --redis-url, JWT secret and API keys), and nginx in
# front with the same proxy rules as the compose proxy when nginx is installed.
#
#   scripts/cluster.sh            start, print the URLs, a token and a curl line; Ctrl-C stops all
#   scripts/cluster.sh --check    start, publish to node 1, read it back from the other nodes
#                                 (and through the proxy), stop; exit 0 only if all saw it
#
# Options: --nodes N (2 or 3, default 2), --no-proxy (skip nginx even if installed).
# Environment:
#   STATUSHUB_BIN        the hub binary (default target/debug/statushub; `cargo build` makes it)
#   CLUSTER_PORT         first port tried for the proxy (default 8180); nodes take the next
#                        free ones, Redis the first free one from CLUSTER_REDIS_PORT (6390)
#   STATUSHUB_JWT_SECRET, STATUSHUB_API_KEYS   shared by every node (default: fresh random ones)
#   CLUSTER_KEEP=1       keep the temp dir (logs, Redis AOF) after stopping
# Everything it starts runs in a fresh temp dir and is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "cluster.sh: $*" >&2; exit 1; }

nodes=2 check=0 proxy=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check=1 ;;
    --nodes) [ $# -ge 2 ] || die "--nodes needs a number"; nodes=$2; shift ;;
    --nodes=*) nodes=${1#--nodes=} ;;
    --no-proxy) proxy=no ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
case "$nodes" in 2 | 3) ;; *) die "--nodes must be 2 or 3 (got: $nodes)" ;; esac

bin=${STATUSHUB_BIN:-$root/target/debug/statushub}
[ -x "$bin" ] || die "no statushub binary at $bin: run 'cargo build' first (or set STATUSHUB_BIN)"
for tool in redis-server redis-cli; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is missing: apt-get install -y redis-server"
done
command -v curl >/dev/null 2>&1 || die "'curl' is missing: apt-get install -y curl"
nginx_bin=""
if [ "$proxy" = auto ]; then
  nginx_bin=$(command -v nginx 2>/dev/null || true)
  [ -n "$nginx_bin" ] || [ ! -x /usr/sbin/nginx ] || nginx_bin=/usr/sbin/nginx
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/statushub-cluster.XXXXXX")
pids=() names=()

# Stops what this script started, newest first, by PID: SIGTERM, then SIGKILL after 10 s.
cleanup() {
  local status=$? i pid
  trap - EXIT INT TERM
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
  done
  if [ "${CLUSTER_KEEP:-0}" = 1 ]; then
    echo "cluster.sh: stopped; logs and data kept in $workdir" >&2
  else
    rm -rf "$workdir"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started() { pids+=("$1"); names+=("$2"); }
listening() { (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
taken=" "
# The first port from $1 up that nothing listens on and this script has not handed out.
free_port() {
  local port=$1
  while listening "$port" || [[ "$taken" == *" $port "* ]]; do port=$((port + 1)); done
  taken+="$port "
  echo "$port"
}
# wait_for SECONDS WHAT PID COMMAND...: run COMMAND until it succeeds; fail if PID dies or time runs out.
wait_for() {
  local seconds=$1 what=$2 pid=$3 log=$4
  shift 4
  for _ in $(seq 1 $((seconds * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "cluster.sh: $what exited; the end of $log:" >&2
      tail -n 20 "$log" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  echo "cluster.sh: $what not ready after ${seconds}s; the end of $log:" >&2
  tail -n 20 "$log" >&2 || true
  exit 1
}

secret=${STATUSHUB_JWT_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
api_keys=${STATUSHUB_API_KEYS:-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}
api_key=${api_keys%%,*}

# --- Redis: durable like the compose service (every acknowledged event is fsync'd) ----------
redis_port=$(free_port "${CLUSTER_REDIS_PORT:-6390}")
mkdir -p "$workdir/redis"
redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$workdir/redis" \
  --appendonly yes --appendfsync always --save "" --maxmemory-policy noeviction \
  --logfile "$workdir/redis/redis.log" &
started $! redis
wait_for 10 "redis-server on port $redis_port" "$!" "$workdir/redis/redis.log" \
  redis-cli -p "$redis_port" ping
redis_url="redis://127.0.0.1:$redis_port"

# --- hub nodes: same Redis, secret and keys; secrets go by environment, not argv -------------
base_port=${CLUSTER_PORT:-8180}
proxy_port=""
[ -z "$nginx_bin" ] || proxy_port=$(free_port "$base_port")
node_urls=()
for i in $(seq 1 "$nodes"); do
  port=$(free_port $((base_port + i)))
  mkdir -p "$workdir/node$i"
  STATUSHUB_JWT_SECRET=$secret STATUSHUB_API_KEYS=$api_keys \
    "$bin" serve --listen "127.0.0.1:$port" --data-dir "$workdir/node$i" \
    --redis-url "$redis_url" --log-format text >"$workdir/node$i.log" 2>&1 &
  started $! "node $i"
  node_urls+=("http://127.0.0.1:$port")
done
for i in $(seq 1 "$nodes"); do
  wait_for 30 "node $i (${node_urls[i - 1]})" "${pids[i]}" "$workdir/node$i.log" \
    curl -fsS --max-time 2 "${node_urls[i - 1]}/readyz"
done

# --- nginx: the compose proxy's rules (deploy/nginx/statushub-proxy.conf) on loopback ---------
proxy_url=""
if [ -n "$nginx_bin" ]; then
  mkdir -p "$workdir/nginx"
  # When run as root, nginx workers run as an unprivileged user: let them reach their temp dirs.
  chmod 711 "$workdir" "$workdir/nginx"
  servers=""
  for url in "${node_urls[@]}"; do servers+="        server ${url#http://} max_fails=2 fail_timeout=10s;"$'\n'; done
  cat >"$workdir/nginx/nginx.conf" <<EOF
# Written by scripts/cluster.sh: the compose proxy (deploy/nginx/nginx.conf) on loopback.
worker_processes 1;
daemon off;
pid $workdir/nginx/nginx.pid;
error_log $workdir/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log $workdir/nginx/access.log;
    client_body_temp_path $workdir/nginx/client_body;
    proxy_temp_path $workdir/nginx/proxy;
    fastcgi_temp_path $workdir/nginx/fastcgi;
    uwsgi_temp_path $workdir/nginx/uwsgi;
    scgi_temp_path $workdir/nginx/scgi;
    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        ''      '';
    }
    upstream statushub_sticky {
        hash \$binary_remote_addr consistent;
$servers        keepalive 16;
        keepalive_timeout 30s;
    }
    upstream statushub {
        least_conn;
$servers        keepalive 16;
        keepalive_timeout 30s;
    }
    server {
        listen 127.0.0.1:$proxy_port;
        include $root/deploy/nginx/statushub-proxy.conf;
    }
}
EOF
  "$nginx_bin" -e "$workdir/nginx/error.log" -p "$workdir/nginx" -c "$workdir/nginx/nginx.conf" &
  started $! nginx
  proxy_url="http://127.0.0.1:$proxy_port"
  wait_for 10 "nginx on port $proxy_port" "$!" "$workdir/nginx/error.log" \
    curl -fsS --max-time 2 "$proxy_url/readyz"
fi

token=$(STATUSHUB_JWT_SECRET=$secret "$bin" token --account demo --user cluster --ttl 12h)
front=${proxy_url:-${node_urls[0]}}

echo "statushub cluster on loopback: $nodes nodes on one Redis (files in $workdir)"
for i in $(seq 1 "$nodes"); do echo "  node $i  ${node_urls[i - 1]}   log: $workdir/node$i.log"; done
if [ -n "$proxy_url" ]; then
  echo "  proxy   $proxy_url   (nginx, deploy/nginx/statushub-proxy.conf)"
else
  echo "  proxy   none (install nginx to put one in front; clients use any node)"
fi
echo "  redis   $redis_url   (appendonly yes, appendfsync always)"
echo "export TOKEN=$token API_KEY=$api_key"
echo "status page: $front/?token=$token"
echo "curl -sS -X POST $front/v1/accounts/demo/events -H \"Authorization: Bearer \$API_KEY\" -H 'Content-Type: application/json' -d '{\"event\":\"deploy.finished\",\"data\":{\"version\":\"1.2.3\"}}'"

if [ "$check" = 0 ]; then
  echo "Ctrl-C stops everything."
  status=0
  wait -n "${pids[@]}" || status=$?
  for i in "${!pids[@]}"; do
    kill -0 "${pids[i]}" 2>/dev/null || echo "cluster.sh: ${names[i]} exited (status $status); stopping the rest" >&2
  done
  exit 1
fi

# --- --check: the read path across nodes (events live in Redis, so any node serves them) -----
nonce="check-$$-$RANDOM"
published=$(curl -sS --max-time 5 -X POST "${node_urls[0]}/v1/accounts/demo/events" \
  -H "Authorization: Bearer $api_key" -H 'Content-Type: application/json' \
  -d "{\"event\":\"cluster.check\",\"data\":{\"nonce\":\"$nonce\"}}" -w '\n%{http_code}') ||
  die "check: publish to node 1 failed"
[ "${published##*$'\n'}" = 201 ] || die "check: publish to node 1 answered ${published##*$'\n'}: ${published%$'\n'*}"
seq=$(grep -o '"seq":[0-9]*' <<<"$published" | head -n 1 | cut -d: -f2)
[ -n "$seq" ] || die "check: no seq in the publish answer: $published"
readers=()
for i in $(seq 2 "$nodes"); do readers+=("node $i=${node_urls[i - 1]}"); done
[ -z "$proxy_url" ] || readers+=("the proxy=$proxy_url")
for reader in "${readers[@]}"; do
  name=${reader%%=*} url=${reader#*=}
  page=$(curl -sS --max-time 5 -H "Authorization: Bearer $api_key" \
    "$url/v1/accounts/demo/events?since=$((seq - 1))") || die "check: reading from $name failed"
  if ! grep -q "\"seq\":${seq}[,}]" <<<"$page" || ! grep -q "$nonce" <<<"$page"; then
    die "check: event seq $seq published on node 1 is not in $name's page: $page"
  fi
  echo "check: $name serves event seq $seq published on node 1"
done
echo "cluster check passed"
