#!/usr/bin/env bash
# Block until an utterance is played, interrupted or failed: wait.sh SESSION UTTERANCE_ID.
source "$(dirname "$0")/env.sh"
call WaitUtterance "{\"session\": \"$1\", \"utterance_id\": \"$2\"}" "$1"
