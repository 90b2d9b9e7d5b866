"""How a call finds the process that owns its session behind a proxy.

Every call about a session carries the session's name in this metadata
header; the proxy reads the owner replica from the name (see
parley.sessions.names) and sends the call there. Start and calls about no
session go without it, to any healthy replica. Without a proxy the header
is ignored.
"""

from __future__ import annotations

SESSION_HEADER = "x-parley-session"


def session_metadata(session: str) -> tuple[tuple[str, str], ...]:
    """The routing metadata of a call about `session` ("" = none: any replica)."""
    return ((SESSION_HEADER, session),) if session else ()
