#!/usr/bin/env bash
# Smoke test of a running k8s-aggregator-mcp gateway (or of any MCP server whose
# tools take a `node` argument), with curl and python3 only.
#
#   scripts/smoke.sh URL [--node NAME] [--tool TOOL] [--token-file FILE] [--max-time SECONDS] [--verbose]
#   scripts/smoke.sh http://127.0.0.1:9029/mcp            # just demo / just port-forward
#   scripts/smoke.sh https://mcp.apps.example.com/mcp --node worker-1 --token-file token
#
# --token-file (or MCP_TOKEN_FILE): a bearer token sent as Authorization on every
# request (AUTH_MODE=kubernetes: `kubectl create token <sa> -n <ns> --audience
# k8s-aggregator-mcp > token`); it goes to curl through a file, never argv.
#
# Steps (legacy MCP era, revision 2025-11-25, with a session when the server
# issues one):
#   1. initialize                   -> 200, a result with protocolVersion
#   2. notifications/initialized    -> 202
#   3. tools/list (every page)      -> at least one tool, each with `node` as the
#                                      first property and required; TOOL present
#   4. the node: --node, else the first node named by the gateway's error for a
#      tools/call on a node that does not exist (isError: true, known nodes listed)
#   5. tools/call TOOL (node_info) on that node -> no isError, the answer names the node
#   6. DELETE the session
# Answers may come as JSON or as an SSE stream (text/event-stream); both are read.
# Exit status: 0 when every step passed, 1 on the first failure (with the reason),
# 2 on bad usage.
set -euo pipefail

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

URL=""
NODE=""
TOOL="node_info"
MAX_TIME=30
VERBOSE=0
TOKEN_FILE="${MCP_TOKEN_FILE:-}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --node) NODE="${2:?--node needs a value}"; shift 2 ;;
    --node=*) NODE="${1#--node=}"; shift ;;
    --tool) TOOL="${2:?--tool needs a value}"; shift 2 ;;
    --tool=*) TOOL="${1#--tool=}"; shift ;;
    --token-file) TOKEN_FILE="${2:?--token-file needs a value}"; shift 2 ;;
    --token-file=*) TOKEN_FILE="${1#--token-file=}"; shift ;;
    --max-time) MAX_TIME="${2:?--max-time needs a value}"; shift 2 ;;
    -v|--verbose) VERBOSE=1; shift ;;
    -h|--help) usage ;;
    -*) echo "smoke: unknown option $1" >&2; usage ;;
    *) [[ -z "$URL" ]] || usage; URL="$1"; shift ;;
  esac
