#!/usr/bin/env bash
# Installs what building and testing Flotilla needs, idempotently:
# libclang (bindgen for RocksDB), skopeo (real OCI client in tests),
# faketime (libfaketime: the chaos tests jump a node's clock),
# docker-registry (the benchmark peer), oras-py (real OCI client in tests)
# and pyartifactory (real Artifactory client in tests).
set -euo pipefail

need_apt=()
for package in libclang-dev clang skopeo faketime; do
    dpkg -s "$package" >/dev/null 2>&1 || need_apt+=("$package")
done
if [ "${FLOTILLA_BENCH:-0}" = 1 ]; then
    dpkg -s docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if [ "${FLOTILLA_SKIP_PYTHON:-0}" != 1 ]; then
    python3 -c 'import oras.provider' 2>/dev/null || python3 -m pip install --quiet 'oras==0.2.43'
    python3 -c 'import pyartifactory' 2>/dev/null || python3 -m pip install --quiet 'pyartifactory==2.11.2'
fi
