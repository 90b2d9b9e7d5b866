#!/usr/bin/env bash
# The tour: every step of a session from the shell, through reflection only.
# health, list, describe, Start, WatchEvents (in the background), Say,
# WaitUtterance, Say + Interrupt, Get, Close, then the events that were watched.
here=$(dirname "$0")
source "$here/env.sh"
step() { printf '\n== %s\n' "$*"; }
events=$(mktemp)
trap 'rm -f "$events"' EXIT

step "health check";                 "$here/health.sh"
step "list services and methods";    "$here/list.sh"
step "describe the session service"; "$here/describe.sh" "$SERVICE"
step "describe SayRequest";          "$here/describe.sh" parley.v1.SayRequest

step "Start a session"
started=$("$here/start.sh")
echo "$started"
session=$(field name <<<"$started")

step "WatchEvents on $session (in the background)"
"$here/watch.sh" "$session" >"$events" &
watcher=$!
sleep 1  # let the watch subscribe before anything happens

step "Say"
said=$("$here/say.sh" "$session" "Hello from grpcurl. This sentence plays out against the session clock.")
echo "$said"
utterance=$(field id <<<"$said")

step "WaitUtterance $utterance (returns once its last frame has played)"
"$here/wait.sh" "$session" "$utterance"

step "Say a long text, then Interrupt it a second later"
"$here/say.sh" "$session" "This is a long story that will not get to its end, because it is cut one second in." >/dev/null
sleep 1
"$here/interrupt.sh" "$session"

step "Get"
"$here/get.sh" "$session"

step "Close"
"$here/close.sh" "$session" "tour done"

step "the events WatchEvents streamed (it ends when the session closes)"
wait "$watcher"
cat "$events"