done
[[ -n "$URL" ]] || usage
command -v curl >/dev/null || { echo "smoke: FAIL: curl not found" >&2; exit 1; }
command -v python3 >/dev/null || { echo "smoke: FAIL: python3 not found" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
PROTOCOL_VERSION="2025-11-25"
SESSION=""
AUTH=()
if [[ -n "$TOKEN_FILE" ]]; then
  [[ -r "$TOKEN_FILE" ]] || { echo "smoke: FAIL: cannot read token file $TOKEN_FILE" >&2; exit 1; }
  printf 'Authorization: Bearer %s\n' "$(tr -d '\r\n' <"$TOKEN_FILE")" >"$WORK/auth"
  AUTH=(-H "@$WORK/auth")
fi

fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
ok() { echo "smoke: ok: $*"; }

# JSON helpers (python3, standard library only).
cat >"$WORK/mcp.py" <<'PY'
import json, re, sys

def load_messages(body_path, content_type):
    raw = open(body_path, "rb").read().decode("utf-8", "replace")
    if "text/event-stream" in content_type.lower() or re.match(r"^(event|data|id|retry)?:", raw):
        messages, data = [], []
        for line in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            if line == "":
                if data:
                    messages.append("\n".join(data))
                data = []
            elif line.startswith("data:"):
                data.append(line[5:][1:] if line[5:].startswith(" ") else line[5:])
        if data:
            messages.append("\n".join(data))
        out = []
        for m in messages:
            try:
                out.append(json.loads(m))
            except ValueError:
                pass
        return out
    doc = json.loads(raw)
    return doc if isinstance(doc, list) else [doc]

def response(body_path, content_type, rid):
    """The JSON-RPC response with id `rid` (other messages, e.g. progress, skipped)."""
    for m in load_messages(body_path, content_type):
        if isinstance(m, dict) and m.get("id") == rid and ("result" in m or "error" in m):
            return m
    raise SystemExit("no JSON-RPC response with id %r in the answer: %s"
                     % (rid, open(body_path, encoding="utf-8", errors="replace").read()[:500]))

def text_of(result):
    return "\n".join(c.get("text", "") for c in result.get("content", []) if isinstance(c, dict))

NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")

def nodes_from_error(result, bogus):
    """Node names listed by an unknown-node tool error: structuredContent first,
    else the text after 'known/available/ready nodes'-like wording."""
    names = []
    def walk(v):
        if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            names.extend(v)
        elif isinstance(v, list):
            for x in v: walk(x)
        elif isinstance(v, dict):
            for x in v.values(): walk(x)
    walk(result.get("structuredContent"))
    if not names:
        text = text_of(result)
        m = re.search(r"(?is)(?:known|available|ready|valid|existing|closest|similar)\s+nodes?\b[^:]*?(?::|\bare\b|\bis\b)\s*(.+)", text) \
            or re.search(r"(?is)nodes?[^:]*:\s*(.+)", text) or re.search(r"(?is)did you mean\s*(.+)", text)
        if m:
            names = re.split(r"[\s,;]+", m.group(1))
    cleaned = []
    for n in names:
        n = n.strip().strip("\"'`[](){}<>.?!")
        if NODE_NAME.match(n) and n != bogus and n not in cleaned and n not in ("and", "or", "nodes", "node"):
            cleaned.append(n)
    return cleaned

def check_tools(tool, tools):
    """Every tool has `node` as its first property, required; `tool` is served."""
    if not tools:
        raise SystemExit("tools/list returned no tools")
    for t in tools:
        if (t.get("_meta") or {}).get("k8s-aggregator-mcp/gateway-tool"):
            continue  # the gateway's own tools (fan-out) have no `node`
        schema = t.get("inputSchema") or {}
        props = list((schema.get("properties") or {}).keys())
        if not props or props[0] != "node":
            raise SystemExit("tool %s: `node` is not the first property of inputSchema (properties: %s)"
                             % (t.get("name"), props))
        if "node" not in (schema.get("required") or []):
            raise SystemExit("tool %s: `node` is not required" % t.get("name"))
    names = [str(t.get("name")) for t in tools]
    if tool not in names:
        raise SystemExit("tool %s not served; tools: %s" % (tool, ", ".join(names)))
    print(", ".join(names))

def main():
    cmd = sys.argv[1]
    if cmd == "response":
        print(json.dumps(response(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))))
        return
    if cmd == "check-tools":
        check_tools(sys.argv[2], json.load(open(sys.argv[3])))
        return
    msg = json.load(sys.stdin)
    if "error" in msg:
        raise SystemExit("JSON-RPC error: %s" % json.dumps(msg["error"]))
    result = msg.get("result")
    if not isinstance(result, dict):
        raise SystemExit("result is not an object: %s" % json.dumps(msg)[:300])
    if cmd == "init":
        pv = result.get("protocolVersion")
        if not isinstance(pv, str) or not pv:
            raise SystemExit("initialize result has no protocolVersion: %s" % json.dumps(result)[:300])
        print(pv)
    elif cmd == "tools":
        # argv: tools-accumulator-file
        acc_path = sys.argv[2]
        try:
            acc = json.load(open(acc_path))
        except (OSError, ValueError):
            acc = []
        tools = result.get("tools")
        if not isinstance(tools, list):
            raise SystemExit("tools/list result has no tools array")
        acc.extend(tools)
        json.dump(acc, open(acc_path, "w"))
        print(result.get("nextCursor") or "")
    elif cmd == "nodes-from-error":
        bogus = sys.argv[2]
        if result.get("isError") is not True:
            raise SystemExit("a call on node %r did not fail as a tool error: %s" % (bogus, json.dumps(result)[:300]))
        nodes = nodes_from_error(result, bogus)
        if not nodes:
            raise SystemExit("could not read a node name from the unknown-node error %r; pass --node NAME"
                             % text_of(result)[:300])
        print(nodes[0])
    elif cmd == "check-call":
        node = sys.argv[2]
        if result.get("isError") is True:
            raise SystemExit("tools/call failed: %s" % text_of(result)[:500])
        if not result.get("content"):
            raise SystemExit("tools/call result has no content")
        if node not in json.dumps(result):
            raise SystemExit("the answer does not name node %r: %s" % (node, json.dumps(result)[:300]))
        print(text_of(result).splitlines()[0][:120] if text_of(result) else "(no text)")
    else:
        raise SystemExit("unknown command " + cmd)

main()
PY
py() { python3 "$WORK/mcp.py" "$@"; }

