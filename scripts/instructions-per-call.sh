#!/usr/bin/env bash
# Instructions the gateway executes per relayed tools/call, counted by valgrind's
# callgrind: a figure that repeats from run to run, where wall-clock latency on a
# shared machine does not. Only the gateway runs under valgrind; the node server and
# the caller (python3, one keep-alive connection) run natively.
#
#   scripts/instructions-per-call.sh [ERA] [CALLS]     # ERA: modern (2026-07-28) or legacy (2025-11-25)
#   just instructions modern 1000
#
# Needs valgrind (Debian package `valgrind`) and the binaries of
# `cargo build --profile profiling --workspace --bins`. The gateway serves one
# static node (127.0.0.2) on loopback; 200 calls warm it up (connections, caches,
# allocator), the counters are zeroed, CALLS calls are counted, and the total is
# divided by CALLS. The profile of the counted calls is left for callgrind_annotate
# (its path is printed).
set -euo pipefail

era=${1:-modern}
calls=${2:-1000}
case $era in modern | legacy) ;; *) echo "ERA is modern or legacy, not $era" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
gateway=$root/target/profiling/k8s-aggregator-mcp
node_server=$root/target/profiling/node-mcp-server
for bin in "$gateway" "$node_server"; do
    [[ -x $bin ]] || { echo "missing $bin: run cargo build --profile profiling --workspace --bins" >&2; exit 1; }
done
command -v valgrind >/dev/null || { echo "valgrind is not installed (Debian: apt-get install valgrind)" >&2; exit 1; }

backend_port=19228
gateway_port=19229
out=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

wait_for() {
    for _ in $(seq 600); do
        curl -sf "$1" >/dev/null && return 0
        sleep 0.1
    done
    echo "$1 did not answer" >&2
    exit 1
}

NODE_NAME=node-1 BIND_ADDRESS=127.0.0.2 BACKEND_PORT=$backend_port RUST_LOG=warn \
    "$node_server" 2>"$out/node.log" &
pids+=($!)
wait_for "http://127.0.0.2:$backend_port/healthz"

STATIC_NODES=node-1=127.0.0.2 BACKEND_PORT=$backend_port BIND_ADDRESS=127.0.0.1 \
    FRONTEND_PORT=$gateway_port RUST_LOG=warn \
    valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" "$gateway" 2>"$out/valgrind.log" &
gateway_pid=$!
pids+=($gateway_pid)
wait_for "http://127.0.0.1:$gateway_port/readyz"

# N tools/call node_info on one keep-alive connection, in the chosen era.
drive() {
    python3 - "$gateway_port" "$era" "$1" <<'PY'
import http.client, json, sys
port, era, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
def post(body, headers):
    c.request("POST", "/mcp", json.dumps(body), {**base, **headers})
    r = c.getresponse(); data = r.read()
    if r.status >= 300 or b'"isError":true' in data or b'"error"' in data[:100]:
        sys.exit(f"HTTP {r.status}: {data[:300]!r}")
    return r
args = {"node": "node-1"}
if era == "legacy":
    r = post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
              "capabilities": {}, "clientInfo": {"name": "instructions-per-call", "version": "1"}}}, {})
    h = {"Mcp-Session-Id": r.getheader("mcp-session-id"), "MCP-Protocol-Version": "2025-11-25"}
    post({"jsonrpc": "2.0", "method": "notifications/initialized"}, h)
    for i in range(n):
        post({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": {"name": "node_info", "arguments": args}}, h)
else:
    h = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "node_info", "Mcp-Param-Node": "node-1"}
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "instructions-per-call", "version": "1"}}
    for i in range(n):
        post({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": {"name": "node_info", "arguments": args, "_meta": meta}}, h)
PY
}

drive 200
sleep 2 # the warm-up's connection closes and its last wake-ups land before the count
callgrind_control -z "$gateway_pid" >/dev/null 2>&1
drive "$calls"
callgrind_control -d "$gateway_pid" >/dev/null 2>&1
kill -TERM "$gateway_pid"
wait "$gateway_pid" 2>/dev/null || true
dump=$out/callgrind.out.1
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
echo "$era: $((total / calls)) instructions per tools/call in the gateway ($calls calls; profile: $dump)"
