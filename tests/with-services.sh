#!/usr/bin/env bash
# Runs a command with a PostgreSQL and a Redis for the tests, exported as TEST_DATABASE_URL
# and TEST_REDIS_URL. In order: the URLs already set; the local servers on their standard
# ports; throwaway servers started here from the installed binaries (removed on exit);
# else the exact install command, and failure.
set -euo pipefail

pg_port=${TEST_PG_PROBE_PORT:-5432}
redis_port=${TEST_REDIS_PROBE_PORT:-6379}
scratch=""
pids=()

cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -n "$scratch" ] && [ -d "$scratch/pg" ]; then
    as_pg "$(pg_bin pg_ctl)" -D "$scratch/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [ -n "$scratch" ]; then rm -rf "$scratch"; fi
  # The command's status, not the cleanup's, is the script's.
  exit "$status"
}
trap cleanup EXIT

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

pg_bin() {
  command -v "$1" 2>/dev/null && return
  ls /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1
}

# PostgreSQL refuses to run as root: run its tools as the postgres (or nobody) user then.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    local user=postgres
    id -u postgres >/dev/null 2>&1 || user=nobody
    runuser -u "$user" -- "$@"
  else
    "$@"
  fi
}

mkscratch() { [ -n "$scratch" ] || { scratch=$(mktemp -d /tmp/keyplane-test-XXXXXX); chmod 755 "$scratch"; }; }

if [ -z "${TEST_DATABASE_URL:-}" ]; then
  if listening "$pg_port"; then
    export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
  elif [ -n "$(pg_bin initdb)" ]; then
    mkscratch
    port=$(free_port)
    mkdir -p "$scratch/pg"
    [ "$(id -u)" = 0 ] && chown "$(id -u postgres >/dev/null 2>&1 && echo postgres || echo nobody)" "$scratch/pg"
    as_pg "$(pg_bin initdb)" -D "$scratch/pg" -U postgres --auth=trust -E UTF8 >/dev/null
    as_pg "$(pg_bin pg_ctl)" -D "$scratch/pg" -l "$scratch/pg/log" -o "-p $port -k $scratch/pg -c listen_addresses=127.0.0.1 -c fsync=off" -w start >/dev/null
    echo "with-services: started a throwaway PostgreSQL on port $port" >&2
    export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  else
    echo "with-services: no PostgreSQL answers on 127.0.0.1:$pg_port and none is installed." >&2
    echo "  install it:  sudo apt-get install -y postgresql   (or set TEST_DATABASE_URL)" >&2
    exit 1
  fi
fi

if [ -z "${TEST_REDIS_URL:-}" ]; then
  if listening "$redis_port"; then
    export TEST_REDIS_URL="redis://127.0.0.1:$redis_port"
  elif command -v redis-server >/dev/null 2>&1; then
    mkscratch
    port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$scratch" >"$scratch/redis.log" 2>&1 &
    pids+=("$!")
    for _ in $(seq 50); do listening "$port" && break; sleep 0.1; done
    echo "with-services: started a throwaway Redis on port $port" >&2
    export TEST_REDIS_URL="redis://127.0.0.1:$port"
  else
    echo "with-services: no Redis answers on 127.0.0.1:$redis_port and none is installed." >&2
    echo "  install it:  sudo apt-get install -y redis-server   (or set TEST_REDIS_URL)" >&2
    exit 1
  fi
fi

"$@"
