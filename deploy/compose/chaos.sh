#!/usr/bin/env bash
# A chaos run against the compose cluster: builds the image FROM scratch and
# flotilla-chaos, starts the three containers, plays a seeded schedule of
# kills, pauses, partitions and packet loss (iptables on the bridge, so root)
# while clients push, move tags and read through every node and a spare
# container joins and is drained, checks the history, then removes
# everything. Exit status 0: every check passed.
#
#   deploy/compose/chaos.sh [flotilla-chaos docker options]   # e.g. --seed 7 --length 120s
#   FLOTILLA_BINARY=…/debug/flotilla FLOTILLA_CHAOS_BIN=…/debug/flotilla-chaos deploy/compose/chaos.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export FLOTILLA_ADMIN_PASSWORD="${FLOTILLA_ADMIN_PASSWORD:-chaos-$RANDOM$RANDOM}"
export COMPOSE_PROJECT_NAME="flotilla-chaos"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flotilla-target}"
compose() { docker-compose -f "$here/docker-compose.yml" "$@"; }
cleanup() {
    # The spare node a run starts (and removes once drained) lives outside the project.
    docker ps -aq --filter name=flotilla-chaos-spare- | xargs -r docker rm -f -v >/dev/null 2>&1 || true
    compose down --volumes --timeout 5 >/dev/null 2>&1 || true
}
trap cleanup EXIT

# FLOTILLA_IMAGE: an image built already; FLOTILLA_BINARY: package that binary;
# FLOTILLA_CHAOS_BIN: a flotilla-chaos built already (else a release build).
if [ "${FLOTILLA_IMAGE:-}" = "" ]; then
    export FLOTILLA_IMAGE=flotilla:latest
    "$here/../image/build.sh" "$FLOTILLA_IMAGE"
fi
chaos_bin="${FLOTILLA_CHAOS_BIN:-}"
if [ "$chaos_bin" = "" ]; then
    (cd "$here/../.." && cargo build --release --quiet -p flotilla-chaos --bin flotilla-chaos)
    chaos_bin="$CARGO_TARGET_DIR/release/flotilla-chaos"
fi
compose up -d

echo "waiting for three voters and a synced layout"
for _ in $(seq 1 120); do
    state="$(curl -sf -u "admin:$FLOTILLA_ADMIN_PASSWORD" http://127.0.0.1:15000/_cluster/health || true)"
    if [[ "$state" == *'"green"'* ]]; then break; fi
    sleep 1
done
[[ "$state" == *'"green"'* ]] || { echo "cluster not green: $state"; compose logs --tail 30; exit 1; }

"$chaos_bin" docker --project "$COMPOSE_PROJECT_NAME" \
    --faults kill,pause,isolate,split,bridge,one-way,loss "$@"
