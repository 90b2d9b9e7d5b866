"""A session's configuration as plain data, with defaults and validation.

Field names follow the contract so that a validation error can name the
request field ("config.interruption.min_words") without any mapping table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from parley.chat import ToolSpec
from parley.errors import InvalidArgument

OUTPUT_RATES = (8000, 16000, 24000, 48000)
FRAME_SIZES_MS = (20, 40, 60)
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_GAIN = 2.0
MAX_DUCK_DB = 40.0
MAX_FADE_MS = 10_000


class InterruptionMode(Enum):
    HYBRID = 1
    VAD_ONLY = 2
    STT_ONLY = 3
    DISABLED = 4


class LayerMode(Enum):
    MIXING = 1
    PLAYBACK = 2


@dataclass(frozen=True)
class ProviderChoice:
    """A provider by name ("" = the stage's default) with its options."""

    name: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProvidersConfig:
    stt: ProviderChoice = ProviderChoice()
    tts: ProviderChoice = ProviderChoice()
    llm: ProviderChoice = ProviderChoice()
    vad: ProviderChoice = ProviderChoice()
    turn_detector: ProviderChoice = ProviderChoice()


@dataclass(frozen=True)
class InterruptionConfig:
    mode: InterruptionMode = InterruptionMode.HYBRID
    min_duration_seconds: float = 0.5
    min_words: int = 2
    false_interruption_pause_seconds: float = 1.0
    resume_on_false_interruption: bool = True


@dataclass(frozen=True)
class TurnDetectionConfig:
    min_endpointing_delay_seconds: float = 0.5
    max_endpointing_delay_seconds: float = 3.0


@dataclass(frozen=True)
class AgentAction:
    """Exactly one of say_text / reply_instructions is set."""

    say_text: str | None = None
    reply_instructions: str | None = None


@dataclass(frozen=True)
class WakeUpConfig:
    after_seconds: float = 0.0
    action: AgentAction | None = None


@dataclass(frozen=True)
class AudioLayerConfig:
    source: str = ""
    gain: float | None = None  # None: the layer's default
    looping: bool = True
    mode: LayerMode = LayerMode.MIXING
    fade_in_ms: int = 100
    fade_out_ms: int = 400


@dataclass(frozen=True)
class BackgroundAudioConfig:
    layer: AudioLayerConfig = AudioLayerConfig()
    play_on_start: bool = False
    override_thinking: bool = False
    duck_db: float = 0.0


@dataclass(frozen=True)
class ThinkingAudioConfig:
    layer: AudioLayerConfig = AudioLayerConfig()
    auto: bool = False
    layer_over_background: bool = False


@dataclass(frozen=True)
class McpStdioCommand:
    command: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class McpServerConfig:
    name: str
    url: str = ""
    stdio: McpStdioCommand | None = None
    headers: dict[str, str] = field(default_factory=dict)
    optional: bool = False
    call_timeout_seconds: float = 10.0


@dataclass(frozen=True)
class AudioFormat:
    sample_rate_hz: int
    channels: int = 1
    frame_ms: int = 20


@dataclass(frozen=True)
class SessionConfig:
    instructions: str = ""
    providers: ProvidersConfig = ProvidersConfig()
    voice: str = ""
    interruption: InterruptionConfig = InterruptionConfig()
    turn_detection: TurnDetectionConfig = TurnDetectionConfig()
    wake_up: WakeUpConfig = WakeUpConfig()
    background_audio: BackgroundAudioConfig = BackgroundAudioConfig()
    thinking_audio: ThinkingAudioConfig = ThinkingAudioConfig()
    tools: tuple[ToolSpec, ...] = ()
    tool_timeout_seconds: float = 30.0
    mcp_servers: tuple[McpServerConfig, ...] = ()
    output_format: AudioFormat = AudioFormat(sample_rate_hz=24000)
    idle_ttl_seconds: float | None = None  # None: the server default
    labels: dict[str, str] = field(default_factory=dict)
    greeting: AgentAction | None = None
    reattach_window_seconds: float = 0.0
    auto_reply: bool = True


def check_seconds(value: float, path: str, *, maximum: float = 86_400.0, allow_zero: bool = True) -> None:
    """Reject NaN, infinities, negatives and absurd durations."""
    if not math.isfinite(value) or value < 0 or value > maximum or (value == 0 and not allow_zero):
        bound = f"0..{maximum:g}" if allow_zero else f"(0, {maximum:g}]"
        raise InvalidArgument(path, f"must be a number of seconds in {bound}, got {value!r}")


def check_gain(value: float | None, path: str) -> None:
    if value is not None and (not math.isfinite(value) or value < 0 or value > MAX_GAIN):
        raise InvalidArgument(path, f"must be a linear gain in 0..{MAX_GAIN:g}, got {value!r}")


def check_fade(value: int, path: str) -> None:
    if not 0 <= value <= MAX_FADE_MS:
        raise InvalidArgument(path, f"must be 0..{MAX_FADE_MS} ms, got {value}")


def check_action(action: AgentAction | None, path: str) -> None:
    if action is None:
        return
    text = action.say_text if action.say_text is not None else action.reply_instructions
    if text is None:
        raise InvalidArgument(path, "set say_text or reply_instructions")
    if action.say_text is not None and not action.say_text.strip():
        raise InvalidArgument(f"{path}.say_text", "must not be empty")


def check_output_format(fmt: AudioFormat, path: str) -> None:
    if fmt.sample_rate_hz not in OUTPUT_RATES:
        raise InvalidArgument(f"{path}.sample_rate_hz", f"must be one of {OUTPUT_RATES}, got {fmt.sample_rate_hz}")
    if fmt.channels not in (1, 2):
        raise InvalidArgument(f"{path}.channels", f"must be 1 or 2, got {fmt.channels}")
    if fmt.frame_ms not in FRAME_SIZES_MS:
        raise InvalidArgument(f"{path}.frame_ms", f"must be one of {FRAME_SIZES_MS}, got {fmt.frame_ms}")


def check_layer(layer: AudioLayerConfig, path: str) -> None:
    check_gain(layer.gain, f"{path}.gain")
    check_fade(layer.fade_in_ms, f"{path}.fade_in_ms")
    check_fade(layer.fade_out_ms, f"{path}.fade_out_ms")


def validate(config: SessionConfig, prefix: str = "config") -> None:
    """Raise InvalidArgument naming the first wrong field of a session config."""
    i = config.interruption
    check_seconds(i.min_duration_seconds, f"{prefix}.interruption.min_duration_seconds", maximum=10)
    if not 0 <= i.min_words <= 100:
        raise InvalidArgument(f"{prefix}.interruption.min_words", f"must be 0..100, got {i.min_words}")
    check_seconds(
        i.false_interruption_pause_seconds, f"{prefix}.interruption.false_interruption_pause_seconds", maximum=30
    )
    t = config.turn_detection
    check_seconds(t.min_endpointing_delay_seconds, f"{prefix}.turn_detection.min_endpointing_delay_seconds", maximum=30)
    check_seconds(t.max_endpointing_delay_seconds, f"{prefix}.turn_detection.max_endpointing_delay_seconds", maximum=60)
    if t.max_endpointing_delay_seconds < t.min_endpointing_delay_seconds:
        raise InvalidArgument(
            f"{prefix}.turn_detection.max_endpointing_delay_seconds",
            "must not be less than min_endpointing_delay_seconds",
        )
    check_seconds(config.wake_up.after_seconds, f"{prefix}.wake_up.after_seconds", maximum=86_400)
    if config.wake_up.after_seconds > 0:
        if config.wake_up.action is None:
            raise InvalidArgument(f"{prefix}.wake_up.action", "is required when after_seconds > 0")
        check_action(config.wake_up.action, f"{prefix}.wake_up.action")
    check_layer(config.background_audio.layer, f"{prefix}.background_audio.layer")
    if not (math.isfinite(config.background_audio.duck_db) and 0 <= config.background_audio.duck_db <= MAX_DUCK_DB):
        raise InvalidArgument(f"{prefix}.background_audio.duck_db", f"must be 0..{MAX_DUCK_DB:g} dB")
    check_layer(config.thinking_audio.layer, f"{prefix}.thinking_audio.layer")
    names: set[str] = set()
    for n, tool in enumerate(config.tools):
        if not TOOL_NAME.match(tool.name):
            raise InvalidArgument(f"{prefix}.tools[{n}].name", "must be 1-64 letters, digits, '_' or '-'")
        if tool.name in names:
            raise InvalidArgument(f"{prefix}.tools[{n}].name", f"duplicate tool name {tool.name!r}")
        names.add(tool.name)
    check_seconds(config.tool_timeout_seconds, f"{prefix}.tool_timeout_seconds", maximum=3600, allow_zero=False)
    servers: set[str] = set()
    for n, server in enumerate(config.mcp_servers):
        if not server.name or server.name in servers:
            raise InvalidArgument(f"{prefix}.mcp_servers[{n}].name", "must be non-empty and unique")
        servers.add(server.name)
        if bool(server.url) == (server.stdio is not None):
            raise InvalidArgument(f"{prefix}.mcp_servers[{n}]", "set exactly one of url or stdio")
        if server.url and not server.url.startswith(("http://", "https://")):
            raise InvalidArgument(f"{prefix}.mcp_servers[{n}].url", "must be an http(s) URL")
        check_seconds(
            server.call_timeout_seconds, f"{prefix}.mcp_servers[{n}].call_timeout_seconds", maximum=600,
            allow_zero=False,
        )
    check_output_format(config.output_format, f"{prefix}.output_format")
    if config.idle_ttl_seconds is not None:
        check_seconds(config.idle_ttl_seconds, f"{prefix}.idle_ttl_seconds", allow_zero=False)
    check_seconds(config.reattach_window_seconds, f"{prefix}.reattach_window_seconds", maximum=3600)
    check_action(config.greeting, f"{prefix}.greeting")
    for key in config.labels:
        if not key or len(key) > 63:
            raise InvalidArgument(f"{prefix}.labels", f"label keys must be 1-63 characters, got {key!r}")
