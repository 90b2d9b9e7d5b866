#!/usr/bin/env bash
# Write the nginx configurations of deploy/ with `parley nginx-config` (the tests check the
# committed files are exactly this output). Change a flag here, run it, commit both.
#   deploy/render.sh [OUT_DIR]        (default: this directory)
set -euo pipefail
out=${1:-$(cd "$(dirname "$0")" && pwd)}
mkdir -p "$out/compose" "$out/kubernetes"

# compose: the replicas are the services parley-0, parley-1, ...; all of them share the
# network alias parley-ready; Docker's DNS answers at 127.0.0.11.
parley nginx-config --listen 0.0.0.0:50051 --discover 'parley-[0-9]+' --replica-host '{replica}' \
    --ready-host parley-ready --port 50051 --start-port 50052 --resolver 127.0.0.11 \
    --user www-data > "$out/compose/nginx.conf"

# Kubernetes (namespace parley): the StatefulSet's pods parley-0, parley-1, ... have names in the
# headless service `parley` (kept while they drain); `parley-ready` lists the ready ones.
parley nginx-config --listen 0.0.0.0:50051 --discover 'parley-[0-9]+' \
    --replica-host '{replica}.parley.parley.svc.cluster.local' \
    --ready-host parley-ready.parley.svc.cluster.local --port 50051 --start-port 50052 \
    --resolver kube-dns.kube-system.svc.cluster.local --user www-data > "$out/kubernetes/nginx.conf"
