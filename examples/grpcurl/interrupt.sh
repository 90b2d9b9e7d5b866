#!/usr/bin/env bash
# Stop the current speech (with a short fade): interrupt.sh SESSION; prints what was cut.
source "$(dirname "$0")/env.sh"
call Interrupt "{\"session\": \"$1\"}" "$1"