# post ID BODY -> prints the JSON-RPC response with that id; HTTP status in $WORK/status
post() {
  local id="$1" body="$2"
  local -a headers=(-H "Content-Type: application/json" -H "Accept: application/json, text/event-stream")
  if [[ -n "$SESSION" ]]; then headers+=(-H "Mcp-Session-Id: $SESSION"); fi
  if [[ ${#AUTH[@]} -gt 0 ]]; then headers+=("${AUTH[@]}"); fi
  if [[ "$id" != "init" ]]; then headers+=(-H "MCP-Protocol-Version: $PROTOCOL_VERSION"); fi
  if [[ $VERBOSE == 1 ]]; then echo ">> $body" >&2; fi
  local status
  status="$(curl -sS --max-time "$MAX_TIME" -D "$WORK/headers" -o "$WORK/body" -w '%{http_code}' \
    "${headers[@]}" --data-binary "$body" "$URL")" || fail "POST $URL: curl failed (is the gateway running?)"
  echo "$status" >"$WORK/status"
  if [[ $VERBOSE == 1 ]]; then echo "<< HTTP $status" >&2; cat "$WORK/body" >&2; echo >&2; fi
}
header() { tr -d '\r' <"$WORK/headers" | awk -v n="$(echo "$1" | tr 'A-Z' 'a-z')" -F': ' 'tolower($1)==n {print $2}' | tail -n1; }
status() { cat "$WORK/status"; }
answer() { # ID -> response JSON of the last post
  py response "$WORK/body" "$(header content-type)" "$1" || fail "$2"
}

# 1. initialize
post init '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"'"$PROTOCOL_VERSION"'","capabilities":{},"clientInfo":{"name":"smoke.sh","version":"1.0.0"}}}'
case "$(status)" in
  401|403) fail "initialize: HTTP $(status): the gateway wants a token (--token-file; README, Security): $(head -c 300 "$WORK/body")" ;;
esac
[[ "$(status)" == 200 ]] || fail "initialize: HTTP $(status): $(head -c 300 "$WORK/body")"
PROTOCOL_VERSION="$(answer 1 "initialize: no response" | py init)" || fail "initialize: bad result"
SESSION="$(header mcp-session-id)"
ok "initialize (protocol $PROTOCOL_VERSION${SESSION:+, session $SESSION})"

# 2. notifications/initialized
post notification '{"jsonrpc":"2.0","method":"notifications/initialized"}'
[[ "$(status)" == 202 ]] || fail "notifications/initialized: HTTP $(status), expected 202"
ok "notifications/initialized (202)"

# 3. tools/list, every page
echo '[]' >"$WORK/tools.json"
cursor=""; id=10
while :; do
  id=$((id + 1))
  params='{}'
  [[ -z "$cursor" ]] || params='{"cursor":'"$(printf '%s' "$cursor" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')"'}'
  post "$id" '{"jsonrpc":"2.0","id":'"$id"',"method":"tools/list","params":'"$params"'}'
  [[ "$(status)" == 200 ]] || fail "tools/list: HTTP $(status): $(head -c 300 "$WORK/body")"
  cursor="$(answer "$id" "tools/list: no response" | py tools "$WORK/tools.json")" || fail "tools/list: bad result"
  [[ -n "$cursor" ]] || break
  [[ $id -lt 60 ]] || fail "tools/list: more than 50 pages"
done
names="$(py check-tools "$TOOL" "$WORK/tools.json")" || fail "tools/list: check failed"
ok "tools/list: $names"

# 4. the node
if [[ -z "$NODE" ]]; then
  bogus="smoke-no-such-node-$$"
  post 20 '{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"name":"'"$TOOL"'","arguments":{"node":"'"$bogus"'"}}}'
  [[ "$(status)" == 200 ]] || fail "tools/call on unknown node: HTTP $(status): $(head -c 300 "$WORK/body")"
  NODE="$(answer 20 "tools/call on unknown node: no response" | py nodes-from-error "$bogus")" || fail "could not find a node"
  ok "unknown node refused as a tool error; using node $NODE"
fi

# 5. tools/call on that node
node_json="$(printf '%s' "$NODE" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')"
post 21 '{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"'"$TOOL"'","arguments":{"node":'"$node_json"'}}}'
[[ "$(status)" == 200 ]] || fail "tools/call $TOOL on $NODE: HTTP $(status): $(head -c 300 "$WORK/body")"
first="$(answer 21 "tools/call: no response" | py check-call "$NODE")" || fail "tools/call $TOOL on node $NODE"
ok "tools/call $TOOL on $NODE: $first"

# 6. end the session
if [[ -n "$SESSION" ]]; then
  code="$(curl -sS --max-time "$MAX_TIME" -o /dev/null -w '%{http_code}' -X DELETE \
    ${AUTH[@]+"${AUTH[@]}"} -H "Mcp-Session-Id: $SESSION" -H "MCP-Protocol-Version: $PROTOCOL_VERSION" "$URL")" || code=000
  case "$code" in
    200|202|204|405) ok "session ended (DELETE: $code)" ;;
    *) fail "DELETE session: HTTP $code" ;;
  esac
fi
echo "smoke: PASS ($URL)"
