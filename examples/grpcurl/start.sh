#!/usr/bin/env bash
# Start a session; prints the session JSON ("name" is the handle the other scripts take).
#   start.sh                        instructions only, offline default providers
#   start.sh '{"config": {...}}'    any StartRequest
source "$(dirname "$0")/env.sh"
default='{"config": {"instructions": "You are a helpful voice assistant."}}'
call Start "${1:-$default}"
