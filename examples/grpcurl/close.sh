#!/usr/bin/env bash
# End a session: close.sh SESSION [REASON]; prints the final snapshot.
source "$(dirname "$0")/env.sh"
call Close "{\"session\": \"$1\", \"reason\": \"${2:-closed from grpcurl}\"}" "$1"
