"""Which layer files a client may name: built-in sounds, and files under the server's audio folder.

A client never names an arbitrary server path. "" and "builtin:<name>" are
always allowed; any other source is a path relative to the server's
`--audio-dir` (an absolute path is allowed only if it lies inside it), and
after resolving symlinks and ".." it must still lie inside that folder.
Without an audio folder only built-in sounds can be played.
"""

from __future__ import annotations

import os

from parley.errors import InvalidArgument


def resolve_source(source: str, audio_dir: str, field: str, max_bytes: int) -> str:
    """The source to load: unchanged for built-ins, else a real path inside `audio_dir`.

    Errors name the source as the client gave it, never the server's path.
    """
    if not source or source.startswith("builtin:"):
        return source
    if "\x00" in source or len(source) > 1024:
        raise InvalidArgument(field, "is not a usable file name")
    if not audio_dir:
        raise InvalidArgument(field, "this server plays only builtin: sounds (it has no --audio-dir)",
                              reason="SOURCE_NOT_ALLOWED")
    root = os.path.realpath(audio_dir)
    path = os.path.realpath(os.path.join(root, source))
    if os.path.commonpath([root, path]) != root:
        raise InvalidArgument(field, "must name a file inside the server's audio folder", reason="SOURCE_NOT_ALLOWED")
    if not os.path.isfile(path):
        raise InvalidArgument(field, f"no such file in the audio folder: {source[:200]!r}")
    size = os.path.getsize(path)
    if size > max_bytes:
        raise InvalidArgument(
            field, f"{source[:200]!r} is {size} bytes; the limit (max_layer_file_bytes) is {max_bytes}",
            reason="LIMIT_EXCEEDED",
        )
    return path
