#!/usr/bin/env bash
# Start a throwaway redis-server on a free localhost port (unless REDIS_URL already answers) and print
# the line to export.  Usage:  eval "$(tests/services.sh)"   ...   kill "$COLORIZE_RT_REDIS_PID"
# The pytest suite does not need this: the cache tests start (and stop) their own private server and
# skip with a reason when redis-server is not installed.
set -euo pipefail
if [[ -n "${REDIS_URL:-}" ]] && command -v redis-cli >/dev/null && redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then
    echo "export REDIS_URL=$REDIS_URL"
    exit 0
fi
command -v redis-server >/dev/null || { echo "redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
    --daemonize yes --pidfile "$dir/redis.pid" >/dev/null
for _ in $(seq 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
done
redis-cli -p "$port" ping >/dev/null
echo "export REDIS_URL=redis://127.0.0.1:$port/0 COLORIZE_RT_REDIS_PID=$(cat "$dir/redis.pid")"
