"""The page <-> bridge protocol: JSON text messages and binary audio, checked at the door.

From the page (text messages are JSON objects with a "type"):

    start       {"type": "start", "config": {SessionConfig as proto3 JSON},
                 "input_rate": 16000, "output_rate": 48000}       first and once
    say         {"type": "say", "text": "..."}
    interrupt   {"type": "interrupt"}
    background  {"type": "background", "play": true | false}
    thinking    {"type": "thinking", "play": true | false}
    close       {"type": "close"}
    binary      the caller's audio: 16-bit little-endian mono PCM at input_rate

To the page:

    session     {"type": "session", "session": {Session}}        the session started
    event       {"type": "event", "kind": "transcript", "sequence": 7, "text": "final 'Hi'",
                 "event": {SessionEvent}}
    result      {"type": "result", "request": "say", "result": {the call's response}}
    error       {"type": "error", "request": "say", "code": "INVALID_ARGUMENT", "message": "...",
                 "field": "text", "reason": ""}                   the connection stays open
    closed      {"type": "closed", "reason": "..."}               then the WebSocket closes
    binary      the agent's audio: 16-bit little-endian mono PCM frames at output_rate
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from parley.readable import details
from parley.v1 import events_pb2, session_pb2

INPUT_RATES = (8000, 48000)  # inclusive range, as the server takes it
OUTPUT_RATES = (0, 8000, 16000, 24000, 48000)  # 0: the session's
MESSAGE_TYPES = ("start", "say", "interrupt", "background", "thinking", "close")


class PageError(Exception):
    """A message from the page that cannot be acted on; answered with an error frame."""

    def __init__(self, field: str, message: str, code: str = "INVALID_ARGUMENT") -> None:
        super().__init__(message)
        self.field = field
        self.code = code

    def frame(self, request: str) -> dict[str, str]:
        return {"type": "error", "request": request, "code": self.code, "message": str(self),
                "field": self.field, "reason": ""}


@dataclass(frozen=True)
class Start:
    config: session_pb2.SessionConfig
    input_rate: int
    output_rate: int


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Interrupt:
    pass


@dataclass(frozen=True)
class Layer:
    name: str  # "background" | "thinking"
    play: bool


@dataclass(frozen=True)
class Close:
    pass


Command = Start | Say | Interrupt | Layer | Close


def request_type(text: str) -> str:
    """The message's "type" when it has a readable one (for the error frame), else ""."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return ""
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) and kind in MESSAGE_TYPES else ""


def parse(text: str) -> Command:
    """One text message from the page; PageError names what is wrong."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise PageError("", f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise PageError("", "a message must be a JSON object with a \"type\"")
    kind = value.get("type")
    if kind not in MESSAGE_TYPES:
        raise PageError("type", f"unknown message type {kind!r}; one of {', '.join(MESSAGE_TYPES)}")
    if kind == "start":
        return _start(value)
    if kind == "say":
        text_value = value.get("text")
        if not isinstance(text_value, str) or not text_value.strip():
            raise PageError("text", "a non-empty string")
        return Say(text_value)
    if kind in ("background", "thinking"):
        play = value.get("play")
        if not isinstance(play, bool):
            raise PageError("play", "true or false")
        return Layer(kind, play)
    if kind == "interrupt":
        return Interrupt()
    return Close()


def _start(value: dict[str, Any]) -> Start:
    config_value = value.get("config", {})
    if not isinstance(config_value, dict):
        raise PageError("config", "a JSON object (a SessionConfig)")
    try:
        config = json_format.ParseDict(config_value, session_pb2.SessionConfig())
    except (json_format.ParseError, TypeError, ValueError, RecursionError) as exc:
        raise PageError("config", f"not a SessionConfig: {exc}") from None
    input_rate = _integer(value, "input_rate", 16000)
    if not INPUT_RATES[0] <= input_rate <= INPUT_RATES[1]:
        raise PageError("input_rate", f"{INPUT_RATES[0]}..{INPUT_RATES[1]} Hz")
    output_rate = _integer(value, "output_rate", 0)
    if output_rate not in OUTPUT_RATES:
        raise PageError("output_rate", f"one of {', '.join(map(str, OUTPUT_RATES))} Hz")
    return Start(config, input_rate, output_rate)


def _integer(value: dict[str, Any], name: str, default: int) -> int:
    found = value.get(name, default)
    if isinstance(found, bool) or not isinstance(found, int):
        raise PageError(name, "an integer")
    return found


def check_audio(data: bytes, input_rate: int) -> None:
    """A chunk of the caller's audio: whole 16-bit samples, at most one second."""
    if len(data) % 2:
        raise PageError("audio", f"{len(data)} bytes is not a whole number of 16-bit samples")
    if len(data) > 2 * input_rate:
        raise PageError("audio", f"{len(data)} bytes is more than one second at {input_rate} Hz")


def as_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def event_frame(event: events_pb2.SessionEvent) -> dict[str, Any]:
    return {"type": "event", "kind": event.WhichOneof("event") or "", "sequence": event.sequence,
            "text": details(event), "event": as_json(event)}
