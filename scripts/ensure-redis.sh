#!/usr/bin/env bash
# Make sure the Redis at $REDIS_URL (default redis://127.0.0.1:6379/0) answers: start a local
# redis-server when one is installed and none runs; install it with apt where possible.
set -euo pipefail
url="${REDIS_URL:-redis://127.0.0.1:6379/0}"
py="${PY:-.venv/bin/python}"

ping() { "$py" - "$url" <<'PY' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1, socket_timeout=1).ping()
PY
}

ping && { echo "Redis: reachable at $url"; exit 0; }
case "$url" in
  redis://127.0.0.1:*|redis://localhost:*) ;;
  *) echo "Redis at $url does not answer, and it is not a local address this script can start." >&2; exit 1 ;;
esac
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Redis: installing redis-server with apt…"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "Redis is not running and redis-server is not installed." >&2
    echo "Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)" >&2
    echo "or point REDIS_URL at a running Redis." >&2
    exit 1
  fi
fi
port=$(echo "$url" | sed -E 's#redis://[^:/]+:([0-9]+).*#\1#')
mkdir -p var
echo "Redis: starting redis-server on 127.0.0.1:$port…"
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --dir "$(pwd)/var" --logfile "$(pwd)/var/redis.log" --pidfile "$(pwd)/var/redis.pid"
for _ in $(seq 1 50); do ping && { echo "Redis: started"; exit 0; }; sleep 0.1; done
echo "redis-server did not come up; see var/redis.log" >&2
exit 1
