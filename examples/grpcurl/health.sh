#!/usr/bin/env bash
# grpc.health.v1 check of the whole server ("") or of one service; prints the status JSON.
source "$(dirname "$0")/env.sh"
"$GRPCURL" -plaintext -d "{\"service\": \"${1:-}\"}" "$ADDRESS" grpc.health.v1.Health/Check
