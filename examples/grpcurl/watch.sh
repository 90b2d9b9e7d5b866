#!/usr/bin/env bash
# Stream a session's events until it closes: watch.sh SESSION (one JSON object per event).
source "$(dirname "$0")/env.sh"
route "$1"
"$GRPCURL" -plaintext "${AUTH[@]}" "${ROUTE[@]}" -d "{\"session\": \"$1\"}" "$ADDRESS" "$SERVICE/WatchEvents"
