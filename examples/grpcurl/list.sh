#!/usr/bin/env bash
# The services the server offers, then the methods of the session service.
source "$(dirname "$0")/env.sh"
"$GRPCURL" -plaintext "$ADDRESS" list
"$GRPCURL" -plaintext "$ADDRESS" list "$SERVICE"
