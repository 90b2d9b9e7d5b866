"""The media-stream messages telephony providers exchange over a WebSocket.

The shape is the one the major providers document for their bidirectional
media streams: JSON text frames, each with an `event` field.

From the provider
    connected  {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start      {"event": "start", "sequenceNumber": "1", "streamSid": S,
                "start": {"streamSid": S, "callSid": C, "accountSid": A, "tracks": ["inbound"],
                          "customParameters": {...},
                          "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}
    media      {"event": "media", "streamSid": S,
                "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": <base64 audio>}}
    mark       {"event": "mark", "streamSid": S, "mark": {"name": N}}: audio sent before mark N has played
    dtmf       {"event": "dtmf", "streamSid": S, "dtmf": {"track": "inbound_track", "digit": "1"}}
    stop       {"event": "stop", "streamSid": S, "stop": {"callSid": C, "accountSid": A}}

To the provider
    media      {"event": "media", "streamSid": S, "media": {"payload": <base64 audio>}}
    mark       {"event": "mark", "streamSid": S, "mark": {"name": N}}: echo N back once what came before played
    clear      {"event": "clear", "streamSid": S}: drop the audio buffered for playback

Parsing is lenient the way providers are: a frame that is not JSON, an
unknown event, or a field of the wrong type yields None (ignored and
counted), never an exception.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from parley.audio.encodings import Encoding

#: mediaFormat.encoding values and the sample encoding each means.
MEDIA_ENCODINGS = {"audio/x-mulaw": Encoding.MULAW, "audio/x-alaw": Encoding.ALAW}
#: Tracks that carry the caller's voice ("outbound" is what is played to the caller).
CALLER_TRACKS = ("inbound", "inbound_track", "")


@dataclass(frozen=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True)
class MediaFormat:
    encoding: str
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    media_format: MediaFormat
    tracks: tuple[str, ...] = ()
    custom_parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Media:
    payload: bytes
    track: str
    timestamp_ms: int | None


@dataclass(frozen=True)
class Mark:
    name: str


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class Stop:
    call_sid: str


Message = Connected | Start | Media | Mark | Dtmf | Stop


def parse(text: str | bytes) -> Message | None:
    """One frame from the provider; None for anything that is not a message this protocol knows."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    event = data.get("event")
    body = data.get(event) if isinstance(event, str) else None
    body = body if isinstance(body, dict) else {}
    try:
        if event == "connected":
            return Connected(_str(data, "protocol"), _str(data, "version"))
        if event == "start":
            fmt = body.get("mediaFormat") or {}
            params = body.get("customParameters") or {}
            return Start(
                stream_sid=_str(body, "streamSid") or _str(data, "streamSid"),
                call_sid=_str(body, "callSid"),
                account_sid=_str(body, "accountSid"),
                media_format=MediaFormat(_str(fmt, "encoding"), int(fmt.get("sampleRate", 8000)),
                                         int(fmt.get("channels", 1))),
                tracks=tuple(str(t) for t in body.get("tracks") or ()),
                custom_parameters={str(k): str(v) for k, v in dict(params).items()},
            )
        if event == "media":
            payload = base64.b64decode(_str(body, "payload"), validate=True)
            timestamp = body.get("timestamp")
            return Media(payload, _str(body, "track"), int(timestamp) if timestamp is not None else None)
        if event == "mark":
            return Mark(_str(body, "name"))
        if event == "dtmf":
            return Dtmf(_str(body, "digit"))
        if event == "stop":
            return Stop(_str(body, "callSid"))
    except (TypeError, ValueError, AttributeError, binascii.Error):
        return None
    return None


def media(stream_sid: str, audio: bytes) -> str:
    return _dump({"event": "media", "streamSid": stream_sid, "media": {"payload": base64.b64encode(audio).decode()}})


def mark(stream_sid: str, name: str) -> str:
    return _dump({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear(stream_sid: str) -> str:
    return _dump({"event": "clear", "streamSid": stream_sid})


def _str(data: Any, key: str) -> str:
    value = data.get(key, "") if isinstance(data, dict) else ""
    if not isinstance(value, (str, int)):
        raise TypeError(f"{key} is not a string")
    return str(value)


def _dump(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))
