#!/usr/bin/env bash
# Builds the Flotilla container image FROM scratch: the release binary, the
# shared libraries it links (as ldd lists them) and the CA bundle. Nothing is
# pulled, so it works on an engine with no registry access.
#
#   deploy/image/build.sh [TAG]        # default flotilla:latest
#   FLOTILLA_BINARY=path/to/flotilla deploy/image/build.sh   # package that binary (e.g. a debug build)
set -euo pipefail
cd "$(dirname "$0")/../.."
tag="${1:-flotilla:latest}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/flotilla-target}"
if [ -n "${FLOTILLA_BINARY:-}" ]; then
    binary="$FLOTILLA_BINARY"
else
    ./scripts/deps.sh
    cargo build --release --quiet -p flotilla-node --bin flotilla
    binary="$CARGO_TARGET_DIR/release/flotilla"
fi

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
rootfs="$context/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$context/data"
cp "$binary" "$rootfs/bin/flotilla"
# The release profile keeps line tables for backtraces; the image drops them.
strip --strip-debug "$rootfs/bin/flotilla"
# The dynamic loader and every library the binary links, at the same paths.
for library in $(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    mkdir -p "$rootfs$(dirname "$library")"
    cp -L "$library" "$rootfs$library"
done
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
fi
printf 'root:x:0:0:root:/:/bin/flotilla\nflotilla:x:65532:65532:flotilla:/data:/bin/flotilla\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nflotilla:x:65532:\n' > "$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"

cat > "$context/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 data/ /data/
USER 65532:65532
# HTTP (every REST surface), inter-node gRPC, gossip (UDP and TCP).
EXPOSE 5000/tcp 5001/tcp 5002/udp 5002/tcp
VOLUME ["/data"]
ENV FLOTILLA_DATA_DIR=/data \
    FLOTILLA_HTTP_ADDR=0.0.0.0:5000 \
    FLOTILLA_RPC_ADDR=0.0.0.0:5001 \
    FLOTILLA_GOSSIP_ADDR=0.0.0.0:5002
ENTRYPOINT ["/bin/flotilla"]
CMD ["serve"]
DOCKERFILE

docker build --quiet --tag "$tag" "$context"
echo "built $tag ($(docker image inspect --format '{{.Size}}' "$tag") bytes)"
