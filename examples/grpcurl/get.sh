#!/usr/bin/env bash
# A session snapshot (states, utterances, chat history, metrics): get.sh SESSION.
source "$(dirname "$0")/env.sh"
call Get "{\"session\": \"$1\"}" "$1"
