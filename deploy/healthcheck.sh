#!/usr/bin/env bash
# Container health check for the statushub image: healthy when GET /readyz on the
# hub's own port answers 200 (the store can be read and written). Uses bash's
# /dev/tcp, so the runtime image needs neither curl nor wget.
#
# The port is the one in STATUSHUB_LISTEN (default 8080); STATUSHUB_HEALTH_PORT
# overrides it. Exit 0 = healthy, 1 = not ready or not answering.
set -euo pipefail

listen="${STATUSHUB_LISTEN:-0.0.0.0:8080}"
port="${STATUSHUB_HEALTH_PORT:-${listen##*:}}"

{ exec 3<>"/dev/tcp/127.0.0.1/${port}"; } 2>/dev/null || { echo "healthcheck: nothing listens on 127.0.0.1:${port}" >&2; exit 1; }
printf 'GET /readyz HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$port" >&3
status=""
IFS=' ' read -r -t 5 _ status _ <&3 || true
exec 3<&-
if [ "$status" != 200 ]; then
  echo "healthcheck: /readyz answered ${status:-nothing}" >&2
  exit 1
fi
