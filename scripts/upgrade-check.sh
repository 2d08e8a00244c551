#!/usr/bin/env bash
# Upgrades a 3-node loopback cluster node by node from one flotilla binary to
# another while a client pushes and pulls, then checks that nothing pushed was
# lost and that the cluster's model version rose to the new binary's.
# Not part of CI: it needs a binary of a previous release (one with the
# model-version gate, i.e. after 0.1.0).
#
#   scripts/upgrade-check.sh OLD_FLOTILLA NEW_FLOTILLA
set -euo pipefail
old=${1:?usage: $0 OLD_FLOTILLA NEW_FLOTILLA}
new=${2:?usage: $0 OLD_FLOTILLA NEW_FLOTILLA}
work=$(mktemp -d)
password=upgrade-check
export FLOTILLA_ADMIN_PASSWORD=$password
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; echo "logs and data: $work"; }
trap cleanup EXIT

port() { echo $((17000 + $1 * 10 + $2)); }
start() { # node binary
    local node=$1 binary=$2 join=()
    [ "$node" -gt 1 ] && join=(--join "127.0.0.1:$(port 1 1)")
    "$binary" serve --node-id "$node" --data-dir "$work/n$node" \
        --http-addr "127.0.0.1:$(port "$node" 0)" --rpc-addr "127.0.0.1:$(port "$node" 1)" \
        --gossip-addr "127.0.0.1:$(port "$node" 2)" "${join[@]}" >>"$work/n$node.log" 2>&1 &
    pids[$node]=$!
    for _ in $(seq 300); do
        curl -sf "127.0.0.1:$(port "$node" 0)/readyz" >/dev/null && return 0
        sleep 0.1
    done
    echo "node $node did not become ready" >&2; exit 1
}
api() { curl -sf -u "admin:$password" "127.0.0.1:$(port "$1" 0)/_cluster/$2"; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

for node in 1 2 3; do start "$node" "$old"; done
echo "cluster of $($old --version 2>/dev/null || echo "$old") formed"

# The client: a small blob and a tagged manifest per round, through any node, each read back from another.
client() {
    local round=0
    while [ ! -f "$work/stop" ]; do
        round=$((round + 1))
        local node=$((round % 3 + 1)) other=$(((round + 1) % 3 + 1))
        local base="127.0.0.1:$(port "$node" 0)/v2/upgrade/check"
        local body="round $round $RANDOM"
        local digest="sha256:$(printf '%s' "$body" | sha256sum | cut -d' ' -f1)"
        if curl -sf -u "admin:$password" -X POST --data-binary "$body" -H 'Content-Type: application/octet-stream' \
            "$base/blobs/uploads/?digest=$digest" >/dev/null; then
            echo "$digest" >>"$work/acknowledged"
            # Read back through another node (the third if that one is being restarted).
            local read=""
            for reader in "$other" "$node"; do
                read=$(curl -sf -u "admin:$password" "127.0.0.1:$(port "$reader" 0)/v2/upgrade/check/blobs/$digest") && break
                read="(unreachable)"
            done
            [ "$read" = "(unreachable)" ] || [ "$read" = "$body" ] || echo "$digest" >>"$work/unreadable"
        else
            echo "round $round refused (an election?)" >>"$work/refused"
        fi
        sleep 0.05
    done
}
client &
client_pid=$!

leader() { api 1 state | json '["leader"]'; }
for node in $(for n in 1 2 3; do [ "$n" != "$(leader)" ] && echo "$n"; done) "$(leader)"; do
    echo "upgrading node $node"
    kill "${pids[$node]}"; wait "${pids[$node]}" 2>/dev/null || true
    start "$node" "$new"
    for _ in $(seq 300); do [ "$(api "$node" health | json '["status"]')" = green ] && break; sleep 0.1; done
done
touch "$work/stop"; wait "$client_pid"

want=$(api 1 model | json '["binary"]')
for _ in $(seq 100); do [ "$(api 1 model | json '["active"]')" = "$want" ] && break; sleep 0.1; done
active=$(api 1 model | json '["active"]')
acknowledged=$(cat "$work/acknowledged" 2>/dev/null | wc -l)
lost=0
while read -r digest; do
    curl -sf -o /dev/null -u "admin:$password" "127.0.0.1:$(port 2 0)/v2/upgrade/check/blobs/$digest" || lost=$((lost + 1))
done <"$work/acknowledged"
echo "acknowledged pushes: $acknowledged, lost: $lost, read back wrong: $(cat "$work/unreadable" 2>/dev/null | wc -l), refused: $(cat "$work/refused" 2>/dev/null | wc -l)"
echo "model version: active $active, new binary $want"
[ "$lost" = 0 ] && [ "$active" = "$want" ] && [ ! -s "$work/unreadable" ]
