"""Domain errors of the engine, providers and mixer.

They carry no gRPC types; the servicers map each class to one status code
(parley.api.status). `reason` is a stable machine-readable word for
ErrorInfo; InvalidArgument names the offending field for BadRequest.
"""

from __future__ import annotations


class ParleyError(Exception):
    """Base of every error a client may see."""

    reason = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidArgument(ParleyError, ValueError):
    """A request field is wrong; `field` is its path, e.g. "config.voice"."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, description: str, *, reason: str | None = None) -> None:
        super().__init__(f"{field}: {description}", reason=reason)
        self.field = field
        self.description = description


class NotFound(ParleyError):
    reason = "NOT_FOUND"


class FailedPrecondition(ParleyError):
    reason = "FAILED_PRECONDITION"


class ResourceExhausted(ParleyError):
    """A limit was hit; `limit` names it (e.g. "max_sessions"); a rate limit also says when to retry."""

    reason = "RESOURCE_EXHAUSTED"

    def __init__(self, limit: str, message: str, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(f"{message} (limit: {limit})", reason="LIMIT_EXCEEDED")
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds


class Aborted(ParleyError):
    reason = "ABORTED"


class Unavailable(ParleyError):
    reason = "UNAVAILABLE"


class DeadlineExceeded(ParleyError):
    reason = "DEADLINE_EXCEEDED"


class Unauthenticated(ParleyError):
    reason = "UNAUTHENTICATED"


class PermissionDenied(ParleyError):
    reason = "PERMISSION_DENIED"
