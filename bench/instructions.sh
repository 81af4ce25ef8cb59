#!/usr/bin/env bash
# Instructions per request on the hot path, counted by callgrind: exact and repeatable
# whatever else the machine is doing, so two builds compare to the instruction where
# wall-clock rows differ by a few percent from run to run.
#
# Usage: bench/instructions.sh [<dir with keyplane and bench-bare>] [requests]
#   (default: target/release, 2000). Needs valgrind, python3 and curl.
#   KEEP=<dir> keeps each row's callgrind profile there (<row>.callgrind, for
#   callgrind_annotate --inclusive=yes).
#
# `keyplane up` (SQLite, in a scratch directory) serves identity and the other services;
# a second gateway runs under callgrind beside it, with a data-plane route to bench-bare.
# Each row: 300 requests to warm it, counters zeroed, then <requests> requests on one
# kept connection; the gateway process's user-space instructions divided by that count.
# valgrind hides SHA-NI, so SHA-256 runs its portable code here (about 6.6k instructions
# of each verify).
set -euo pipefail

bin=${1:-target/release}
requests=${2:-2000}
for tool in valgrind callgrind_control python3 curl; do
  command -v "$tool" >/dev/null || { echo "instructions: $tool is needed (apt-get install valgrind python3 curl)" >&2; exit 2; }
done

scratch=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT
# On failure, the logs say why.
show_logs() { tail -n 20 "$scratch"/*.log >&2; }

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() {
  for _ in $(seq 1 240); do curl -sf "$1/ready" | grep -q "\"ready\"" && return 0; sleep 0.5; done
  echo "instructions: $1 never became ready" >&2; show_logs; exit 1
}

secret() { python3 -c 'import secrets; print(secrets.token_hex(32))'; }
KEYPLANE_INTERNAL_SECRET=$(secret) KEYPLANE_DATAPLANE_SECRET=$(secret) KEYPLANE_ENCRYPTION_KEY=$(secret)
export KEYPLANE_INTERNAL_SECRET KEYPLANE_DATAPLANE_SECRET KEYPLANE_ENCRYPTION_KEY
export KEYPLANE_DATA_DIR=$scratch/data KEYPLANE_METRICS_LISTEN=127.0.0.1:0 RUST_LOG=warn
for limit in KEY SESSION SIGN_IN VERIFY KEY_MAX; do export "KEYPLANE_RATE_LIMIT_$limit=10000000/60"; done

bare=$(port)
"$bin/bench-bare" "127.0.0.1:$bare" >"$scratch/bare.log" 2>&1 &
pids+=($!)
routes="[{\"prefix\":\"/api/v1/developer/static\",\"upstream\":\"http://127.0.0.1:$bare\",\"read_scope\":\"read:families\",\"write_scope\":\"write:families\"}]"

declare -A addr
for target in IDENTITY KEYS ORGS USAGE ADVISORS FAMILIES GATEWAY; do
  addr[$target]=$(port)
  export "KEYPLANE_${target}_LISTEN=127.0.0.1:${addr[$target]}"
done
up="http://127.0.0.1:${addr[GATEWAY]}"
KEYPLANE_GATEWAY_ROUTES=$routes "$bin/keyplane" up >"$scratch/up.log" 2>&1 &
pids+=($!)
wait_ready "$up"

token=$(curl -sf -X POST "$up/api/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"instructions@example.com","password":"Bench-Password-9!","name":"Bench"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
key=$(curl -sf -X POST "$up/api/ensure-dev-org" -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"Bench","bootstrap_key":true}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["first_key"]["key"])')

# The gateway under measurement: its own process, talking to up's services over gRPC.
gateway=$(port)
for target in IDENTITY KEYS ORGS USAGE ADVISORS; do export "KEYPLANE_${target}_ADDR=http://127.0.0.1:${addr[$target]}"; done
KEYPLANE_GATEWAY_LISTEN=127.0.0.1:$gateway KEYPLANE_GATEWAY_ROUTES=$routes \
  valgrind --tool=callgrind --callgrind-out-file="$scratch/callgrind.%p" "$bin/keyplane" serve --target gateway \
  >"$scratch/gateway.log" 2>&1 &
measured=$!
pids+=($measured)
wait_ready "http://127.0.0.1:$gateway"

drive() {
  python3 - "$gateway" "$key" "$1" "$2" <<'PY'
import http.client, json, sys
port, key, row, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
connection = http.client.HTTPConnection("127.0.0.1", int(port))
requests = {
    "verify": ("POST", "/api/v1/keys/verify", json.dumps({"key": key}), {"content-type": "application/json"}),
    "keys/self": ("GET", "/api/v1/keys/self", None, {"authorization": "Bearer " + key}),
    "forward": ("GET", "/api/v1/developer/static/x", None, {"authorization": "Bearer " + key}),
}
method, path, body, headers = requests[row]
for _ in range(n):
    connection.request(method, path, body=body, headers=headers)
    answer = connection.getresponse()
    answer.read()
    if answer.status != 200:
        sys.exit(f"{row} answered {answer.status}")
PY
}

echo "| row | instructions per request |"
echo "|---|---:|"
for row in verify keys/self forward; do
  drive "$row" 300
  callgrind_control -z "$measured" >/dev/null 2>&1
  drive "$row" "$requests"
  callgrind_control -d "$measured" >/dev/null 2>&1
  sleep 1
  dump=$(ls -t "$scratch"/callgrind."$measured".* | head -1)
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
  if [[ -n ${KEEP:-} ]]; then cp "$dump" "$KEEP/${row//\//-}.callgrind"; fi
  echo "| $row | $((total / requests)) |"
done
