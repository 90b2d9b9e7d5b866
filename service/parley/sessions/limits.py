"""The engine's limits: what one session, and the registry of all sessions, may hold and do.

Declared once here; the server's settings (`parley.settings`) nest these
models, so each limit is also a `parley serve` flag and a `PARLEY_*`
environment variable of the same name.
"""

from __future__ import annotations

from parley.declare import Limits, setting


class SessionLimits(Limits):
    """What one session may hold and do; each error names the limit it hit."""

    max_text_chars: int = setting(4000, "longest Say / Reply text", unit="characters", ge=1, le=1_000_000)
    max_tools: int = setting(64, "tools per session, MCP tools included", ge=0, le=4096)
    max_chunk_bytes: int = setting(64 * 1024, "largest audio chunk on StreamAudio", unit="bytes", ge=2,
                                   le=16 * 1024 * 1024)
    max_requests_per_second: float = setting(
        50.0, "calls per second on one session (token bucket; 0: unlimited)", unit="per second", ge=0, le=1_000_000)
    request_burst: int = setting(100, "burst of that bucket", unit="calls", ge=1, le=1_000_000)
    max_subscribers: int = setting(16, "WatchEvents subscribers per session", ge=0, le=10_000)
    max_queued_utterances: int = setting(32, "utterances waiting per session", ge=1, le=10_000)
    stream_frame_buffer: int = setting(
        50, "frames a slow reader may lag before the oldest are dropped (and reported)", unit="frames", ge=1,
        le=10_000)
    recent_utterances: int = setting(50, "utterances a session's snapshot (Get) lists; older ones leave it", ge=1,
                                     le=10_000)
    provider_stall_seconds: float = setting(
        30.0, "a provider call silent this long fails the utterance (0: never)", unit="seconds", ge=0, le=3600)
    audio_dir: str = setting("", "directory of layer files clients may name; empty allows `builtin:` sounds only")
    max_layer_file_bytes: int = setting(20 * 1024 * 1024, "largest layer file", unit="bytes", ge=1,
                                        le=2**31 - 1)
    allow_mcp_stdio: bool = setting(False, "let sessions name a stdio MCP server (a command run on this host)")
    recording_dir: str = setting("", "directory call recordings are written to; empty: parley-recordings in the "
                                     "system's temporary directory")
    max_recording_seconds: float = setting(3600.0, "longest call recording (then it stops, marked truncated)",
                                           unit="seconds", gt=0, le=86_400)


class RegistryLimits(Limits):
    """How many sessions the registry holds, for how long, and what a Start may ask for."""

    max_sessions: int = setting(1000, "open sessions at most (then RESOURCE_EXHAUSTED)", ge=1, le=1_000_000)
    max_sessions_per_principal: int = setting(250, "open sessions one caller may hold", ge=1, le=1_000_000)
    max_streams: int = setting(1000, "audio streams at once, sessions in their reattach window included (then "
                                     "StreamAudio is RESOURCE_EXHAUSTED)", ge=1, le=1_000_000)
    session_idle_ttl: float = setting(600.0, "seconds a session with no calls and no stream stays open",
                                      unit="seconds", gt=0, le=86_400)
    reap_interval: float = setting(1.0, "seconds between idle-session sweeps", unit="seconds", gt=0, le=3600)
    closed_session_retention: int = setting(
        1000, "closed sessions that still answer Get and List (oldest forgotten first)", ge=0, le=1_000_000)
    allow_stand_in_providers: bool = setting(
        False, "let sessions pick the stand-in providers (`tone`, `scripted`, `energy`, `echo`: fakes with "
               "fault injection, for tests and benchmarks)")
    recording_ttl: float = setting(3600.0, "seconds a closed session's recording is kept (it also goes when the "
                                   "closed session is forgotten)", unit="seconds", ge=0, le=30 * 86_400)
    session: SessionLimits = SessionLimits()
