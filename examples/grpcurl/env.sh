# Sourced by the other scripts: where the server is and which grpcurl to run.
#   PARLEY_ADDRESS  host:port of the server (default 127.0.0.1:50051)
#   GRPCURL         the grpcurl binary (default: grpcurl on PATH, else the one in .venv)
#   PARLEY_TOKEN    bearer token, when the server has authentication on
# Only server reflection is used: no .proto file is read.
set -eu
ADDRESS=${PARLEY_ADDRESS:-127.0.0.1:50051}
if [ -z "${GRPCURL:-}" ]; then
    if command -v grpcurl >/dev/null 2>&1; then
        GRPCURL=grpcurl
    else
        GRPCURL="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.venv/bin/grpcurl"
    fi
fi
SERVICE=parley.v1.AgentSessionService
AUTH=()
if [ -n "${PARLEY_TOKEN:-}" ]; then
    AUTH=(-H "authorization: Bearer $PARLEY_TOKEN")
fi

# route SESSION: the header that names the session a call is about. Behind a proxy it
# reaches the server process that owns the session; a single server ignores it.
route() {
    ROUTE=(-H "x-parley-session: $1")
}

# call METHOD JSON [SESSION]: one unary call of the session service, reply as JSON on stdout.
call() {
    local ROUTE=()
    if [ -n "${3:-}" ]; then route "$3"; fi
    "$GRPCURL" -plaintext "${AUTH[@]}" "${ROUTE[@]}" -d "$2" "$ADDRESS" "$SERVICE/$1"
}

# field NAME: the first string value of "NAME" in the JSON on stdin.
field() {
    grep -o "\"$1\": \"[^\"]*\"" | head -n 1 | cut -d '"' -f 4
}
