#!/usr/bin/env bash
# Speak a text: say.sh SESSION TEXT; prints the utterance handle (its "id" goes to wait.sh).
source "$(dirname "$0")/env.sh"
text=${2//\\/\\\\}
call Say "{\"session\": \"$1\", \"text\": \"${text//\"/\\\"}\"}" "$1"
