#!/usr/bin/env bash
# The definition of a service, method or message, from reflection.
#   describe.sh                          the session service
#   describe.sh parley.v1.SayRequest     one message
source "$(dirname "$0")/env.sh"
"$GRPCURL" -plaintext "$ADDRESS" describe "${1:-$SERVICE}"
