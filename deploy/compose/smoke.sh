#!/usr/bin/env bash
# Smoke test of the compose cluster: builds the image FROM scratch, starts the
# three nodes, pushes a small image with skopeo through each node and pulls it
# back byte-exact from every other node, kills one container and checks the
# other two still serve and accept pushes, restarts the three one after the
# other (a rolling restart) pushing and pulling through the others each time,
# then removes everything.
#
#   deploy/compose/smoke.sh
#   FLOTILLA_BINARY=target/debug/flotilla FLOTILLA_IMAGE=flotilla:test deploy/compose/smoke.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export FLOTILLA_ADMIN_PASSWORD="${FLOTILLA_ADMIN_PASSWORD:-smoke-$RANDOM$RANDOM}"
export COMPOSE_PROJECT_NAME="flotilla-smoke"
compose() { docker-compose -f "$here/docker-compose.yml" "$@"; }
work="$(mktemp -d)"
cleanup() { compose down --volumes --timeout 5 >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

# FLOTILLA_BINARY=path packages that binary instead of a release build.
export FLOTILLA_IMAGE="${FLOTILLA_IMAGE:-flotilla:latest}"
"$here/../image/build.sh" "$FLOTILLA_IMAGE"
compose up -d
creds="admin:$FLOTILLA_ADMIN_PASSWORD"
ports=(15000 15001 15002)

echo "waiting for three voters and a synced layout"
for _ in $(seq 1 120); do
    state="$(curl -sf -u "$creds" http://127.0.0.1:15000/_cluster/health || true)"
    if [[ "$state" == *'"green"'* ]]; then break; fi
    sleep 1
done
[[ "$state" == *'"green"'* ]] || { echo "cluster not green: $state"; compose logs --tail 30; exit 1; }

wait_green() {
    for _ in $(seq 1 120); do
        state="$(curl -sf -u "$creds" http://127.0.0.1:15000/_cluster/health || true)"
        if [[ "$state" == *'"green"'* ]]; then return 0; fi
        sleep 1
    done
    echo "cluster not green: $state"; compose logs --tail 30; return 1
}

# A small OCI image layout: one random layer and a config.
python3 - "$work/image" <<'PY'
import gzip, hashlib, json, os, sys
root = sys.argv[1]
os.makedirs(f"{root}/blobs/sha256")
def blob(data):
    digest = hashlib.sha256(data).hexdigest()
    open(f"{root}/blobs/sha256/{digest}", "wb").write(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}
# Compressed already, so skopeo sends the layer as it is.
layer = blob(gzip.compress(os.urandom(256 * 1024)))
config = blob(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode())
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}]}).encode()
m = blob(manifest)
open(f"{root}/oci-layout", "w").write('{"imageLayoutVersion": "1.0.0"}')
open(f"{root}/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", **m, "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
PY

skopeo_copy() { skopeo copy --quiet --src-tls-verify=false --dest-tls-verify=false --src-creds "$creds" --dest-creds "$creds" "$@"; }
for push in 0 1 2; do
    skopeo_copy "oci:$work/image:v1" "docker://127.0.0.1:${ports[$push]}/smoke/app:from-$push"
    for pull in 0 1 2; do
        rm -rf "$work/out"
        skopeo_copy "docker://127.0.0.1:${ports[$pull]}/smoke/app:from-$push" "oci:$work/out:v1"
        for file in "$work"/image/blobs/sha256/*; do
            cmp -s "$file" "$work/out/blobs/sha256/$(basename "$file")" || { echo "node $((pull + 1)) served a different $(basename "$file")"; exit 1; }
        done
    done
    echo "pushed through node $((push + 1)); every node serves it byte-exact"
done

compose kill node3 >/dev/null 2>&1
skopeo_copy "oci:$work/image:v1" "docker://127.0.0.1:15001/smoke/app:after-kill"
skopeo_copy "docker://127.0.0.1:15000/smoke/app:after-kill" "oci:$work/after:v1"
echo "with node 3 killed, nodes 1 and 2 accept pushes and serve them"
compose start node3 >/dev/null 2>&1
wait_green

for node in 1 2 3; do
    compose restart --timeout 10 "node$node" >/dev/null 2>&1
    other=$(( node % 3 ))
    skopeo_copy "oci:$work/image:v1" "docker://127.0.0.1:${ports[$other]}/smoke/app:rolled-$node"
    rm -rf "$work/rolled"
    skopeo_copy "docker://127.0.0.1:${ports[$other]}/smoke/app:rolled-$node" "oci:$work/rolled:v1"
    wait_green
    echo "node $node restarted; pushes and pulls went on through node $((other + 1))"
done
echo "smoke test passed"
