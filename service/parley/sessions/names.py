"""Session resource names, and the replica that owns a session.

A session is named `sessions/{id}`. A server started with a replica id
(one process of several behind a proxy) puts that id in front of the random
part: `sessions/{replica}-{16 hex digits}`. The name stays a plain
`sessions/{id}` for every client; a proxy reads the owner from it (clients
echo the name in the `x-parley-session` header) and so never needs a table
of where sessions live: adding a replica moves no session.
"""

from __future__ import annotations

import re
import secrets

SESSION_NAME = re.compile(r"^sessions/([A-Za-z0-9_-]{1,64})$")
# Letters, digits and inner hyphens (a Kubernetes pod name fits); at most 40, so a full id stays within 64.
REPLICA_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}[A-Za-z0-9])?$")
_RANDOM_HEX_DIGITS = 16
_OWNED = re.compile(rf"^sessions/(.+)-[0-9a-f]{{{_RANDOM_HEX_DIGITS}}}$")


def check_replica_id(replica: str) -> str:
    """`replica` if it is usable in session names ("" means no replica); else ValueError."""
    if replica and not REPLICA_ID.match(replica):
        raise ValueError(f"replica id {replica!r}: use 1-40 letters, digits and inner hyphens")
    return replica


def new_session_name(replica: str = "") -> str:
    """A fresh name, owned by `replica` when it is set."""
    random_part = secrets.token_hex(_RANDOM_HEX_DIGITS // 2)
    return f"sessions/{replica}-{random_part}" if replica else f"sessions/{random_part}"


def owner_replica(name: str) -> str:
    """The replica a session name says owns it; "" for names without one."""
    found = _OWNED.match(name)
    return found.group(1) if found else ""


def replica_prefix(replica: str) -> str:
    """What every session name of `replica` starts with (a header of just this reaches that replica)."""
    return f"sessions/{replica}-"
