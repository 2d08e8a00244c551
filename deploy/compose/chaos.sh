#!/usr/bin/env bash
# A chaos run against the compose cluster: builds the image FROM scratch and
# flotilla-chaos, starts the three containers, plays a seeded schedule of
# kills, pauses, partitions and packet loss (iptables on the bridge, so root)
# while clients push, move tags and read through every node, checks the
# history, then removes everything. Exit status 0: every check passed.
#
#   deploy/compose/chaos.sh [flotilla-chaos docker options]   # e.g. --seed 7 --length 120s
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export FLOTILLA_ADMIN_PASSWORD="${FLOTILLA_ADMIN_PASSWORD:-chaos-$RANDOM$RANDOM}"
export COMPOSE_PROJECT_NAME="flotilla-chaos"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flotilla-target}"
compose() { docker-compose -f "$here/docker-compose.yml" "$@"; }
cleanup() { compose down --volumes --timeout 5 >/dev/null 2>&1 || true; }
trap cleanup EXIT

if [ "${FLOTILLA_IMAGE:-}" = "" ]; then
    "$here/../image/build.sh" flotilla:latest
fi
(cd "$here/../.." && cargo build --release --quiet -p flotilla-chaos --bin flotilla-chaos)
compose up -d

echo "waiting for three voters and a synced layout"
for _ in $(seq 1 120); do
    state="$(curl -sf -u "admin:$FLOTILLA_ADMIN_PASSWORD" http://127.0.0.1:15000/_cluster/health || true)"
    if [[ "$state" == *'"green"'* ]]; then break; fi
    sleep 1
done
[[ "$state" == *'"green"'* ]] || { echo "cluster not green: $state"; compose logs --tail 30; exit 1; }

"$CARGO_TARGET_DIR/release/flotilla-chaos" docker --project "$COMPOSE_PROJECT_NAME" \
    --faults kill,pause,isolate,split,bridge,one-way,loss "$@"
